"""Each figure function returns a Figure with the expected title, labels and series."""

import numpy as np
import pytest
from report_heads import collapsed_head, small_report

from collapse_probe import audit
from collapse_probe.report.figures import (LABELLED_GROUPS, figure_bytes, group_sizes_by_rank,
                                           nn_similarity_histogram, norm_distribution, pca_map,
                                           report_figures, utilization_vs_eps)


@pytest.fixture(scope="module")
def report():
    return small_report()


def heads(report):
    return [h for c in report.checkpoints for h in c.heads]


def test_utilization_vs_eps_has_one_line_per_head(report):
    fig = utilization_vs_eps(report)
    (ax,) = fig.axes
    assert fig.get_suptitle().startswith("Unique prototypes vs duplicate threshold")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "eps" in ax.get_xlabel() and "% of K" in ax.get_ylabel()
    series = [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
    assert len(series) == 4
    assert [list(line.get_xdata()) for line in series] == [[0.025, 0.5]] * 4
    # The collapsed head: 3 of 200 unique = 1.5 %.
    assert any(np.allclose(line.get_ydata(), [1.5, 1.5]) for line in series)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "prototypes #1 / head_dense (K=200)" in labels
    assert any(label.startswith("gate floor 25 %") for label in labels)


def test_group_sizes_by_rank_merges_identical_groupings(report):
    collapsed = heads(report)[1]
    fig = group_sizes_by_rank(collapsed)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel().startswith("group rank") and ax.get_ylabel() == "group size (prototypes)"
    (line,) = ax.get_lines()  # eps 0.025 and 0.5 give the same three groups of 67, 67, 66
    assert list(line.get_ydata()) == [67, 67, 66]
    assert "head_dense" in fig.get_suptitle()


def test_group_sizes_by_rank_one_line_per_distinct_grouping():
    rng = np.random.default_rng(0)
    centre = rng.standard_normal(16)
    near = centre + 0.02 * rng.standard_normal((30, 16))  # merged at 0.5, apart at 0.025
    report = audit(near, eps=[0.025, 0.5])
    assert len(group_sizes_by_rank(report.checkpoints[0].heads[0]).axes[0].get_lines()) == 2


def test_nn_similarity_histogram_shows_data_reference_and_threshold(report):
    random_init = heads(report)[3]
    fig = nn_similarity_histogram(random_init, bins=40)
    (ax,) = fig.axes
    assert len(ax.patches) == 40
    assert sum(p.get_height() for p in ax.patches) == random_init.num_prototypes
    assert ax.get_xlabel() == "cosine similarity to the nearest other prototype"
    assert ax.get_ylabel() == "prototypes per bin" and ax.get_yscale() == "log"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("random unit vectors") for label in labels)
    assert any("duplicate threshold eps 0.025" in label for label in labels)
    assert "K=300, D=32" in fig.get_suptitle()


def test_pca_map_labels_the_largest_groups(report):
    partial = heads(report)[0]
    fig = pca_map(partial)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("PC 1 (") and ax.get_ylabel().startswith("PC 2 (")
    assert [t.get_text() for t in ax.texts] == [str(i) for i in range(1, LABELLED_GROUPS + 1)]
    assert "60 groups at eps 0.025" in fig.get_suptitle()


def test_pca_map_without_duplicates_says_so(report):
    fig = pca_map(heads(report)[2])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["prototypes (no duplicates at this eps)"] and not fig.axes[0].texts


def test_norm_distribution_and_flat_norms(report):
    fig = norm_distribution(heads(report)[1])
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("row norm") and ax.get_ylabel() == "prototypes per bin"
    assert len(ax.patches) == 50
    flat = audit(np.eye(4, 8)).checkpoints[0].heads[0]  # every norm is exactly 1
    assert [t.get_text() for t in norm_distribution(flat).axes[0].texts] == ["every norm is 1"]
    rounded = norm_distribution(heads(report)[0]).axes[0]  # unit rows: norms 1 up to float rounding
    assert len(rounded.patches) == 1 and rounded.texts[0].get_text().startswith("every norm is 1 (")


def test_report_figures_names_are_unique_files(report):
    figures = report_figures(report)
    names = [f.name for f in figures]
    assert len(names) == len(set(names)) == 1 + 4 * 4
    assert names[0] == "utilization_vs_eps" and figures[0].checkpoint is None
    assert "prototypes-1_head_dense_pca" in names
    assert all(f.figure.get_suptitle() for f in figures)


def test_figure_bytes_are_reproducible():
    fig = group_sizes_by_rank(audit(collapsed_head(num=30)).checkpoints[0].heads[0])
    png, svg = figure_bytes(fig, "png"), figure_bytes(fig, "svg")
    assert png.startswith(b"\x89PNG") and b"<svg" in svg
    assert figure_bytes(fig, "svg") == svg and figure_bytes(fig, "png") == png


def test_utilization_ticks_read_at_1_2_5_steps(report):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = utilization_vs_eps(report)
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
    # the lowest head sits at 1.5 %: the axis runs from 1 % and every 1-2-5 step is labelled
    assert labels == ["1 %", "2 %", "5 %", "10 %", "20 %", "50 %", "100 %"]
    assert not [t for t in ax.yaxis.get_minorticklabels() if t.get_text()]


def test_flat_group_sizes_have_plain_tick_labels():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    flat = audit(np.eye(40)[:, :40], eps=[0.025, 0.5]).checkpoints[0].heads[0]  # 40 groups of 1
    fig = group_sizes_by_rank(flat)
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    texts = [t.get_text() for axis in (ax.xaxis, ax.yaxis)
             for t in (*axis.get_ticklabels(), *axis.get_minorticklabels()) if t.get_text()]
    assert texts and not any("10^" in t or "times" in t or "\\" in t for t in texts)
    assert [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()] == ["1", "2"]
    ranks = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
    assert ranks == ["1", "2", "5", "10", "20"]


def test_utilization_vs_eps_takes_one_legend_name_per_checkpoint(report):
    fig = utilization_vs_eps(report, labels=["DINO", "DINO + KoLeo-Proto"])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "DINO / head_dense (K=200)" in labels and "DINO + KoLeo-Proto / random_init (K=300)" in labels
    from collapse_probe import InputError

    with pytest.raises(InputError, match="labels"):
        utilization_vs_eps(report, labels=["one"])


def test_small_groups_label_every_size():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # 10 directions: 4 with three copies, 3 with two, 3 alone (K = 21); largest group 3
    basis = np.eye(16)[:10]
    head = np.concatenate([basis, basis[:4], basis[:4], basis[4:7]])
    fig = group_sizes_by_rank(audit(head, eps=[0.025]).checkpoints[0].heads[0])
    FigureCanvasAgg(fig).draw()
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()] == ["1", "2", "3"]


def test_one_group_is_singular():
    rng = np.random.default_rng(3)
    centre = rng.standard_normal(16)
    # 20 copies of one direction, jittered far below eps 0.025: one group at every threshold
    head = centre / np.linalg.norm(centre) + 1e-5 * rng.standard_normal((20, 16))
    audited = audit(head, eps=[0.025, 0.5]).checkpoints[0].heads[0]
    assert audited.result_at(0.025).unique == 1
    labels = [t.get_text() for t in group_sizes_by_rank(audited).legends[0].get_texts()]
    assert labels == ["eps 0.025, 0.5: 1 group, largest 20"]
    assert pca_map(audited).get_suptitle().startswith("Prototype map (PCA): prototypes, 1 group at eps 0.025")
