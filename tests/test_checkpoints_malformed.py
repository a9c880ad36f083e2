"""Every bad input ends in exit 2 and one line naming it (in ``gate``: a failed check).

Through the CLI runner: no traceback, no hang, no misleading "empty" / "no such file", and no
wrong number (complex tensors, near-overflow values, stride-0 views of huge shapes).
"""

from __future__ import annotations

import json
import os
import pathlib
import zipfile
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


def _protos() -> np.ndarray:
    return planted_prototypes(8, 4, D, seed=5)[0]


def _one_line(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _audit(path: Path | str, *extra: str):
    return runner.invoke(app, ["audit", str(path), *extra], env={"COLUMNS": "160"})


def _with_teacher_weight(tmp_path: Path, tensor: torch.Tensor, name: str = "c.pth") -> Path:
    """A DINO checkpoint whose teacher last layer is the plain ``weight`` ``tensor``."""
    path = write_dino(tmp_path / "base.pth", prototypes=_protos(), form="plain")
    state = torch.load(path, weights_only=False)
    path.unlink()
    state["teacher"]["head.last_layer.weight"] = tensor
    state["student"]["module.head.last_layer.weight"] = tensor
    torch.save(state, tmp_path / name)
    return tmp_path / name


# --------------------------------------------------------------------------- truncated files

@pytest.fixture(scope="module")
def legacy_bytes(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("legacy")
    return write_dino(folder / "c.pth", prototypes=_protos(), legacy=True).read_bytes()


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.999])
def test_truncated_legacy_file_at_any_length(tmp_path, legacy_bytes, fraction):
    length = max(1, int(len(legacy_bytes) * fraction))
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(legacy_bytes[:length])
    _one_line(_audit(path), str(path))


def test_one_byte_pickle_marker(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"\x80")
    _one_line(_audit(path), "truncated or damaged")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickle_named_pth_is_named_as_such(tmp_path, protocol):
    """``pickle.dump(state, open("x.pth", "wb"))`` is not a torch.save file (torch.load refuses
    it too): it was called 'truncated or damaged', with advice to download it again."""
    import pickle

    state = {"teacher": {"head.last_layer.weight": torch.from_numpy(_protos())}}
    path = tmp_path / "x.pth"
    path.write_bytes(pickle.dumps(state, protocol=protocol))
    line = _one_line(_audit(path), "plain Python pickle", "torch.save")
    assert "damaged" not in line


@pytest.mark.parametrize("protocol", [2, 4])
def test_legacy_torch_save_with_any_pickle_protocol_still_loads(tmp_path, protocol):
    path = tmp_path / "c.pth"
    torch.save({"teacher": {"head.last_layer.weight": torch.from_numpy(_protos())}}, path,
               _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    result = _audit(path, "--eps", "0.025", "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoints"][0]["heads"][0]["results"][0]["unique"] == 8


# --------------------------------------------------------------------------- numpy files

def _npz(tmp_path: Path) -> Path:
    path = tmp_path / "p.npz"
    np.savez(path, prototypes=_protos())
    return path


def test_npz_with_a_bad_crc(tmp_path):
    path = _npz(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-400] ^= 0xFF  # inside the stored array bytes, before the central directory
    path.write_bytes(bytes(raw))
    _one_line(_audit(path), "p.npz")


def test_npz_with_a_corrupted_array_header(tmp_path):
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("prototypes.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <<garbage" + b"\0" * 64)
    _one_line(_audit(path), "p.npz")


def test_npy_with_a_negative_shape(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, _protos())
    raw = path.read_bytes().replace(b"(32, 8)", b"(-3, 8)")
    path.write_bytes(raw)
    _one_line(_audit(path), "p.npy")


def test_npy_object_array(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    _one_line(_audit(path), "Python objects")


# --------------------------------------------------------------------------- tensor kinds

@pytest.mark.parametrize("kind, needle", [
    ("sparse", "sparse_coo tensor"),
    ("csr", "sparse_csr tensor"),
    ("meta", "meta tensor"),
    ("quantized", "quantized tensor"),
    ("complex", "complex tensor"),
])
def test_tensor_kinds_that_are_not_dense_real_matrices(tmp_path, kind, needle):
    dense = torch.from_numpy(_protos())
    tensor = {"sparse": lambda: dense.to_sparse(), "csr": lambda: dense.to_sparse_csr(),
              "meta": lambda: dense.to("meta"),
              "quantized": lambda: torch.quantize_per_tensor(dense, 0.01, 0, torch.qint8),
              "complex": lambda: torch.complex(dense, dense)}[kind]()
    _one_line(_audit(_with_teacher_weight(tmp_path, tensor)), needle)


@pytest.mark.parametrize("legacy", [False, True])
def test_quantized_tensor_refusal_is_one_line_in_a_fresh_process(tmp_path, legacy):
    """torch warns (once per process) about TypedStorage and its deprecated quantized
    constructors while it rebuilds such a tensor: on the terminal that put four lines of torch
    internals before the one-line refusal. A fresh process, as a user runs it."""
    import subprocess
    import sys

    dense = torch.from_numpy(_protos())
    path = tmp_path / "q.pth"
    torch.save({"teacher": {"head.last_layer.weight": torch.quantize_per_tensor(
        dense, 0.01, 0, torch.qint8)}}, path, _use_new_zipfile_serialization=not legacy)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "collapse_probe", "audit", str(path)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "quantized tensor" in lines[0], result.stderr


def test_stride_zero_view_of_a_huge_shape_is_refused_without_allocating(tmp_path):
    # 2**20 x 2**12 float32 would be 16 GiB; the file stores one value.
    huge = torch.ones(1).expand(2**20, 2**12)
    path = _with_teacher_weight(tmp_path, huge)
    assert path.stat().st_size < 200_000
    _one_line(_audit(path), "stride-0 view")


def test_near_overflow_plain_weights_are_refused_not_miscounted(tmp_path):
    weights = torch.from_numpy(_protos() * 3e38 / np.abs(_protos()).max())
    _one_line(_audit(_with_teacher_weight(tmp_path, weights)), "beyond float32 range")


def test_near_overflow_weight_norm_v_is_audited_exactly(tmp_path):
    protos = _protos()
    path = write_dino(tmp_path / "base.pth", prototypes=protos)
    state = torch.load(path, weights_only=False)
    v = state["teacher"]["head.last_layer.weight_v"]
    state["teacher"]["head.last_layer.weight_v"] = v / v.abs().max() * 3e38
    torch.save(state, tmp_path / "big.pth")
    result = runner.invoke(app, ["audit", str(tmp_path / "big.pth"), "--eps", "0.025",
                                 "--json", "-"])
    assert result.exit_code == 0, result.output
    (head,) = json.loads(result.stdout)["checkpoints"][0]["heads"]
    assert head["results"][0]["unique"] == 8  # the planted groups, as without the scale


# --------------------------------------------------------------------------- damaged zip

def test_zip_checkpoint_whose_head_bytes_fail_their_crc_is_refused(tmp_path):
    protos = _protos()
    path = write_dino(tmp_path / "c.pth", prototypes=protos, form="plain")
    raw = bytearray(path.read_bytes())
    state = torch.load(path, weights_only=False)
    head = state["teacher"]["head.last_layer.weight"].numpy().tobytes()
    at = raw.find(head)
    assert at > 0
    raw[at + 5] ^= 0x01  # one flipped bit in the teacher's prototypes
    path.write_bytes(bytes(raw))
    _one_line(_audit(path), "fail their checksum")


def test_zip_checkpoint_with_damage_elsewhere_still_audits(tmp_path):
    """Only the records the heads use are checked: a flipped bit in the optimizer state does
    not stop the audit (and does not change it)."""
    path = write_dino(tmp_path / "c.pth", prototypes=_protos(), form="plain")
    state = torch.load(path, weights_only=False)
    moment = state["optimizer"]["state"][0]["exp_avg"].numpy().tobytes()
    raw = bytearray(path.read_bytes())
    at = raw.find(moment)
    assert at > 0
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    assert _audit(path).exit_code == 0


# --------------------------------------------------------------------------- file system

def test_unreadable_file(tmp_path, monkeypatch):
    path = write_dino(tmp_path / "c.pth", prototypes=_protos())
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for a user
        real_open = open

        def refuse(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        import collapse_probe.checkpoints.files as sniff_module

        monkeypatch.setattr(sniff_module, "open", refuse, raising=False)
    try:
        _one_line(_audit(path), "permission denied")
    finally:
        path.chmod(0o644)


def test_name_too_long(tmp_path):
    _one_line(_audit(tmp_path / ("x" * 300 + ".pth")), "too long")


def test_path_too_long_with_short_names_does_not_blame_a_name(tmp_path):
    # Each part is short; together they pass the system's path limit (PATH_MAX, 4096 bytes).
    path = tmp_path.joinpath(*["d" * 9] * 500, "c.pth")
    line = _one_line(_audit(path), "too long", "bytes in all")
    assert "a name of" not in line


def test_fifo_is_not_called_empty(tmp_path):
    path = tmp_path / "checkpoint.pth"
    os.mkfifo(path)
    line = _one_line(_audit(path), "FIFO")
    assert "is empty" not in line


def test_proc_file_is_not_called_empty():
    path = pathlib.Path(f"/proc/{os.getpid()}/status")
    line = _one_line(_audit(path), "special file")
    assert "is empty" not in line


def test_symlink_loop_is_not_called_missing(tmp_path):
    (tmp_path / "a.pth").symlink_to(tmp_path / "b.pth")
    (tmp_path / "b.pth").symlink_to(tmp_path / "a.pth")
    line = _one_line(_audit(tmp_path / "a.pth"), "symbolic link loop")
    assert "no such file" not in line


def test_broken_symlink_names_its_target(tmp_path):
    (tmp_path / "a.pth").symlink_to(tmp_path / "gone.pth")
    _one_line(_audit(tmp_path / "a.pth"), "broken symbolic link", "gone.pth")


def test_cache_folder_that_is_a_file(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    _one_line(_audit("synthetic-dino", "--cache-dir", str(cache)), "cache folder", "Not a directory")


def test_cache_folder_that_is_read_only(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):
        if cache in self.parents:  # what a non-root user gets in a read-only folder
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    try:
        _one_line(_audit("synthetic-dino", "--cache-dir", str(cache)), "cache folder",
                  "Permission denied")
    finally:
        cache.chmod(0o755)


# --------------------------------------------------------------------------- gate

@pytest.mark.parametrize("case", ["truncated", "fifo", "symlink-loop", "crc", "long-name"])
def test_gate_reports_a_failed_check_for_the_file(tmp_path, case):
    good = write_dino(tmp_path / "good.pth", prototypes=_protos())
    bad = tmp_path / "bad.pth"
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[:1000])
    elif case == "fifo":
        os.mkfifo(bad)
    elif case == "symlink-loop":
        bad.symlink_to(tmp_path / "loop.pth")
        (tmp_path / "loop.pth").symlink_to(bad)
    elif case == "crc":
        raw = bytearray(good.read_bytes())
        state = torch.load(good, weights_only=False)
        at = raw.find(state["teacher"]["head.last_layer.weight_v"].numpy().tobytes())
        raw[at + 3] ^= 0x10
        bad.write_bytes(bytes(raw))
    else:
        bad = tmp_path / ("y" * 300 + ".pth")
    config = tmp_path / "gate.toml"
    config.write_text(f'checkpoints = ["{good}", "{bad}"]\nfail_under = 0.0\n')
    result = runner.invoke(app, ["gate", "--config", str(config), "--quiet"],
                           env={"COLUMNS": "300", "GITHUB_ACTIONS": ""})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "cannot audit" in result.output or "cannot be looked up" in result.output
    assert "PASS" in result.output  # the good file is still checked


def test_gate_messages_name_configuration_keys_not_options(tmp_path):
    from collapse_probe.gate.config import GateConfig
    from collapse_probe.gate.run import run_gate

    path = write_dino(tmp_path / "c.pth", prototypes=_protos())
    config = GateConfig(checkpoints=(str(path),), fail_under=0.0,
                        base_dir=tmp_path, read=ReadOptions(format="msn"))
    (check,) = [c for c in run_gate(config).checks if c.failed]
    assert "--format" not in check.message and 'format = "dino" in the gate configuration' in check.message


# --------------------------------------------------------------------------- log

def _log(tmp_path: Path, lines: list[str], *extra: str):
    path = tmp_path / "log.txt"
    path.write_text("\n".join(lines) + "\n")
    return runner.invoke(app, ["log", str(path), *extra], env={"COLUMNS": "160"})


def test_log_deeply_nested_json(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    _one_line(_log(tmp_path, [deep], "-k", "64"), "no line with an `epoch`", "1 lines could not")


def test_log_enormous_integers(tmp_path):
    huge = "9" * 5000
    lines = [f'{{"epoch": {huge}, "train_loss": 4.1}}', f'{{"epoch": 1, "train_loss": {huge}}}',
             f'{{"epoch": 1, "train_loss": 1{"0" * 400}}}']
    _one_line(_log(tmp_path, lines, "-k", "64"), "3 lines could not")


def test_log_with_good_lines_beside_bad_ones_reads_the_good_ones(tmp_path):
    lines = ["[" * 50_000, '{"epoch": 0, "train_loss": 4.0}', '{"epoch": 1, "train_loss": 4.1}']
    result = _log(tmp_path, lines, "-k", "64")
    assert result.exit_code == 0 and "2 epochs" in result.stdout, result.output


def test_log_does_not_blame_out_dim_for_an_unreadable_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pth").write_bytes(b"\x80\x02}q\x00")  # cut short
    line = _one_line(_log(tmp_path, ['{"epoch": 0, "train_loss": 4.0}']), "could not be read",
                     "--num-prototypes")
    assert "records args.out_dim" not in line
    assert "--trust-checkpoint" not in line
