"""Usage figures: pure functions returning labelled matplotlib Figures, data and proxy."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_probe import center_usage, data_usage
from collapse_probe.usage import usage_figures

pytest.importorskip("matplotlib")


def _reports():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 8))
    protos = base[np.concatenate([np.arange(30), np.zeros(34, dtype=int)])]  # 64 prototypes, 30 unique
    samples = base[rng.integers(0, 30, size=400)] + rng.normal(size=(400, 8)) * 0.2
    return data_usage(protos, samples), center_usage(rng.normal(size=64) * 0.05, protos)


def test_figures_have_titles_axes_and_legends_and_save(tmp_path) -> None:
    from matplotlib.figure import Figure

    from collapse_probe.report.figures import as_report_figures

    for report in _reports():
        listed = as_report_figures(usage_figures(report))  # how the report renderers take them
        assert [f.name for f in listed] == ["usage_by_rank", "used_vs_unique"]
        assert listed[0].title.startswith("Usage by rank: prototypes")
        figures = usage_figures(report)
        assert set(figures) == {"usage_by_rank", "used_vs_unique"}
        for name, fig in figures.items():
            assert isinstance(fig, Figure)
            ax = fig.axes[0]
            assert fig.get_suptitle().endswith("prototypes (center proxy)" if report.is_proxy else "prototypes")
            assert "K = 64" in ax.get_title(loc="left") and ax.get_xlabel() is not None and ax.get_ylabel()
            assert ax.get_legend() is not None
            fig.savefig(tmp_path / f"{name}.png")
            assert (tmp_path / f"{name}.png").stat().st_size > 1000
        rank = figures["usage_by_rank"].axes[0]
        assert rank.get_xscale() == "log" and rank.get_yscale() == "log"
        groups = rank.get_lines()[1].get_ydata()
        assert np.all(np.diff(groups) <= 0) and groups[0] == pytest.approx(report.group_mass.max())
        bars = figures["used_vs_unique"].axes[0]
        heights = [p.get_height() for p in bars.patches]
        texts = [t.get_text() for t in bars.texts]
        if report.is_proxy:
            assert len(heights) == 4 and sum("n/a" in t for t in texts) == 2
            assert "T = 0.04" in bars.get_title(loc="left")
        else:
            assert heights == pytest.approx([64, 30, report.used, report.merged_used,
                                             report.perplexity, report.merged_perplexity])
