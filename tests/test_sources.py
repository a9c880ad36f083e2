"""``resolve_source``: paths, bundled examples, zoo names, and what is none of those."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import planted_prototypes, write_dino

from collapse_probe import zoo
from collapse_probe.errors import CheckpointError
from collapse_probe.examples import EXAMPLE_NAMES
from collapse_probe.sources import resolve_source


def test_existing_path_is_itself(tmp_path, monkeypatch):
    path = write_dino(tmp_path / "c.pth", prototypes=planted_prototypes(2, 2, 4)[0])
    assert resolve_source(str(path)) == path
    assert resolve_source(path) == path
    monkeypatch.chdir(tmp_path)
    assert resolve_source("c.pth") == Path("c.pth")


def test_a_file_named_like_a_zoo_entry_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dino_vits16").write_bytes(b"local")
    assert resolve_source("dino_vits16") == Path("dino_vits16")


def test_example_name_resolves_to_its_file(tmp_path, monkeypatch):
    # The real generation is exercised by `inspect <example>` in test_cli_inspect.py.
    from collapse_probe import examples

    calls = []
    monkeypatch.setattr(examples, "example_path",
                        lambda name, *, cache=None: calls.append((name, cache)) or tmp_path / "e.pth")
    assert resolve_source(EXAMPLE_NAMES[0], cache_dir=tmp_path) == tmp_path / "e.pth"
    assert calls == [(EXAMPLE_NAMES[0], tmp_path)]


def test_zoo_name_is_fetched(tmp_path, monkeypatch):
    calls = []

    def fake_fetch(name, *, cache_dir=None, progress=None):
        calls.append((name, cache_dir, progress))
        return tmp_path / "zoo" / f"{name}.pth"

    def report(done, total):
        pass

    monkeypatch.setattr(zoo, "fetch", fake_fetch)
    assert resolve_source("ibot_vitl16_in22k", cache_dir=tmp_path, progress=report) == \
        tmp_path / "zoo" / "ibot_vitl16_in22k.pth"
    assert calls == [("ibot_vitl16_in22k", tmp_path, report)]


@pytest.mark.parametrize("text", ["runs/ckpt.pth", "model.pth", "a/b", str(Path("/nowhere/x"))])
def test_path_like_text_that_does_not_exist(text):
    with pytest.raises(CheckpointError, match=r"^no such file: "):
        resolve_source(text)


def test_missing_path_object():
    with pytest.raises(CheckpointError, match="no such file"):
        resolve_source(Path("/nowhere/checkpoint.pth"))


def test_unknown_bare_name():
    with pytest.raises(CheckpointError, match=r"no such file, example or zoo name: dino_vit_s16 "
                                              r"\(see `collapse-probe zoo list`\)"):
        resolve_source("dino_vit_s16")


def test_urls_are_not_fetched_directly():
    with pytest.raises(CheckpointError, match="URLs are not read directly.*url='https://"):
        resolve_source("https://dl.fbaipublicfiles.com/dino/x/x_full_checkpoint.pth")
