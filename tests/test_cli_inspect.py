"""``inspect`` and ``zoo`` through the CLI runner: tables, JSON, and every error's exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from layouts import planted_prototypes, write_backbone_only, write_dino, write_ibot, write_msn
from typer.testing import CliRunner

from collapse_probe.cli.app import app
from collapse_probe.zoo import ZOO_ENTRIES

runner = CliRunner()
K, D = 16, 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inspect")
    prototypes = planted_prototypes(4, 4, D, seed=6)[0]
    gains = np.linspace(0.5, 2.0, K)
    write_dino(folder / "dino.pth", prototypes=prototypes, gains=gains)
    write_ibot(folder / "ibot.pth", prototypes=prototypes, form="weight-norm-new")
    write_msn(folder / "msn.pth.tar", prototypes=prototypes)
    write_backbone_only(folder / "dino_deitsmall16_pretrain.pth")
    (folder / "page.pth").write_text("<html><body>Sign in</body></html>")
    return folder


def invoke(args: list[str], cwd: Path, **env: str):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, args, env={"COLUMNS": "160", **env})
    finally:
        os.chdir(old)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.replace("┃", "│").split("│")]


def test_inspect_table(folder):
    result = invoke(["inspect", "dino.pth"], folder)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dino.pth  format dino, network teacher, ")
    assert lines[0].endswith(" KB")
    assert _cells(lines[1]) == ["head", "K", "D", "form", "g all ones", "norm range", "shared with",
                                "source keys"]
    assert _cells(lines[3]) == ["head", "16", "8", "weight-norm-old", "no", "0.5 .. 2", "-",
                                "teacher.head.last_layer.weight_g, teacher.head.last_layer.weight_v"]
    assert lines[4:] == ["extras: center (16,)",
                         "other keys: student, epoch, dino_loss, optimizer, args"]


def test_inspect_shared_ibot_head_and_student(folder):
    result = invoke(["inspect", "ibot.pth", "--network", "student"], folder)
    assert result.exit_code == 0, result.output
    row = _cells(result.stdout.splitlines()[3])
    assert row[:5] == ["head", "16", "8", "weight-norm-new", "yes"]
    assert row[6] == "head_patch"
    assert "network student" in result.stdout


def test_inspect_json(folder):
    result = invoke(["inspect", "msn.pth.tar", "--json", "-"], folder)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["format"], data["network"]) == ("msn", "teacher")
    (head,) = data["heads"]
    assert head["name"] == "prototypes" and head["form"] == "raw"
    assert (head["num_prototypes"], head["dim"], head["gain_all_ones"]) == (K, D, None)
    assert 0.5 <= head["norm_min"] <= head["norm_max"] <= 3.0
    assert data["other_keys"] == ["target_encoder"]
    assert "shared" in data["notes"][0]


def test_inspect_json_to_a_file_like_every_other_json_option(folder, tmp_path):
    out = tmp_path / "info.json"
    result = invoke(["inspect", "msn.pth.tar", "--json", str(out)], folder)
    assert result.exit_code == 0, result.output
    assert "prototypes" in result.stdout  # the table still goes to the terminal
    assert json.loads(out.read_text()) == json.loads(
        invoke(["inspect", "msn.pth.tar", "--json", "-"], folder).stdout)


def test_inspect_with_key_and_format(folder):
    result = invoke(["inspect", "dino.pth", "--key", "student.head.last_layer", "--json", "-"], folder)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["format"], data["network"]) == ("key", "student")
    assert data["heads"][0]["gain_all_ones"] is True
    result = invoke(["inspect", "ibot.pth", "--format", "dino", "--json", "-"], folder)
    assert json.loads(result.stdout)["format"] == "dino"


@pytest.mark.parametrize("args,phrase", [
    (["inspect", "missing.pth"], "error: no such file: missing.pth"),
    (["inspect", "not_a_name"], "error: no such file, example or zoo name: not_a_name "
                                "(see `collapse-probe zoo list`)"),
    (["inspect", "page.pth"], "is an HTML page, not a checkpoint"),
    (["inspect", "dino_deitsmall16_pretrain.pth"], "holds backbone weights only"),
    (["inspect", "dino.pth", "--format", "dino2"], "error: unknown format 'dino2': expected one of"),
    (["inspect", "dino.pth", "--key", "teacher.nothing"], "error: no tensor or last layer at key"),
    (["inspect", "msn.pth.tar", "--format", "dinov2"], "looks like a msn checkpoint"),
])
def test_inspect_errors_are_one_line_exit_2(folder, args, phrase):
    result = invoke(args, folder)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and phrase in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_bad_network_is_a_usage_error(folder):
    result = invoke(["inspect", "dino.pth", "--network", "ema"], folder)
    assert result.exit_code == 2
    assert "teacher" in result.stderr and "student" in result.stderr


def test_inspect_lists_classes_it_did_not_load(folder, tmp_path):
    import json

    import torch

    state = torch.load(folder / "dino.pth", weights_only=False)
    state["config"] = _Config()
    torch.save(state, tmp_path / "unknown.pth")
    shown = invoke(["inspect", "unknown.pth"], tmp_path)
    assert shown.exit_code == 0 and "format dino" in shown.stdout
    assert "not loaded" in shown.stdout and "test_cli_inspect._Config" in shown.stdout
    as_json = json.loads(invoke(["inspect", "unknown.pth", "--json", "-"], tmp_path).stdout)
    assert as_json["replaced_classes"] == ["test_cli_inspect._Config"]
    trusted = invoke(["inspect", "unknown.pth", "--trust-checkpoint"], tmp_path)
    assert trusted.exit_code == 0 and "not loaded" not in trusted.stdout
    plain = json.loads(invoke(["inspect", "dino.pth", "--json", "-"], folder).stdout)
    assert plain["replaced_classes"] == []


class _Config:
    pass


def test_inspect_bundled_example_by_name(tmp_path):
    from collapse_probe.examples import EXAMPLE_NAMES

    result = invoke(["inspect", EXAMPLE_NAMES[0], "--json", "-", "--cache-dir", str(tmp_path)], tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["heads"][0]["num_prototypes"] > 0


# --------------------------------------------------------------------------- zoo

def test_zoo_list(tmp_path):
    result = invoke(["zoo", "list", "--cache-dir", str(tmp_path)], tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert _cells(lines[0]) == ["name", "family", "arch", "dataset", "K", "size", "paper unique",
                                "verified", "cached"]
    rows = {cells[0]: cells for cells in map(_cells, lines[2:])}
    assert list(rows) == [entry.name for entry in ZOO_ENTRIES]
    assert rows["dino_vits16"] == ["dino_vits16", "dino", "ViT-S/16", "ImageNet-1K", "65536", "-",
                                   "1078", "structure", "no"]
    assert rows["dino_vitb16"][5] == "871 MB" and rows["dino_vitb16"][7] == "size"
    assert rows["esvit_swint7"][6:] == ["1157", "structure", "needs --url"]


def test_zoo_list_marks_cached_files(tmp_path, folder):
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "msn_vits16.pth.tar").write_bytes((folder / "msn.pth.tar").read_bytes())
    (tmp_path / "zoo" / "msn_vitb16.pth.tar").write_bytes(b"PK")  # damaged: not counted as cached
    result = invoke(["zoo", "list"], tmp_path, COLLAPSE_PROBE_CACHE=str(tmp_path))
    rows = {cells[0]: cells for cells in map(_cells, result.stdout.splitlines()[2:])}
    assert rows["msn_vits16"][-1] == "yes" and rows["msn_vitb16"][-1] == "no"


def test_zoo_fetch_errors(tmp_path):
    result = invoke(["zoo", "fetch", "esvit_swint7", "--cache-dir", str(tmp_path)], tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: esvit_swint7 has no public download URL")
    result = invoke(["zoo", "fetch", "dino_vits61", "--cache-dir", str(tmp_path)], tmp_path)
    assert result.exit_code == 2 and "Did you mean dino_vits16" in result.stderr


def test_zoo_fetch_prints_the_cached_path(tmp_path, folder):
    cached = tmp_path / "zoo" / "msn_vits16.pth.tar"
    cached.parent.mkdir()
    cached.write_bytes((folder / "msn.pth.tar").read_bytes())
    result = invoke(["zoo", "fetch", "msn_vits16", "--cache-dir", str(tmp_path)], tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{cached}\n"
