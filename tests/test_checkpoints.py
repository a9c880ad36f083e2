"""Loaders: every layout, written by ``tests/layouts.py``, read back to the planted prototypes."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
import torch
from layouts import (
    FORMS,
    expected_vectors,
    family_writers,
    last_layer_state,
    planted_prototypes,
    write_array,
    write_dino,
    write_dinov2,
    write_dinov3,
    write_esvit,
    write_extracted,
    write_ibot,
    write_lightly,
    write_msn,
    write_sololearn,
    write_swav,
)

from collapse_probe.checkpoints import (
    inspect_checkpoint,
    load_prototypes,
    load_state,
    network_state,
    read_checkpoint,
)
from collapse_probe.checkpoints.keys import strip_wrappers
from collapse_probe.families import FORMATS
from collapse_probe.options import ReadOptions

K, D = 24, 16


@pytest.fixture(scope="module")
def protos() -> np.ndarray:
    return planted_prototypes(8, 3, D, noise=0.01, seed=1)[0]


@pytest.fixture(scope="module")
def other() -> np.ndarray:
    return planted_prototypes(6, 4, D, seed=2)[0]


def _gains(seed: int = 0) -> np.ndarray:
    """Trained-looking gains with one negative (it must flip its prototype)."""
    g = np.random.default_rng(seed).uniform(0.3, 2.5, K)
    g[5] = -1.7
    return g


def _check(head, prototypes, gains=None, *, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(head.vectors, expected_vectors(prototypes, gains), rtol=rtol, atol=atol)
    expected_norms = np.ones(len(prototypes)) if gains is None else np.abs(gains)
    np.testing.assert_allclose(head.norms, expected_norms, rtol=max(rtol, 1e-5))
    assert head.vectors.dtype == np.float32 and head.norms.dtype == np.float32
    assert (head.num_prototypes, head.dim) == np.asarray(prototypes).shape


# --------------------------------------------------------------------------- DINO

@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("backbone", ["vit", "resnet50", "xcit"])
def test_dino_teacher_every_form_and_backbone(tmp_path, protos, form, backbone):
    gains = _gains()
    path = write_dino(tmp_path / "checkpoint.pth", prototypes=protos, form=form, backbone=backbone,
                      gains=gains)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.format, checkpoint.network) == ("dino", "teacher")
    (head,) = checkpoint.heads
    assert head.name == "head" and head.shared_with == ()
    _check(head, protos, gains)
    assert checkpoint.forms == {"head": form}
    assert head.gain_all_ones is (None if form == "plain" else False)
    leaf = {"weight-norm-old": "weight_g", "weight-norm-new": "parametrizations.weight.original0",
            "plain": "weight"}[form]
    assert head.source_keys[0] == f"teacher.head.last_layer.{leaf}"
    np.testing.assert_allclose(checkpoint.extras["center"], np.linspace(-1, 1, K), rtol=1e-6)


@pytest.mark.parametrize("form", ["weight-norm-old", "weight-norm-new"])
def test_dino_student_has_unit_gains_and_its_own_prototypes(tmp_path, protos, other, form):
    path = write_dino(tmp_path / "c.pth", prototypes=protos, student=other, form=form, gains=_gains())
    checkpoint = read_checkpoint(path, ReadOptions(network="student"))
    assert checkpoint.network == "student"
    (head,) = checkpoint.heads
    _check(head, other)
    assert head.gain_all_ones is True
    assert head.source_keys[0].startswith("student.head.last_layer")
    assert load_prototypes(path)[0].gain_all_ones is False  # the teacher's trained g


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast(tmp_path, protos, dtype):
    path = write_dino(tmp_path / "half.pth", prototypes=protos, gains=np.full(K, 1.5), dtype=dtype)
    (head,) = load_prototypes(path)
    assert head.vectors.dtype == np.float32
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    _check(head, protos, np.full(K, 1.5), rtol=tol, atol=tol)


def test_legacy_serialization_is_read_without_mmap(tmp_path, protos):
    path = write_dino(tmp_path / "legacy.pth", prototypes=protos, legacy=True)
    assert path.read_bytes()[:1] == b"\x80"
    _check(load_prototypes(path)[0], protos)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.",
                                    "_fsdp_wrapped_module.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped(tmp_path, protos, prefix):
    path = write_dino(tmp_path / "c.pth", prototypes=protos, teacher_prefix=prefix,
                      student_prefix=prefix)
    for network in ("teacher", "student"):
        (head,) = load_prototypes(path, ReadOptions(network=network))
        _check(head, protos)
        assert head.source_keys[0] == f"{network}.head.last_layer.weight_g"


def test_gain_all_ones_tolerance(tmp_path, protos):
    near = write_dino(tmp_path / "near.pth", prototypes=protos, gains=1 + np.full(K, 5e-5))
    far = write_dino(tmp_path / "far.pth", prototypes=protos, gains=1 + np.full(K, 5e-4))
    assert load_prototypes(near)[0].gain_all_ones is True
    assert load_prototypes(far)[0].gain_all_ones is False


def test_planted_duplicates_survive_loading(tmp_path):
    prototypes, labels = planted_prototypes(5, [1, 2, 3, 4, 6], D, noise=0.0, seed=3)
    path = write_dino(tmp_path / "c.pth", prototypes=prototypes, gains=np.linspace(0.5, 2, 16))
    vectors = load_prototypes(path)[0].vectors.astype(np.float64)
    cosine = vectors @ vectors.T  # brute-force oracle: exact copies have cosine 1
    same = labels[:, None] == labels[None, :]
    assert np.all(cosine[same] > 1 - 1e-6)
    assert np.all(cosine[~same] < 0.99)


def test_matches_torch_weight_norm_modules(tmp_path):
    """The loader's prototypes equal the effective weight torch computes for both weight-norm APIs."""
    rng = torch.Generator().manual_seed(0)
    expected = {}
    state = {}
    for name, make in (("old", torch.nn.utils.weight_norm),
                       ("new", torch.nn.utils.parametrizations.weight_norm)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            layer = make(torch.nn.Linear(D, K, bias=False))
        with torch.no_grad():
            for param in layer.parameters():
                param.copy_(torch.randn(param.shape, generator=rng))
        weight = layer(torch.eye(D)).detach().T.double()  # the forward hook applies g * v / ||v||
        expected[name] = (weight / weight.norm(dim=1, keepdim=True)).numpy()
        state |= {f"{name}_head.last_layer.{k}": v for k, v in layer.state_dict().items()}
    torch.save({"teacher": state}, tmp_path / "m.pth")
    for name in ("old", "new"):
        (head,) = load_prototypes(tmp_path / "m.pth", ReadOptions(key=f"teacher.{name}_head.last_layer"))
        np.testing.assert_allclose(head.vectors, expected[name], atol=1e-6)


def test_builder_keys_match_torch_modules():
    layer = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(D, K, bias=False))
    ours = last_layer_state("x", np.ones((K, D)), form="weight-norm-new")
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == \
        {k.removeprefix("x."): tuple(v.shape) for k, v in ours.items()}


# --------------------------------------------------------------------------- iBOT, EsViT

def test_ibot_shared_head_is_reported_once(tmp_path, protos):
    path = write_ibot(tmp_path / "checkpoint.pth", prototypes=protos, gains=_gains())
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "ibot"
    (head,) = checkpoint.heads
    assert head.name == "head" and head.shared_with == ("head_patch",)
    _check(head, protos, _gains())
    assert set(checkpoint.extras) == {"center", "center2"}
    assert checkpoint.extras["center2"].shape == (K,)


@pytest.mark.parametrize("form", FORMS)
def test_ibot_separate_patch_head(tmp_path, protos, other, form):
    path = write_ibot(tmp_path / "checkpoint.pth", prototypes=protos, patch_prototypes=other, form=form)
    for network in ("teacher", "student"):
        heads = load_prototypes(path, ReadOptions(network=network))
        assert [h.name for h in heads] == ["head", "head_patch"]
        assert all(h.shared_with == () for h in heads)
        _check(heads[0], protos)
        _check(heads[1], other)
        assert heads[1].source_keys[0].startswith(f"{network}.head.last_layer2.")


def test_ibot_read_as_dino_reads_the_cls_head_only(tmp_path, protos, other):
    path = write_ibot(tmp_path / "c.pth", prototypes=protos, patch_prototypes=other)
    checkpoint = read_checkpoint(path, ReadOptions(format="dino"))
    assert checkpoint.format == "dino" and [h.name for h in checkpoint.heads] == ["head"]


@pytest.mark.parametrize("patch", [False, True])
def test_extracted_ibot_checkpoint_with_head(tmp_path, protos, other, patch):
    full = write_ibot(tmp_path / "checkpoint.pth", prototypes=protos,
                      patch_prototypes=other if patch else None)
    path = write_extracted(tmp_path / "checkpoint_teacher.pth", full, with_head=True)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.format, checkpoint.network) == ("ibot", "")
    assert [h.name for h in checkpoint.heads] == (["head", "head_patch"] if patch else ["head"])
    _check(checkpoint.heads[0], protos)
    assert checkpoint.heads[0].source_keys[0] == "state_dict.head.last_layer.weight_g"
    assert "not recorded" in checkpoint.notes[0]


def test_extracted_dino_checkpoint_with_head_is_dino(tmp_path, protos):
    path = write_extracted(tmp_path / "x.pth", write_dino(tmp_path / "c.pth", prototypes=protos))
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "dino"
    _check(checkpoint.heads[0], protos)


@pytest.mark.parametrize("backbone", ["swin", "resnet50"])
def test_esvit_view_and_region_heads(tmp_path, protos, other, backbone):
    path = write_esvit(tmp_path / "checkpoint.pth", prototypes=protos, dense_prototypes=other,
                       backbone=backbone, gains=_gains())
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "esvit"
    head, dense = checkpoint.heads
    assert (head.name, dense.name) == ("head", "head_dense")
    _check(head, protos, _gains())
    _check(dense, other)
    state = network_state(load_state(path), format="esvit", network="student")
    assert any(k.startswith("backbone.") for k in state) == (backbone == "resnet50")
    assert "head_dense.mlp.0.weight" in state


# --------------------------------------------------------------------------- MSN, DINOv2/v3

@pytest.mark.parametrize("training", [False, True])
def test_msn_prototypes_are_shared_by_both_networks(tmp_path, protos, training):
    path = write_msn(tmp_path / "vits16_800ep.pth.tar", prototypes=protos, training=training)
    for network in ("teacher", "student"):
        checkpoint = read_checkpoint(path, ReadOptions(network=network))
        assert (checkpoint.format, checkpoint.network) == ("msn", network)
        (head,) = checkpoint.heads
        assert head.name == "prototypes" and checkpoint.forms == {"prototypes": "raw"}
        np.testing.assert_allclose(head.vectors, expected_vectors(protos), atol=1e-6)
        assert head.norms.min() >= 0.5 - 1e-6 and head.norms.max() <= 3.0 + 1e-6
        assert head.gain_all_ones is None
        assert "shared" in checkpoint.notes[0]
    state = network_state(load_state(path), format="msn", network="teacher")
    assert "fc.fc3.weight" in state and "cls_token" in state


def test_msn_student_encoder_missing_in_release(tmp_path, protos):
    from collapse_probe.errors import CheckpointError

    path = write_msn(tmp_path / "m.pth.tar", prototypes=protos)
    with pytest.raises(CheckpointError, match="only 'target_encoder'"):
        network_state(load_state(path), format="msn", network="student")


@pytest.mark.parametrize("form", ["weight-norm-old", "weight-norm-new"])
def test_dinov2_dino_and_ibot_heads(tmp_path, protos, other, form):
    path = write_dinov2(tmp_path / "teacher_checkpoint.pth", prototypes=protos, ibot_prototypes=other,
                        form=form, gains=_gains())
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "dinov2"
    dino, ibot = checkpoint.heads
    assert (dino.name, ibot.name) == ("dino_head", "ibot_head")
    _check(dino, protos, _gains())
    _check(ibot, other)
    assert dino.gain_all_ones is False and ibot.gain_all_ones is True


def test_dinov2_without_separate_ibot_head(tmp_path, protos):
    path = write_dinov2(tmp_path / "teacher_checkpoint.pth", prototypes=protos)
    assert [h.name for h in load_prototypes(path)] == ["dino_head"]


def test_dinov3_plain_heads(tmp_path, protos, other):
    path = write_dinov3(tmp_path / "teacher.pth", prototypes=protos, ibot_prototypes=other,
                        gains=_gains())
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == "dinov3"
    assert checkpoint.forms == {"dino_head": "plain", "ibot_head": "plain"}
    _check(checkpoint.heads[0], protos, _gains())
    _check(checkpoint.heads[1], other)


# --------------------------------------------------------------------------- libraries

@pytest.mark.parametrize("lightning", [False, True])
@pytest.mark.parametrize("form", ["weight-norm-old", "weight-norm-new"])
def test_lightly_teacher_and_student_heads(tmp_path, protos, other, lightning, form):
    path = write_lightly(tmp_path / "model.ckpt", heads={"student_head": other, "teacher_head": protos},
                         form=form, lightning=lightning)
    teacher = read_checkpoint(path)
    assert (teacher.format, teacher.network) == ("lightly", "teacher")
    assert [h.name for h in teacher.heads] == ["teacher_head"]
    _check(teacher.heads[0], protos)
    student = read_checkpoint(path, ReadOptions(network="student"))
    assert [h.name for h in student.heads] == ["student_head"]
    _check(student.heads[0], other)
    state = network_state(load_state(path), format="lightly", network="teacher")
    assert "teacher_backbone.cls_token" in state and not any("student" in k for k in state)


def test_lightly_heads_with_any_attribute_name(tmp_path, protos, other):
    path = write_lightly(tmp_path / "model.pt", heads={"projection_head": protos, "aux_proj": other},
                         prefix="_orig_mod.")
    checkpoint = read_checkpoint(path)
    assert checkpoint.network == ""
    assert [h.name for h in checkpoint.heads] == ["projection_head", "aux_proj"]
    _check(checkpoint.heads[1], other)


@pytest.mark.parametrize("form", FORMS)
def test_sololearn_momentum_head_is_the_teacher(tmp_path, protos, other, form):
    path = write_sololearn(tmp_path / "dino-imagenet.ckpt", prototypes=protos, student=other,
                           form=form, gains=_gains())
    teacher = read_checkpoint(path)
    assert teacher.format == "solo-learn"
    _check(teacher.heads[0], protos, _gains())
    assert teacher.heads[0].source_keys[0].startswith("state_dict.momentum_head.last_layer.")
    student = read_checkpoint(path, ReadOptions(network="student"))
    _check(student.heads[0], other)
    assert student.heads[0].source_keys[0].startswith("state_dict.head.last_layer.")
    state = network_state(load_state(path), format="solo-learn", network="teacher")
    assert "head.mlp.6.weight" in state and "backbone.conv1.weight" in state
    assert not any(k.startswith("momentum_") for k in state)


@pytest.mark.parametrize("container", ["bare", "state_dict"])
def test_swav_prototypes(tmp_path, protos, container):
    path = write_swav(tmp_path / "swav_800ep_pretrain.pth.tar", prototypes=protos, container=container)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.format, checkpoint.network) == ("swav", "")
    _check(checkpoint.heads[0], protos)
    prefix = "state_dict." if container == "state_dict" else ""
    assert checkpoint.heads[0].source_keys == (f"{prefix}prototypes.weight",)
    assert inspect_checkpoint(path).other_keys == (() if container == "bare" else ("epoch", "optimizer"))


def test_swav_multiple_prototype_sets(tmp_path, protos, other):
    path = write_swav(tmp_path / "swav.pth", prototypes=[protos, other])
    heads = load_prototypes(path)
    assert [h.name for h in heads] == ["prototypes0", "prototypes1"]
    _check(heads[1], other)


# --------------------------------------------------------------------------- key mode, arrays

@pytest.mark.parametrize("key", ["teacher.head.last_layer", "teacher.module.head.last_layer",
                                 "teacher.head.last_layer.weight_v", "teacher.head.last_layer.weight_g"])
def test_key_mode_resolves_weight_norm_pairs(tmp_path, protos, key):
    path = write_dino(tmp_path / "c.pth", prototypes=protos, gains=_gains(), teacher_prefix="module.")
    checkpoint = read_checkpoint(path, ReadOptions(key=key))
    assert (checkpoint.format, checkpoint.network) == ("key", "teacher")
    (head,) = checkpoint.heads
    assert head.name == "teacher.head.last_layer"
    _check(head, protos, _gains())


def test_key_mode_reads_a_bare_tensor_in_nested_dicts(tmp_path, protos):
    weights = torch.from_numpy(protos * 3)
    torch.save({"model": {"ema": {"proto.bank": weights}}, "step": 5}, tmp_path / "custom.pt")
    checkpoint = read_checkpoint(tmp_path / "custom.pt", ReadOptions(key="model.ema.proto.bank"))
    assert (checkpoint.network, checkpoint.forms) == ("", {"model.ema.proto.bank": "raw"})
    np.testing.assert_allclose(checkpoint.heads[0].norms, 3.0, rtol=1e-6)


def test_key_inside_a_family_network(tmp_path, protos, other):
    path = write_dino(tmp_path / "c.pth", prototypes=protos, student=other)
    checkpoint = read_checkpoint(path, ReadOptions(format="dino", network="student", key="head.last_layer"))
    assert checkpoint.format == "dino"
    _check(checkpoint.heads[0], other)
    assert checkpoint.heads[0].source_keys[0] == "student.head.last_layer.weight_g"


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_raw_single_arrays(tmp_path, protos, suffix):
    path = write_array(tmp_path / f"prototypes{suffix}", protos * 2)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.format, checkpoint.network, checkpoint.forms) == ("array", "", {"prototypes": "raw"})
    np.testing.assert_allclose(checkpoint.heads[0].vectors, expected_vectors(protos), atol=1e-6)
    np.testing.assert_allclose(checkpoint.heads[0].norms, 2.0, rtol=1e-6)


def test_npz_one_array_or_picked_by_key(tmp_path, protos, other):
    single = write_array(tmp_path / "one.npz", {"w": protos})
    assert load_prototypes(single)[0].name == "w"
    both = write_array(tmp_path / "two.npz", {"a": protos, "b": other})
    (head,) = load_prototypes(both, ReadOptions(key="b"))
    assert head.name == "b"
    np.testing.assert_allclose(head.vectors, expected_vectors(other), atol=1e-6)


# --------------------------------------------------------------------------- records

def test_every_family_format_is_detected(tmp_path, protos, other):
    writers = {**family_writers(protos),
               "array": lambda p: write_array(p.with_suffix(".npy"), protos)}
    assert set(writers) | {"key"} == set(FORMATS)
    for fmt, write in writers.items():
        path = write(tmp_path / f"{fmt}.pth")
        assert read_checkpoint(path).format == fmt
        assert read_checkpoint(path, ReadOptions(format=fmt)).format == fmt


def test_sha256_is_the_file_digest(tmp_path, protos):
    path = write_dino(tmp_path / "c.pth", prototypes=protos)
    checkpoint = read_checkpoint(path)
    assert checkpoint.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert checkpoint.sha256 is checkpoint.sha256  # cached


@pytest.mark.parametrize("size,chunk", [(0, 7), (1, 7), (7, 7), (1000, 7), (5000, 1 << 20)])
def test_file_sha256_streams_in_chunks(tmp_path, size, chunk):
    from collapse_probe.hashing import file_sha256

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    (tmp_path / "f.bin").write_bytes(data)
    assert file_sha256(tmp_path / "f.bin", chunk_size=chunk) == hashlib.sha256(data).hexdigest()


def test_inspect_describes_heads_without_computing_duplicates(tmp_path, protos):
    gains = _gains()
    path = write_ibot(tmp_path / "checkpoint.pth", prototypes=protos, gains=gains,
                      form="weight-norm-new")
    info = inspect_checkpoint(path)
    assert (info.format, info.network, info.size_bytes) == ("ibot", "teacher", path.stat().st_size)
    (head,) = info.heads
    assert (head.name, head.num_prototypes, head.dim) == ("head", K, D)
    assert head.form == "weight-norm-new" and head.shared_with == ("head_patch",)
    assert head.gain_all_ones is False
    assert head.norm_min == pytest.approx(np.abs(gains).min(), rel=1e-6)
    assert head.norm_max == pytest.approx(np.abs(gains).max(), rel=1e-6)
    assert set(info.other_keys) == {"student", "optimizer", "fp16_scaler", "epoch", "args", "ibot_loss"}
    assert info.extras == {"center": (K,), "center2": (K,)}


def test_network_state_strips_whole_leading_parts(tmp_path, protos):
    path = write_dino(tmp_path / "c.pth", prototypes=protos, backbone="resnet50",
                      student_prefix="module._orig_mod.")
    state = load_state(path)
    teacher = network_state(state, format="dino", network="teacher")
    student = network_state(state, format="dino", network="student")
    assert set(teacher) == set(student)
    assert {"head.mlp.0.weight", "head.mlp.1.running_var", "head.mlp.3.weight",
            "head.last_layer.weight_g", "backbone.conv1.weight"} <= set(teacher)
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in teacher)


@pytest.mark.parametrize("key,expected", [
    ("module.head.w", "head.w"),
    ("module._orig_mod.head.w", "head.w"),
    ("_fsdp_wrapped_module.blocks.0._fsdp_wrapped_module.attn.w", "blocks.0.attn.w"),
    ("modules.head.w", "modules.head.w"),
    ("my_module.w", "my_module.w"),
    ("head.module.w", "head.module.w"),
    ("module", "module"),
])
def test_strip_wrappers_whole_parts_only(key, expected):
    assert strip_wrappers(key) == expected


@pytest.mark.parametrize("form", ["plain", "weight-norm-old", "weight-norm-new"])
def test_reading_never_writes_into_the_memory_mapped_file(tmp_path, protos, form):
    # Rows of norm != 1: normalising them in place would change a plain layer's stored weights.
    path = write_dino(tmp_path / "c.pth", prototypes=protos * 3.0, form=form)
    before = path.read_bytes()
    first = read_checkpoint(path).heads[0].vectors.copy()
    second = read_checkpoint(path).heads[0].vectors
    assert path.read_bytes() == before
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(second, axis=1), 1.0, rtol=1e-6)
