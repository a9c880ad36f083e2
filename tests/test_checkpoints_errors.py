"""Loader errors: every impostor file and bad option gets a typed, specific one-line message."""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import pytest
import torch
from layouts import (
    last_layer_state,
    planted_prototypes,
    write_array,
    write_backbone_only,
    write_dino,
    write_dinov2,
    write_extracted,
    write_ibot,
)

from collapse_probe.checkpoints import load_state, read_checkpoint
from collapse_probe.checkpoints.files import sniff
from collapse_probe.errors import (
    CheckpointError,
    InputError,
    NoPrototypesError,
    UnsafeCheckpointError,
)
from collapse_probe.options import ReadOptions

K, D = 12, 8


@pytest.fixture(scope="module")
def protos() -> np.ndarray:
    return planted_prototypes(4, 3, D, seed=5)[0]


class CustomConfig:
    """Stands for any class a training script might pickle (OmegaConf, a user's config)."""

    def __init__(self) -> None:
        self.lr = 0.1


class ShardedTensor:
    """Named like torch's sharded tensor class: what an FSDP shard needs to unpickle."""


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- impostor files

def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="no such file") as exc:
        read_checkpoint(tmp_path / "nope.pth")
    assert "nope.pth" in _one_line(exc)


def test_directory_with_a_checkpoint_inside_is_named(tmp_path, protos):
    with pytest.raises(CheckpointError, match="is a directory"):
        read_checkpoint(tmp_path)
    write_dinov2(tmp_path / "teacher_checkpoint.pth", prototypes=protos)
    with pytest.raises(CheckpointError, match="teacher_checkpoint.pth"):
        read_checkpoint(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        read_checkpoint(tmp_path / "e.pth")


def test_git_lfs_pointer(tmp_path):
    pointer = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:491ec6204b2d1d4b1c7a4fa8c9e8e8a0f5b6d7c8e9f0a1b2c3d4e5f6a7b8c9d0\n"
               "size 871077689\n")
    (tmp_path / "p.pth").write_text(pointer)
    with pytest.raises(CheckpointError, match="Git LFS pointer") as exc:
        read_checkpoint(tmp_path / "p.pth")
    assert "git lfs pull" in _one_line(exc)


@pytest.mark.parametrize("text,what", [
    ("<!DOCTYPE html><html><body>Access denied</body></html>", "HTML"),
    ("\n  <html><head><title>404</title></head></html>", "HTML"),
    ('<?xml version="1.0"?><Error><Code>AuthenticationFailed</Code></Error>', "XML"),
])
def test_web_page_saved_as_checkpoint(tmp_path, text, what):
    (tmp_path / "c.pth").write_text(text)
    with pytest.raises(CheckpointError, match=f"is an {what} page, not a checkpoint"):
        read_checkpoint(tmp_path / "c.pth")


def test_text_and_unknown_binary_files(tmp_path):
    (tmp_path / "t.pth").write_text("epoch: 100\nlr: 0.1\n")
    with pytest.raises(CheckpointError, match="is a text file"):
        read_checkpoint(tmp_path / "t.pth")
    (tmp_path / "b.pth").write_bytes(bytes([0x00, 0xFF, 0x13, 0x37]) * 8)
    with pytest.raises(CheckpointError, match="neither a PyTorch checkpoint nor a NumPy file"):
        read_checkpoint(tmp_path / "b.pth")


@pytest.mark.parametrize("fraction", [0.5, 0.99])
def test_truncated_zip_checkpoint(tmp_path, protos, fraction):
    full = write_dino(tmp_path / "full.pth", prototypes=protos).read_bytes()
    (tmp_path / "cut.pth").write_bytes(full[:int(len(full) * fraction)])
    with pytest.raises(CheckpointError, match="truncated") as exc:
        read_checkpoint(tmp_path / "cut.pth")
    assert "again" in _one_line(exc)


def test_truncated_legacy_checkpoint(tmp_path, protos):
    full = write_dino(tmp_path / "full.pth", prototypes=protos, legacy=True).read_bytes()
    (tmp_path / "cut.pth").write_bytes(full[:len(full) - 100])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        read_checkpoint(tmp_path / "cut.pth")


def test_damaged_numpy_files(tmp_path, protos):
    data = write_array(tmp_path / "p.npy", protos).read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:len(data) - 40])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        read_checkpoint(tmp_path / "cut.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="holds Python objects"):
        read_checkpoint(tmp_path / "objects.npy")


def test_zip_that_is_neither_torch_nor_numpy(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "c.pth", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="zip archive but neither"):
        read_checkpoint(tmp_path / "c.pth")


@pytest.mark.parametrize("nest", [None, "state_dict"])
@pytest.mark.parametrize("backbone", ["vit", "resnet50"])
def test_backbone_only_release(tmp_path, nest, backbone):
    path = write_backbone_only(tmp_path / "dino_deitsmall16_pretrain.pth", backbone=backbone, nest=nest)
    with pytest.raises(NoPrototypesError, match="backbone weights only") as exc:
        read_checkpoint(path)
    assert "_full_checkpoint.pth" in _one_line(exc) and "checkpoint.pth" in str(exc.value)


def test_released_ibot_teacher_file_is_backbone_only(tmp_path, protos):
    full = write_ibot(tmp_path / "checkpoint.pth", prototypes=protos)
    path = write_extracted(tmp_path / "checkpoint_teacher.pth", full, with_head=False)
    with pytest.raises(NoPrototypesError, match="backbone weights only"):
        read_checkpoint(path)


@pytest.mark.parametrize("name", ["model_0012499.rank_0.pth", "model_final.rank_13.pth"])
def test_fsdp_shard_by_name(tmp_path, protos, name):
    path = write_dinov2(tmp_path / name, prototypes=protos)
    with pytest.raises(CheckpointError, match="FSDP shard"):
        read_checkpoint(path)


def test_fsdp_shard_by_content(tmp_path):
    torch.save({"model": {"w": ShardedTensor()}}, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="sharded tensors") as exc:
        read_checkpoint(tmp_path / "model.pth")
    assert not isinstance(exc.value, UnsafeCheckpointError)
    assert "FSDP" in str(exc.value)


def test_no_prototypes_lists_the_largest_matrices(tmp_path):
    torch.save({"encoder": {"proj.weight": torch.randn(40, 8), "fc.weight": torch.randn(3, 8),
                            "norm.weight": torch.ones(8)}, "step": 3}, tmp_path / "c.pth")
    with pytest.raises(NoPrototypesError, match="no recognisable prototypes") as exc:
        read_checkpoint(tmp_path / "c.pth")
    message = _one_line(exc)
    assert "encoder.proj.weight [40, 8], encoder.fc.weight [3, 8]" in message
    assert "key=<path>" in message  # the Python API names its keyword; the CLI, --key


def test_forced_format_that_does_not_match(tmp_path, protos):
    path = write_dino(tmp_path / "c.pth", prototypes=protos)
    with pytest.raises(NoPrototypesError, match="looks like a dino checkpoint"):
        read_checkpoint(path, ReadOptions(format="dinov2"))
    with pytest.raises(NoPrototypesError, match="no msn heads.*looks like a dino checkpoint"):
        read_checkpoint(path, ReadOptions(format="msn"))
    torch.save({"weights": {"w": torch.randn(4, 3)}}, tmp_path / "other.pth")
    with pytest.raises(NoPrototypesError, match="the ibot layout"):
        read_checkpoint(tmp_path / "other.pth", ReadOptions(format="ibot"))


def test_key_that_does_not_exist_lists_nearby_keys(tmp_path, protos):
    path = write_dino(tmp_path / "c.pth", prototypes=protos)
    with pytest.raises(NoPrototypesError, match="no tensor or last layer at key") as exc:
        read_checkpoint(path, ReadOptions(key="teacher.head.last"))
    assert "teacher.head.mlp.0.weight" in str(exc.value)


# --------------------------------------------------------------------------- degenerate heads

def _head_file(tmp_path, layer: dict) -> pathlib.Path:
    torch.save({"teacher": {"backbone.cls_token": torch.zeros(1, 1, 4)} | layer,
                "student": {"module.backbone.cls_token": torch.zeros(1, 1, 4)} | layer},
               tmp_path / "c.pth")
    return tmp_path / "c.pth"


def test_nan_rows_name_the_key(tmp_path, protos):
    layer = last_layer_state("head.last_layer", protos)
    layer["head.last_layer.weight_v"][3, 0] = float("nan")
    with pytest.raises(InputError, match=r"teacher\.head\.last_layer\.weight_v.*NaN or Inf in 1 rows"):
        read_checkpoint(_head_file(tmp_path, layer))


def test_zero_rows_name_the_key(tmp_path, protos):
    gains = np.ones(K)
    gains[[2, 7]] = 0.0
    layer = last_layer_state("head.last_layer", protos, gains=gains)
    with pytest.raises(InputError, match=r"teacher\.head\.last_layer\.weight_v.*2 all-zero rows"):
        read_checkpoint(_head_file(tmp_path, layer))
    plain = last_layer_state("head.last_layer", protos, form="plain", gains=gains)
    with pytest.raises(InputError, match=r"teacher\.head\.last_layer\.weight: .*all-zero"):
        read_checkpoint(_head_file(tmp_path, plain))


def test_single_prototype_is_refused(tmp_path, protos):
    layer = last_layer_state("head.last_layer", protos[:1], form="plain")
    with pytest.raises(InputError, match=r"teacher\.head\.last_layer\.weight.*K >= 2"):
        read_checkpoint(_head_file(tmp_path, layer))


def test_mismatched_weight_norm_pair(tmp_path, protos):
    layer = last_layer_state("head.last_layer", protos)
    layer["head.last_layer.weight_g"] = torch.ones(K + 1, 1)
    with pytest.raises(CheckpointError, match="do not form a weight-norm pair"):
        read_checkpoint(_head_file(tmp_path, layer))


# --------------------------------------------------------------------------- safe loading

def test_namespace_and_posix_path_load_without_trust(tmp_path, protos):
    path = write_dino(tmp_path / "c.pth", prototypes=protos, with_path_args=True)
    state = load_state(path)
    assert isinstance(state["args"], argparse.Namespace)
    assert isinstance(state["args"].output_dir, pathlib.PurePath)
    assert read_checkpoint(path).format == "dino"


@pytest.mark.parametrize("legacy", [False, True])
def test_unknown_class_is_a_placeholder_and_loads_with_trust(tmp_path, protos, legacy):
    from collapse_probe.checkpoints.unpickle import Placeholder

    write_dino(tmp_path / "c.pth", prototypes=protos)
    state = torch.load(tmp_path / "c.pth", weights_only=False)
    state["config"] = CustomConfig()
    torch.save(state, tmp_path / "unknown.pth", _use_new_zipfile_serialization=not legacy)
    checkpoint = read_checkpoint(tmp_path / "unknown.pth")
    assert checkpoint.replaced == ("test_checkpoints_errors.CustomConfig",)
    np.testing.assert_allclose(checkpoint.heads[0].vectors,
                               protos / np.linalg.norm(protos, axis=1, keepdims=True), atol=1e-6)
    loaded = load_state(tmp_path / "unknown.pth")
    assert isinstance(loaded["config"], Placeholder) and not isinstance(loaded["config"], CustomConfig)
    assert isinstance(loaded["args"], argparse.Namespace)  # allow-listed: rebuilt, not replaced
    trusted = read_checkpoint(tmp_path / "unknown.pth", ReadOptions(trust=True))
    assert trusted.replaced == () and trusted.heads[0].num_prototypes == K
    assert isinstance(load_state(tmp_path / "unknown.pth", trust=True)["config"], CustomConfig)


def test_trusted_file_whose_class_cannot_be_imported(tmp_path, monkeypatch):
    import sys
    import types

    module = types.ModuleType("vanishing_config")
    cls = type("Config", (), {"__module__": "vanishing_config"})
    module.Config = cls
    monkeypatch.setitem(sys.modules, "vanishing_config", module)
    torch.save({"config": cls()}, tmp_path / "c.pth")
    monkeypatch.delitem(sys.modules, "vanishing_config")
    with pytest.raises(CheckpointError, match="class that cannot be imported.*vanishing_config"):
        load_state(tmp_path / "c.pth", trust=True)


def test_load_state_refuses_bare_tensors(tmp_path):
    write_array(tmp_path / "t.pt", np.ones((3, 2)))
    with pytest.raises(CheckpointError, match="holds a Tensor, not a checkpoint dict"):
        load_state(tmp_path / "t.pt")


def test_sniff_kinds(tmp_path, protos):
    assert sniff(write_dino(tmp_path / "a.pth", prototypes=protos)) == "torch-zip"
    assert sniff(write_dino(tmp_path / "b.pth", prototypes=protos, legacy=True)) == "torch-legacy"
    assert sniff(write_array(tmp_path / "c.npy", protos)) == "npy"
    assert sniff(write_array(tmp_path / "d.npz", {"x": protos})) == "npz"


# --------------------------------------------------------------------------- options

def test_unknown_network_and_format_name_the_valid_values(tmp_path, protos):
    path = write_dino(tmp_path / "c.pth", prototypes=protos)
    with pytest.raises(InputError, match="unknown network 'ema': expected one of teacher, student"):
        read_checkpoint(path, ReadOptions(network="ema"))
    with pytest.raises(InputError, match="unknown format 'dino2'.*dinov2.*solo-learn.*array"):
        read_checkpoint(path, ReadOptions(format="dino2"))


def test_network_missing_from_the_file(tmp_path, protos):
    path = write_dinov2(tmp_path / "teacher_checkpoint.pth", prototypes=protos)
    with pytest.raises(CheckpointError, match="no 'student' network.*network='teacher'"):
        read_checkpoint(path, ReadOptions(network="student"))


def test_array_format_mismatches(tmp_path, protos):
    with pytest.raises(CheckpointError, match="holds a bare array, not a dino checkpoint"):
        read_checkpoint(write_array(tmp_path / "p.npy", protos), ReadOptions(format="dino"))
    with pytest.raises(CheckpointError, match="holds a checkpoint dict, not a bare array"):
        read_checkpoint(write_dino(tmp_path / "c.pth", prototypes=protos), ReadOptions(format="array"))
    with pytest.raises(CheckpointError, match="pass key=<name>"):
        read_checkpoint(write_array(tmp_path / "two.npz", {"a": protos, "b": protos}))
    with pytest.raises(CheckpointError, match="has no array 'c': it holds a, b"):
        read_checkpoint(tmp_path / "two.npz", ReadOptions(key="c"))
    with pytest.raises(InputError, match="expected a 2-D array"):
        read_checkpoint(write_array(tmp_path / "v.npy", protos[0]))


def test_a_file_that_cannot_be_memory_mapped_is_read_whole(tmp_path, protos, monkeypatch):
    path = write_dino(tmp_path / "c.pth", prototypes=protos)
    real_load = torch.load
    calls = []

    def load(*args, mmap=None, **kwargs):
        calls.append(mmap)
        if mmap:
            raise RuntimeError("storage alignment")
        return real_load(*args, mmap=mmap, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    assert read_checkpoint(path).heads[0].num_prototypes == K
    assert calls == [True, False]
