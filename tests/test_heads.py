"""rebuild_head against forward passes written here with plain tensor ops, for every format."""

from __future__ import annotations

import math

import pytest
import torch

from collapse_probe.errors import CheckpointError, InputError
from collapse_probe.heads import rebuild_head

D_IN, HIDDEN, BOTTLENECK, K = 6, 10, 4, 12
GEN = torch.Generator().manual_seed(0)


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN)


def linear(prefix: str, out_dim: int, in_dim: int, bias: bool = True) -> dict[str, torch.Tensor]:
    state = {f"{prefix}.weight": rand(out_dim, in_dim)}
    if bias:
        state[f"{prefix}.bias"] = rand(out_dim)
    return state


def batchnorm(prefix: str, dim: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": rand(dim), f"{prefix}.bias": rand(dim),
            f"{prefix}.running_mean": rand(dim), f"{prefix}.running_var": rand(dim).abs() + 0.5,
            f"{prefix}.num_batches_tracked": torch.tensor(7)}


def last_layer(prefix: str, form: str, k: int = K, d: int = BOTTLENECK) -> dict[str, torch.Tensor]:
    if form == "old":
        return {f"{prefix}.weight_g": rand(k, 1), f"{prefix}.weight_v": rand(k, d)}
    if form == "new":
        return {f"{prefix}.parametrizations.weight.original0": rand(k, 1),
                f"{prefix}.parametrizations.weight.original1": rand(k, d)}
    return {f"{prefix}.weight": rand(k, d)}


# -- the reference, written from the methods' papers/code, not from the package -------------------
def ref_linear(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    y = x @ state[f"{prefix}.weight"].T
    return y + state[f"{prefix}.bias"] if f"{prefix}.bias" in state else y


def ref_bn(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    mean, var = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
    return (x - mean) / torch.sqrt(var + 1e-5) * state[f"{prefix}.weight"] + state[f"{prefix}.bias"]


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def ref_weight(state: dict, prefix: str) -> torch.Tensor:
    for g_key, v_key in (("weight_g", "weight_v"),
                         ("parametrizations.weight.original0", "parametrizations.weight.original1")):
        if f"{prefix}.{g_key}" in state:
            g, v = state[f"{prefix}.{g_key}"], state[f"{prefix}.{v_key}"]
            return g * v / v.norm(dim=1, keepdim=True)
    return state[f"{prefix}.weight"]


def dino_mlp_state(prefix: str, nlayers: int = 3) -> dict:
    if nlayers == 1:
        return linear(prefix, BOTTLENECK, D_IN)
    state = linear(f"{prefix}.0", HIDDEN, D_IN)
    for i in range(1, nlayers - 1):
        state |= linear(f"{prefix}.{2 * i}", HIDDEN, HIDDEN)
    state |= linear(f"{prefix}.{2 * (nlayers - 1)}", BOTTLENECK, HIDDEN)
    return state


def ref_dino_mlp(x: torch.Tensor, state: dict, prefix: str, nlayers: int = 3) -> torch.Tensor:
    if nlayers == 1:
        return ref_linear(x, state, prefix)
    for i in range(nlayers - 1):
        x = gelu(ref_linear(x, state, f"{prefix}.{2 * i}"))
    return ref_linear(x, state, f"{prefix}.{2 * (nlayers - 1)}")


X = rand(5, D_IN)


def check(head, embed: torch.Tensor, logits: torch.Tensor, state: dict) -> None:
    torch.testing.assert_close(head.embed(X), embed, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head(X), logits, rtol=1e-5, atol=1e-5)
    back = head.to_state()
    assert set(back) == set(head.checkpoint_keys)
    for key, tensor in back.items():
        assert tensor.dtype == state[key].dtype
        assert torch.equal(tensor, state[key]), key


# -- one test per layout ----------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["old", "new", "plain"])
@pytest.mark.parametrize("nlayers", [1, 2, 3])
def test_dino_vit_head(form: str, nlayers: int) -> None:
    state = {"backbone.cls_token": rand(1, 1, D_IN)} | dino_mlp_state("head.mlp", nlayers) \
        | last_layer("head.last_layer", form)
    head = rebuild_head(state, format="dino")
    z = ref_dino_mlp(X, state, "head.mlp", nlayers)
    check(head, z, unit(z) @ ref_weight(state, "head.last_layer").T, state)
    assert "backbone.cls_token" not in head.to_state()
    torch.testing.assert_close(head.prototypes(), ref_weight(state, "head.last_layer"))
    assert head.form == {"old": "weight-norm-old", "new": "weight-norm-new", "plain": "plain"}[form]


def test_dino_resnet50_head_with_batchnorm() -> None:
    state = linear("head.mlp.0", HIDDEN, D_IN) | batchnorm("head.mlp.1", HIDDEN) \
        | linear("head.mlp.3", BOTTLENECK, HIDDEN) | last_layer("head.last_layer", "plain")
    head = rebuild_head(state, format="dino").train()  # BatchNorm stays in eval mode
    z = ref_linear(gelu(ref_bn(ref_linear(X, state, "head.mlp.0"), state, "head.mlp.1")), state, "head.mlp.3")
    check(head, z, unit(z) @ state["head.last_layer.weight"].T, state)


def test_ibot_patch_head_shares_the_mlp() -> None:
    state = dino_mlp_state("head.mlp") | last_layer("head.last_layer", "old") \
        | last_layer("head.last_layer2", "new", k=7)
    z = ref_dino_mlp(X, state, "head.mlp")
    check(rebuild_head(state, format="ibot"), z, unit(z) @ ref_weight(state, "head.last_layer").T, state)
    patch = rebuild_head(state, format="ibot", head="head_patch")
    check(patch, z, unit(z) @ ref_weight(state, "head.last_layer2").T, state)
    assert patch.num_prototypes == 7


def test_esvit_view_and_region_heads() -> None:
    state = dino_mlp_state("head.mlp") | last_layer("head.last_layer", "old") \
        | dino_mlp_state("head_dense.mlp") | last_layer("head_dense.last_layer", "old")
    for name in ("head", "head_dense"):
        z = ref_dino_mlp(X, state, f"{name}.mlp")
        check(rebuild_head(state, format="esvit", head=name), z,
              unit(z) @ ref_weight(state, f"{name}.last_layer").T, state)


@pytest.mark.parametrize("fmt,form", [("dinov2", "new"), ("dinov2", "old"), ("dinov3", "plain")])
def test_dinov2_dinov3_heads(fmt: str, form: str) -> None:
    state = dino_mlp_state("dino_head.mlp") | last_layer("dino_head.last_layer", form) \
        | dino_mlp_state("ibot_head.mlp") | last_layer("ibot_head.last_layer", form)
    for name in ("dino_head", "ibot_head"):
        z = ref_dino_mlp(X, state, f"{name}.mlp")
        head = rebuild_head(state, format=fmt, head=name)
        check(head, z, unit(z) @ ref_weight(state, f"{name}.last_layer").T, state)
    assert rebuild_head(state, format=fmt).spec.name == "dino_head"


def test_lightly_head_with_batchnorm() -> None:
    state = linear("student_head.layers.0", HIDDEN, D_IN, bias=False) | batchnorm("student_head.layers.1", HIDDEN) \
        | linear("student_head.layers.3", HIDDEN, HIDDEN, bias=False) | batchnorm("student_head.layers.4", HIDDEN) \
        | linear("student_head.layers.6", BOTTLENECK, HIDDEN) | last_layer("student_head.last_layer", "old")
    x = gelu(ref_bn(ref_linear(X, state, "student_head.layers.0"), state, "student_head.layers.1"))
    x = gelu(ref_bn(ref_linear(x, state, "student_head.layers.3"), state, "student_head.layers.4"))
    z = ref_linear(x, state, "student_head.layers.6")
    head = rebuild_head(state, format="lightly")
    assert head.spec.name == "student_head"
    check(head, z, unit(z) @ ref_weight(state, "student_head.last_layer").T, state)


def test_solo_learn_heads() -> None:
    state = dino_mlp_state("head.mlp") | last_layer("head.last_layer", "old")
    z = ref_dino_mlp(X, state, "head.mlp")
    expected = unit(z) @ ref_weight(state, "head.last_layer").T
    check(rebuild_head(state, format="solo-learn"), z, expected, state)
    # the teacher, after network_state renamed momentum_head.* to head.*, and before
    check(rebuild_head(state, format="solo-learn", head="momentum_head"), z, expected, state)
    raw = {k.replace("head.", "momentum_head.", 1): v for k, v in state.items()}
    check(rebuild_head(raw, format="solo-learn", head="momentum_head"), z, expected, raw)


def test_msn_projection_and_cosine_logits() -> None:
    enc = {"module.cls_token": rand(1, 1, D_IN)}
    state = linear("fc.fc1", HIDDEN, D_IN) | batchnorm("fc.bn1", HIDDEN) | linear("fc.fc2", HIDDEN, HIDDEN) \
        | batchnorm("fc.bn2", HIDDEN) | linear("fc.fc3", BOTTLENECK, HIDDEN) | enc
    protos = rand(K, BOTTLENECK) * 3
    x = gelu(ref_bn(ref_linear(X, state, "fc.fc1"), state, "fc.bn1"))
    x = gelu(ref_bn(ref_linear(x, state, "fc.fc2"), state, "fc.bn2"))
    z = ref_linear(x, state, "fc.fc3")
    head = rebuild_head(state, format="msn", prototypes=protos)
    check(head, z, unit(z) @ unit(protos).T / 0.1, state | {"prototypes": protos})
    with_key = rebuild_head(state | {"prototypes": protos}, format="msn", temperature=0.2)
    torch.testing.assert_close(with_key(X), unit(z) @ unit(protos).T / 0.2)
    embed_only = rebuild_head(state, format="msn")  # the encoder state alone: embeddings only
    torch.testing.assert_close(embed_only.embed(X), z)
    with pytest.raises(CheckpointError, match="prototypes"):
        embed_only(X)
    assert "prototypes" not in embed_only.to_state()


def test_msn_without_batchnorm() -> None:
    state = linear("fc.fc1", HIDDEN, D_IN) | linear("fc.fc2", HIDDEN, HIDDEN) | linear("fc.fc3", BOTTLENECK, HIDDEN)
    protos = rand(K, BOTTLENECK)
    z = ref_linear(gelu(ref_linear(gelu(ref_linear(X, state, "fc.fc1")), state, "fc.fc2")), state, "fc.fc3")
    torch.testing.assert_close(rebuild_head(state, format="msn", prototypes=protos).embed(X), z)


def test_swav_projection_head() -> None:
    state = linear("projection_head.0", HIDDEN, D_IN) | batchnorm("projection_head.1", HIDDEN) \
        | linear("projection_head.3", BOTTLENECK, HIDDEN) | {"prototypes.weight": rand(K, BOTTLENECK)}
    relu = torch.clamp(ref_bn(ref_linear(X, state, "projection_head.0"), state, "projection_head.1"), min=0)
    z = ref_linear(relu, state, "projection_head.3")
    check(rebuild_head(state, format="swav"), z, unit(z) @ state["prototypes.weight"].T, state)


def test_swav_multi_prototypes() -> None:
    state = linear("projection_head", BOTTLENECK, D_IN) | {"prototypes.prototypes0.weight": rand(K, BOTTLENECK),
                                                           "prototypes.prototypes1.weight": rand(7, BOTTLENECK)}
    z = ref_linear(X, state, "projection_head")
    head = rebuild_head(state, format="swav", head="prototypes1")
    check(head, z, unit(z) @ state["prototypes.prototypes1.weight"].T, state)


def test_half_precision_round_trip_keeps_dtype() -> None:
    state = {k: v.half() for k, v in (dino_mlp_state("head.mlp") | last_layer("head.last_layer", "old")).items()}
    head = rebuild_head(state, format="dino")
    assert head.prototypes().dtype == torch.float32
    for key, tensor in head.to_state().items():
        assert tensor.dtype == torch.float16 and torch.equal(tensor, state[key])


def test_prefix_map_renames_keys() -> None:
    state = dino_mlp_state("head.mlp") | last_layer("head.last_layer", "plain")
    back = rebuild_head(state, format="dino").to_state({"head.": "module.head."})
    assert set(back) == {f"module.{k}" for k in state}


def test_errors_name_the_problem() -> None:
    state = dino_mlp_state("head.mlp")
    with pytest.raises(CheckpointError, match="head.last_layer"):
        rebuild_head(state, format="dino")
    bad = dino_mlp_state("head.mlp") | last_layer("head.last_layer", "plain", d=BOTTLENECK + 1)
    with pytest.raises(CheckpointError, match="outputs"):
        rebuild_head(bad, format="dino")
    with pytest.raises(InputError):
        rebuild_head(state, format="array")
