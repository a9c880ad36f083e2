"""Training states as the public scripts save them load by default, with nothing replaced.

DINO, iBOT, EsViT, SwAV and DeepCluster-v2 set ``param_group["lr"]`` / ``weight_decay`` from
numpy schedules, so their optimizer states hold ``numpy.float64`` scalars; Lightning files of
hydra-configured runs (solo-learn) pickle an OmegaConf ``DictConfig``. Each is read without
``trust``, the planted prototypes come back, and no class is reported as replaced.
"""

from __future__ import annotations

import argparse
import io
import pathlib
import pickletools
import zipfile

import numpy as np
import pytest
import torch
from layouts import (as_numpy1, expected_vectors, planted_prototypes, write_dino, write_esvit,
                     write_ibot, write_sololearn, write_swav)

from collapse_probe.checkpoints import load_state, read_checkpoint
from collapse_probe.checkpoints.unpickle import ConfigDict, ConfigList

K, D = 32, 8


@pytest.fixture(scope="module")
def protos() -> np.ndarray:
    return planted_prototypes(8, 4, D, seed=11)[0]


def _globals(path) -> set[str]:
    """The globals a checkpoint's pickle names (zip: data.pkl; legacy: the whole stream)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    else:
        data = path.read_bytes()
    found = set()
    stream = io.BytesIO(data)
    for _ in range(5):  # legacy: magic, protocol, sys info, the object, storage keys
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    found.add(str(arg).replace(" ", "."))
        except Exception:  # noqa: BLE001 - the raw storage bytes follow the last pickle
            break
    return found


def _assert_heads(checkpoint, protos: np.ndarray) -> None:
    assert checkpoint.replaced == ()
    np.testing.assert_allclose(checkpoint.heads[0].vectors, expected_vectors(protos), atol=1e-6)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("numpy1", [False, True])
@pytest.mark.parametrize("backbone", ["vit", "resnet50"])
def test_dino_training_state_loads_by_default(tmp_path, protos, legacy, numpy1, backbone):
    path = write_dino(tmp_path / "checkpoint.pth", prototypes=protos, backbone=backbone,
                      with_path_args=True, fp16=True, legacy=legacy, numpy1=numpy1)
    names = _globals(path)
    core = "numpy.core.multiarray.scalar" if numpy1 else "numpy._core.multiarray.scalar"
    assert core in names and "numpy.dtype" in names  # what weights_only refuses
    checkpoint = read_checkpoint(path)
    _assert_heads(checkpoint, protos)
    state = load_state(path)
    group = state["optimizer"]["param_groups"][0]
    assert type(group["lr"]) is np.float64 and group["lr"] == np.linspace(5e-4, 1e-6, 10)[3]
    assert type(group["weight_decay"]) is np.float64
    assert isinstance(state["args"], argparse.Namespace)
    assert state["args"].output_dir == pathlib.PurePosixPath("/checkpoint/dino/run")
    assert state["fp16_scaler"]["scale"] == 65536.0
    assert any(k.startswith("module.") for k in state["student"])  # the DDP student
    # The optimizer state after a real step: AdamW moments or SGD momentum buffers.
    first = state["optimizer"]["state"][0]
    assert ("exp_avg" in first) if backbone == "vit" else ("momentum_buffer" in first)


def test_ibot_and_esvit_training_states(tmp_path, protos):
    ibot = read_checkpoint(write_ibot(tmp_path / "ibot.pth", prototypes=protos))
    _assert_heads(ibot, protos)
    esvit = read_checkpoint(write_esvit(tmp_path / "esvit.pth", prototypes=protos))
    assert esvit.replaced == () and {h.name for h in esvit.heads} == {"head", "head_dense"}
    lr = load_state(tmp_path / "ibot.pth")["optimizer"]["param_groups"][1]["lr"]
    assert type(lr) is np.float64


@pytest.mark.parametrize("multi", [False, True], ids=["swav", "deepcluster-v2"])
def test_swav_and_deepcluster_training_states(tmp_path, protos, multi):
    # DeepCluster-v2 trains SwAV's MultiPrototypes module: one set per clustering.
    sets = [protos, protos[::-1].copy()] if multi else protos
    path = write_swav(tmp_path / "ckp-100.pth", prototypes=sets, container="state_dict")
    as_numpy1(path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.replaced == () and len(checkpoint.heads) == (2 if multi else 1)
    group = load_state(path)["optimizer"]["param_groups"][0]
    assert type(group["lr"]) is np.float64 and group["eta"] == 0.001


def test_lightning_checkpoint_with_a_hydra_omegaconf_config(tmp_path, protos):
    pytest.importorskip("omegaconf", reason="the omegaconf test extra builds real DictConfigs")
    path = write_sololearn(tmp_path / "last.ckpt", prototypes=protos, hydra_config=True)
    assert {"omegaconf.dictconfig.DictConfig", "omegaconf.nodes.AnyNode"} <= _globals(path)
    checkpoint = read_checkpoint(path)
    _assert_heads(checkpoint, protos)
    cfg = load_state(path)["hyper_parameters"]["cfg"]
    # Read as plain data, without importing omegaconf's classes.
    assert isinstance(cfg, ConfigDict) and isinstance(cfg["devices"], ConfigList)
    assert cfg["method_kwargs"]["num_prototypes"] == K and cfg["devices"] == [0, 1]
    assert cfg["optimizer"]["kwargs"]["eta"] == 0.02 and cfg["precision"] == "16-mixed"


def test_lightning_loops_and_callbacks_load(tmp_path, protos):
    path = write_sololearn(tmp_path / "epoch=399.ckpt", prototypes=protos)
    state = load_state(path)
    assert state["loops"]["fit_loop"]["epoch_progress"]["total"]["completed"] == 100000
    assert next(iter(state["callbacks"].values()))["dirpath"] == "trained_models/dino/run"
    _assert_heads(read_checkpoint(path), protos)


def test_loading_imports_nothing_the_file_names(tmp_path, protos, monkeypatch):
    """The restricted unpickler never imports: a module it names stays unimported."""
    import sys

    from collapse_probe.checkpoints.unpickle import RestrictedPickle

    restricted = RestrictedPickle()
    placeholder = restricted.find_class("json.tool", "main")
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    assert restricted.find_class("json.tool", "main") is placeholder
    assert "json.tool" not in sys.modules and restricted.replaced == {"json.tool.main"}
    instance = placeholder("--help")  # REDUCE: recorded, not run
    assert instance.args == ("--help",)


def test_numpy_arrays_of_numbers_load_and_object_dtypes_do_not(tmp_path):
    torch.save({"rng": np.arange(6, dtype=np.int64).reshape(2, 3), "w": torch.ones(2)},
               tmp_path / "a.pth")
    state = load_state(tmp_path / "a.pth")
    np.testing.assert_array_equal(state["rng"], np.arange(6).reshape(2, 3))
    from collapse_probe.checkpoints.unpickle import RestrictedPickle

    restricted = RestrictedPickle()
    scalar = restricted.find_class("numpy._core.multiarray", "scalar")
    dtype = restricted.find_class("numpy", "dtype")
    assert scalar(dtype("f8", False, True), np.float64(0.5).tobytes()) == 0.5
    assert "Placeholder" in type(dtype("O8", False, True)).__mro__[1].__name__
