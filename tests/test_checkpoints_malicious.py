"""Malicious pickles never run: every variant, through every command that reads checkpoints.

Each payload would create a sentinel file if it ran (``os.system``, ``builtins.eval``,
``subprocess.call``). Without ``--trust-checkpoint`` the outcome is either the audit with the
replaced globals listed (the head does not depend on the payload) or exit 2 with one line (the
head does, or nothing readable is left: a bare pickle, numpy object arrays). The sentinel
never appears.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from layouts import planted_prototypes, write_dino
from typer.testing import CliRunner

from collapse_probe.cli.app import app
from collapse_probe.options import ReadOptions

runner = CliRunner()
K, D = 32, 8


class SystemPayload:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


class EvalPayload(SystemPayload):
    def __reduce__(self):
        return (builtins.eval, (f"open({self.sentinel!r}, 'w').close()",))


class SubprocessPayload(SystemPayload):
    def __reduce__(self):
        return (subprocess.call, (["touch", self.sentinel],))


PAYLOADS = {"os.system": SystemPayload, "builtins.eval": EvalPayload,
            "subprocess.call": SubprocessPayload}
#: The names the replaced globals get (``os.system`` pickles as ``posix.system`` on Linux).
PICKLED_NAME = {"os.system": os.system.__module__ + ".system", "builtins.eval": "builtins.eval",
                "subprocess.call": "subprocess.call"}

#: variant -> outcome: "audit" (runs, replaced globals listed) or "refused" (exit 2).
VARIANTS = {
    "zip-beside": "audit",          # a payload next to the weights, zip format
    "legacy-beside": "audit",       # the same in the pre-1.6 format
    "nested-in-dict": "audit",      # deep inside the optimizer state
    "namespace-attribute": "audit",  # an attribute of the pickled args Namespace
    "head-tensor": "refused",       # the prototype tensor itself is the payload
    "raw-pickle": "refused",        # a bare pickle saved as .pth
    "npy-object": "refused",        # a numpy object array holding the payload
    "npz-object": "refused",
}


def _build(folder: Path, variant: str, payload) -> Path:
    protos = planted_prototypes(8, 4, D, seed=4)[0]
    if variant in ("raw-pickle", "npy-object", "npz-object"):
        if variant == "raw-pickle":
            path = folder / "checkpoint.pth"
            path.write_bytes(pickle.dumps({"teacher": payload}, protocol=2))
            return path
        array = np.empty(2, dtype=object)
        array[:] = [payload, payload]
        if variant == "npy-object":
            path = folder / "prototypes.npy"
            np.save(path, array, allow_pickle=True)
        else:
            path = folder / "prototypes.npz"
            np.savez(path, prototypes=array)
        return path
    clean = write_dino(folder / "clean.pth", prototypes=protos)
    state = torch.load(clean, weights_only=False)
    clean.unlink()
    if variant in ("zip-beside", "legacy-beside"):
        state["extra"] = payload
    elif variant == "nested-in-dict":
        state["optimizer"]["param_groups"][0]["hook"] = {"deeper": [payload]}
    elif variant == "namespace-attribute":
        state["args"].on_epoch_end = payload
    elif variant == "head-tensor":
        state["teacher"]["head.last_layer.weight_v"] = payload
    path = folder / "checkpoint.pth"
    torch.save(state, path, _use_new_zipfile_serialization=variant != "legacy-beside")
    return path


def _features(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "views.npy"
    np.save(path, rng.standard_normal((64, 2, 16)).astype(np.float32))
    return path


def _run(command: str, path: Path, folder: Path):
    if command == "audit":
        args = ["audit", str(path), "--json", "-"]
    elif command == "inspect":
        args = ["inspect", str(path), "--json", "-"]
    elif command == "trend":
        args = ["trend", str(path), "--out", str(folder / "trend")]
    elif command == "gate":
        config = folder / "gate.toml"
        config.write_text(f'checkpoints = ["{path}"]\nfail_under = 0.0\n')
        args = ["gate", "--config", str(config), "--quiet"]
    else:
        args = ["finetune", str(path), "--features", str(_features(folder)), "--out",
                str(folder / "tuned.pth"), "--steps", "1", "--quiet"]
    return runner.invoke(app, args, env={"COLUMNS": "160", "GITHUB_ACTIONS": ""})


@pytest.mark.parametrize("payload_name", sorted(PAYLOADS))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("command", ["audit", "inspect", "trend", "gate", "finetune"])
def test_payload_never_runs(tmp_path, command, variant, payload_name):
    sentinel = tmp_path / "PAYLOAD_RAN"
    path = _build(tmp_path, variant, PAYLOADS[payload_name](sentinel))
    result = _run(command, path, tmp_path)
    assert not sentinel.exists(), f"{payload_name} ran through {command} on {variant}"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    outcome = VARIANTS[variant]
    replaced = PICKLED_NAME[payload_name]
    if command == "gate":
        # A refused file is a failed check for that file, never a crash.
        assert result.exit_code == (0 if outcome == "audit" else 1), result.output
        if outcome == "refused":
            assert "cannot audit" in result.output
            assert "--trust-checkpoint (trust=True)" not in result.output
        return
    if outcome == "refused" or command == "finetune":
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
        if variant in ("head-tensor",) or command == "finetune" and outcome == "audit":
            assert replaced in lines[0]
        if variant in ("npy-object", "npz-object"):
            assert "Python objects" in lines[0]
        return
    assert result.exit_code == 0, result.output
    if command == "audit":
        (checkpoint,) = json.loads(result.stdout)["checkpoints"]
        assert checkpoint["replaced_classes"] == [replaced]
        assert checkpoint["heads"][0]["num_prototypes"] == K
    elif command == "inspect":
        info = json.loads(result.stdout)
        assert info["replaced_classes"] == [replaced] and info["heads"][0]["num_prototypes"] == K


def test_trusting_the_file_runs_it_and_says_so(tmp_path, caplog):
    """The opt-in is real (and loud): full unpickling runs the payload."""
    from collapse_probe.checkpoints import load_state

    sentinel = tmp_path / "PAYLOAD_RAN"
    path = _build(tmp_path, "zip-beside", SystemPayload(sentinel))
    with caplog.at_level("WARNING"):
        load_state(path, trust=True)
    assert sentinel.exists()
    assert any("any code the file holds runs" in r.getMessage() for r in caplog.records)


def test_torchscript_archive_is_refused_without_running_it(tmp_path):
    from collapse_probe.checkpoints import read_checkpoint
    from collapse_probe.errors import CheckpointError

    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), str(path))
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        read_checkpoint(path, ReadOptions(trust=True))


def test_a_pickle_that_sets_attributes_on_an_allowed_class_is_refused_and_undone(tmp_path):
    """BUILD with slot state can ``setattr`` on a class the pickle names (here
    ``argparse.Namespace``): nothing runs, but the change is undone and the file refused."""
    import argparse
    import pickletools

    from collapse_probe.checkpoints import load_state
    from collapse_probe.errors import UnsafeCheckpointError

    torch.save({"w": torch.ones(2), "x": 1234567}, tmp_path / "c.pth")
    with zipfile_read(tmp_path / "c.pth") as (name, data, members):
        # {'w': ..., 'x': Namespace-class with __repr__ set}: GLOBAL argparse Namespace,
        # (None, {'__repr__': 'hacked'}) BUILD, in place of the value 1234567.
        zero = b"J" + (1234567).to_bytes(4, "little")
        payload = (b"cargparse\nNamespace\n" + b"N}X\x08\x00\x00\x00__repr__X\x06\x00\x00\x00hacked"
                   b"s\x86b")
        assert data.count(zero) == 1
        patched = data.replace(zero, payload, 1)
        pickletools.dis(patched, out=io.StringIO())  # still a well-formed pickle
        members[name] = patched
    before = argparse.Namespace.__repr__
    with pytest.raises(UnsafeCheckpointError, match="argparse.Namespace"):
        load_state(tmp_path / "c.pth")
    assert argparse.Namespace.__repr__ is before


def test_forced_weights_only_environment_is_named(tmp_path, monkeypatch):
    from collapse_probe.checkpoints import load_state
    from collapse_probe.errors import CheckpointError

    torch.save({"w": torch.ones(2)}, tmp_path / "c.pth")
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointError, match="TORCH_FORCE_WEIGHTS_ONLY_LOAD"):
        load_state(tmp_path / "c.pth")


class zipfile_read:  # noqa: N801 - used as a context manager
    """Read a torch zip's data.pkl; on exit, write the archive back with the edited members."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        import zipfile

        with zipfile.ZipFile(self.path) as archive:
            self.members = {n: archive.read(n) for n in archive.namelist()}
        name = next(n for n in self.members if n.endswith("data.pkl"))
        return name, self.members[name], self.members

    def __exit__(self, *exc) -> None:
        import zipfile

        if exc[0] is None:
            with zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED) as archive:
                for name, data in self.members.items():
                    archive.writestr(name, data)
