"""write_report: every file, in one step, and nothing at all on error."""

import json

import pytest
from report_heads import collapsed_head

from collapse_probe import InputError, audit
from collapse_probe.report.writer import write_report


@pytest.fixture(scope="module")
def report():
    return audit(collapsed_head(num=40), eps=[0.025, 0.5])


EXPECTED = ["report.html", "report.md", "report.json", "heads.csv"] + sorted(
    f"{stem}.{ext}" for stem in ("utilization_vs_eps", "array_prototypes_group_sizes",
                                 "array_prototypes_nn_similarity", "array_prototypes_pca",
                                 "array_prototypes_norms") for ext in ("png", "svg"))


def test_writes_every_file(report, tmp_path):
    out = tmp_path / "nested" / "report"
    paths = write_report(report, out)
    assert [p.name for p in paths] == EXPECTED
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPECTED)  # no temporary leftovers
    assert sorted(p.name for p in out.parent.iterdir()) == ["report"]
    assert json.loads((out / "report.json").read_text())["checkpoints"][0]["heads"][0]["verdict"][
        "label"] == "collapsed"
    assert (out / "utilization_vs_eps.png").read_bytes().startswith(b"\x89PNG")
    assert "](utilization_vs_eps.png)" in (out / "report.md").read_text()


def test_formats_subset_and_markdown_without_png_links_nothing(report, tmp_path):
    paths = write_report(report, tmp_path / "r", formats=("md", "csv"))
    assert [p.name for p in paths] == ["report.md", "heads.csv"]
    assert ".png)" not in (tmp_path / "r" / "report.md").read_text()


def test_existing_folder_keeps_other_files(report, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "heads.csv").write_text("old")
    write_report(report, out, formats=("csv",))
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "heads.csv").read_text().startswith("checkpoint,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_error_while_rendering_leaves_nothing(report, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr("collapse_probe.report.csv.render_csv", broken)
    formats = ("md", "json", "csv")  # the CSV is rendered last
    with pytest.raises(RuntimeError):
        write_report(report, tmp_path / "new", formats=formats)
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "report.md").write_text("previous")
    with pytest.raises(RuntimeError):
        write_report(report, existing, formats=formats)
    assert [p.name for p in existing.iterdir()] == ["report.md"]
    assert (existing / "report.md").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_error_while_writing_removes_the_temporary_folder(report, tmp_path, monkeypatch):
    import errno

    from collapse_probe import output
    from collapse_probe.errors import OutputError

    write_report(report, tmp_path / "old", formats=("csv",))
    before = (tmp_path / "old" / "heads.csv").read_bytes()

    def failing(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.os, "rename", failing)
    monkeypatch.setattr(output, "_exchange", failing)
    with pytest.raises(OutputError, match="disk is full"):
        write_report(report, tmp_path / "new", formats=("csv",))
    with pytest.raises(OutputError, match="disk is full"):
        write_report(report, tmp_path / "old", formats=("csv", "json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["heads.csv"]
    assert (tmp_path / "old" / "heads.csv").read_bytes() == before


@pytest.mark.parametrize("formats", [("pdf",), ()])
def test_bad_formats(report, tmp_path, formats):
    with pytest.raises(InputError, match="formats"):
        write_report(report, tmp_path / "r", formats=formats)
    assert list(tmp_path.iterdir()) == []


def test_out_is_a_file(report, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_report(report, target, formats=("csv",))
    assert target.read_text() == "x"
