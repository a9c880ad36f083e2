"""Checkpoint builders for tests: tiny files in the real layouts of each method, with planted answers.

Every ``write_*`` function writes one file with ``torch.save`` and returns its path. Keys, nesting
and top-level entries follow the public training code of each method: the heads' MLPs are real
enough to rebuild (``head.mlp.0/2/4`` with GELU between for ViT heads; ``mlp.0``, BatchNorm ``mlp.1`` with running stats, ``mlp.3`` for the
DINO ResNet-50 head), loss centers, ``args`` as an ``argparse.Namespace``, ``epoch``, an
``fp16_scaler`` state and a real optimizer's state after one step (learning rate and weight decay
set from numpy schedules, as the training scripts do) sit where the real files keep them.

Prototypes go in as a (K, D) array of directions; ``gains`` (K,) become the weight-norm g (or
scale the plain rows), so the expected read-back is ``expected_vectors(prototypes, gains)``
with row norms ``abs(gains)``. Import under pytest with ``from layouts import ...`` (the tests
folder is on ``sys.path``).

Sizes are tiny on purpose: D <= 32, K <= 512, MLP widths of 8-24.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FORMS",
    "HIDDEN",
    "planted_prototypes",
    "expected_vectors",
    "last_layer_state",
    "vit_backbone",
    "resnet_backbone",
    "swin_backbone",
    "dino_head_state",
    "write_dino",
    "write_ibot",
    "write_esvit",
    "write_msn",
    "write_dinov2",
    "write_dinov3",
    "write_lightly",
    "write_sololearn",
    "write_swav",
    "write_backbone_only",
    "write_extracted",
    "write_array",
    "prefixed",
]

#: Last-layer storage forms the builders can write.
FORMS: tuple[str, ...] = ("weight-norm-old", "weight-norm-new", "plain")
#: Hidden width of every head MLP (real heads use 2048; tests need small).
HIDDEN = 24
#: Backbone feature widths (real: 384 for ViT-S, 2048 for ResNet-50).
VIT_DIM = 16
RESNET_DIM = 32
SWIN_DIM = 16


# --------------------------------------------------------------------------- planted answers

def planted_prototypes(num_groups: int, group_sizes: int | Sequence[int], dim: int, *,
                       noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Prototypes made of known duplicate groups, rows in shuffled order.

    Args:
        num_groups: number of groups (the expected unique count).
        group_sizes: members per group, one int for all or one per group.
        dim: D.
        noise: each member is its group's random unit centre plus Gaussian noise of expected
            norm ``noise`` (0: exact copies), renormalised. Centres of different groups are
            independent Gaussian directions (far apart for D >= 8).
        seed: random seed.

    Returns:
        (prototypes (K, D) float32 unit rows, labels (K,) int64): labels number the groups in
        order of their smallest member, the convention of ``DedupResult.labels``.
    """
    rng = np.random.default_rng(seed)
    sizes = [group_sizes] * num_groups if isinstance(group_sizes, int) else list(group_sizes)
    if len(sizes) != num_groups or min(sizes) < 1:
        raise ValueError("group_sizes needs one positive size per group")
    centres = rng.standard_normal((num_groups, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    group_of_row = np.repeat(np.arange(num_groups), sizes)
    rows = centres[group_of_row] + noise * rng.standard_normal((group_of_row.size, dim)) / np.sqrt(dim)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    order = rng.permutation(group_of_row.size)
    rows, group_of_row = rows[order], group_of_row[order]
    _, first = np.unique(group_of_row, return_index=True)
    relabel = np.empty(num_groups, dtype=np.int64)
    relabel[np.argsort(first)] = np.arange(num_groups)
    return rows.astype(np.float32), relabel[group_of_row]


def expected_vectors(prototypes: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """The unit directions a loader must return: ``sign(g_k) * p_k / ||p_k||`` (float64)."""
    p = np.asarray(prototypes, dtype=np.float64)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    if gains is None:
        return p
    return p * np.sign(np.asarray(gains, dtype=np.float64)).reshape(-1, 1)


# --------------------------------------------------------------------------- building blocks

def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear(prefix: str, out_dim: int, in_dim: int, gen: torch.Generator, *,
            bias: bool = True) -> dict[str, torch.Tensor]:
    state = {f"{prefix}.weight": torch.randn(out_dim, in_dim, generator=gen) / in_dim ** 0.5}
    if bias:
        state[f"{prefix}.bias"] = torch.randn(out_dim, generator=gen) * 0.01
    return state


def _norm(prefix: str, dim: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + 0.1 * torch.randn(dim, generator=gen),
            f"{prefix}.bias": 0.1 * torch.randn(dim, generator=gen)}


def _batchnorm(prefix: str, dim: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    state = _norm(prefix, dim, gen)
    state[f"{prefix}.running_mean"] = 0.1 * torch.randn(dim, generator=gen)
    state[f"{prefix}.running_var"] = 1 + 0.1 * torch.rand(dim, generator=gen)
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(1000, dtype=torch.long)
    return state


def prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``state`` with ``prefix`` (e.g. ``"module."``, ``"backbone."``) put before every key."""
    return {f"{prefix}{k}": v for k, v in state.items()}


def last_layer_state(prefix: str, prototypes: np.ndarray, *, form: str = "weight-norm-old",
                     gains: np.ndarray | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """A bias-free ``D -> K`` last layer whose effective rows are ``gains_k * unit(prototypes_k)``.

    Weight-norm forms store ``v`` as the direction times a random positive scale (as in a trained
    layer, ||v|| != 1) and ``g`` as ``gains`` (K, 1); the plain form stores the effective rows.
    """
    p = np.asarray(prototypes, dtype=np.float64)
    num, _ = p.shape
    unit = p / np.linalg.norm(p, axis=1, keepdims=True)
    g = np.ones(num) if gains is None else np.asarray(gains, dtype=np.float64).reshape(num)
    if form == "plain":
        return {f"{prefix}.weight": torch.from_numpy((unit * g[:, None]).astype(np.float32))}
    scales = np.random.default_rng(seed).uniform(0.5, 3.0, size=(num, 1))
    v = torch.from_numpy((unit * scales).astype(np.float32))
    g_t = torch.from_numpy(g.astype(np.float32).reshape(num, 1))
    if form == "weight-norm-old":
        return {f"{prefix}.weight_g": g_t, f"{prefix}.weight_v": v}
    if form == "weight-norm-new":
        return {f"{prefix}.parametrizations.weight.original0": g_t,
                f"{prefix}.parametrizations.weight.original1": v}
    raise ValueError(f"unknown form {form!r}")


def vit_backbone(*, embed_dim: int = VIT_DIM, depth: int = 1, patch: int = 4, num_patches: int = 4,
                 seed: int = 1) -> dict[str, torch.Tensor]:
    """A tiny timm/DINO ``VisionTransformer`` state dict (``head`` is an Identity: no keys)."""
    gen = _gen(seed)
    e = embed_dim
    state: dict[str, torch.Tensor] = {
        "cls_token": 0.02 * torch.randn(1, 1, e, generator=gen),
        "pos_embed": 0.02 * torch.randn(1, num_patches + 1, e, generator=gen),
        "patch_embed.proj.weight": 0.02 * torch.randn(e, 3, patch, patch, generator=gen),
        "patch_embed.proj.bias": torch.zeros(e),
    }
    for i in range(depth):
        b = f"blocks.{i}"
        state |= _norm(f"{b}.norm1", e, gen)
        state |= _linear(f"{b}.attn.qkv", 3 * e, e, gen)
        state |= _linear(f"{b}.attn.proj", e, e, gen)
        state |= _norm(f"{b}.norm2", e, gen)
        state |= _linear(f"{b}.mlp.fc1", 4 * e, e, gen)
        state |= _linear(f"{b}.mlp.fc2", e, 4 * e, gen)
    state |= _norm("norm", e, gen)
    return state


def resnet_backbone(*, width: int = 8, out_dim: int = RESNET_DIM, seed: int = 2) -> dict[str, torch.Tensor]:
    """A tiny torchvision ResNet state dict (one bottleneck in ``layer1``, ``fc`` an Identity)."""
    gen = _gen(seed)
    state = {"conv1.weight": 0.1 * torch.randn(width, 3, 7, 7, generator=gen)}
    state |= _batchnorm("bn1", width, gen)
    b = "layer1.0"
    state[f"{b}.conv1.weight"] = 0.1 * torch.randn(width, width, 1, 1, generator=gen)
    state |= _batchnorm(f"{b}.bn1", width, gen)
    state[f"{b}.conv2.weight"] = 0.1 * torch.randn(width, width, 3, 3, generator=gen)
    state |= _batchnorm(f"{b}.bn2", width, gen)
    state[f"{b}.conv3.weight"] = 0.1 * torch.randn(out_dim, width, 1, 1, generator=gen)
    state |= _batchnorm(f"{b}.bn3", out_dim, gen)
    state[f"{b}.downsample.0.weight"] = 0.1 * torch.randn(out_dim, width, 1, 1, generator=gen)
    state |= _batchnorm(f"{b}.downsample.1", out_dim, gen)
    return state


def swin_backbone(*, embed_dim: int = SWIN_DIM, seed: int = 3) -> dict[str, torch.Tensor]:
    """A tiny Swin state dict (EsViT's Swin keeps its heads as attributes: no prefix)."""
    gen = _gen(seed)
    e = embed_dim
    state = {"patch_embed.proj.weight": 0.02 * torch.randn(e, 3, 4, 4, generator=gen),
             "patch_embed.proj.bias": torch.zeros(e)}
    state |= _norm("patch_embed.norm", e, gen)
    b = "layers.0.blocks.0"
    state |= _norm(f"{b}.norm1", e, gen)
    state[f"{b}.attn.relative_position_bias_table"] = 0.02 * torch.randn(49, 1, generator=gen)
    state |= _linear(f"{b}.attn.qkv", 3 * e, e, gen)
    state |= _linear(f"{b}.attn.proj", e, e, gen)
    state |= _norm(f"{b}.norm2", e, gen)
    state |= _linear(f"{b}.mlp.fc1", 4 * e, e, gen)
    state |= _linear(f"{b}.mlp.fc2", e, 4 * e, gen)
    state |= _norm("norm", e, gen)
    return state


def dino_head_state(prefix: str, prototypes: np.ndarray, *, in_dim: int, form: str = "weight-norm-old",
                    gains: np.ndarray | None = None, use_bn: bool = False, hidden: int = HIDDEN,
                    seed: int = 4) -> dict[str, torch.Tensor]:
    """DINO's ``DINOHead``: ``mlp`` then ``last_layer`` (D -> K, bias-free).

    ``use_bn=False`` (ViT): ``mlp.0`` in->hidden, GELU, ``mlp.2`` hidden->hidden, GELU, ``mlp.4``
    hidden->D. ``use_bn=True`` (the released ResNet-50 head): ``mlp.0`` in->hidden, BatchNorm
    ``mlp.1``, GELU, ``mlp.3`` hidden->D.
    """
    gen = _gen(seed)
    bottleneck = np.asarray(prototypes).shape[1]
    if use_bn:
        state = _linear(f"{prefix}.mlp.0", hidden, in_dim, gen)
        state |= _batchnorm(f"{prefix}.mlp.1", hidden, gen)
        state |= _linear(f"{prefix}.mlp.3", bottleneck, hidden, gen)
    else:
        state = _linear(f"{prefix}.mlp.0", hidden, in_dim, gen)
        state |= _linear(f"{prefix}.mlp.2", hidden, hidden, gen)
        state |= _linear(f"{prefix}.mlp.4", bottleneck, hidden, gen)
    return state | last_layer_state(f"{prefix}.last_layer", prototypes, form=form, gains=gains,
                                    seed=seed)


def _cast(state: Any, dtype: torch.dtype) -> Any:
    """Floating tensors of a nested state cast to ``dtype`` (shared tensors stay shared)."""
    seen: dict[int, torch.Tensor] = {}

    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point() or value.dtype == dtype:
                return value
            return seen.setdefault(id(value), value.to(dtype))
        if isinstance(value, dict):
            return {k: cast(v) for k, v in value.items()}
        return value

    return cast(state)


def _args(**kwargs: Any) -> argparse.Namespace:
    return argparse.Namespace(**kwargs)


def _optimizer(kind: str = "adamw") -> dict[str, Any]:
    """A real optimizer's ``state_dict()`` after one ``step()``, with the learning rate and weight
    decay set from numpy schedules as DINO, iBOT, EsViT, SwAV and DeepCluster-v2 do
    (``param_group["lr"] = lr_schedule[it]``: ``numpy.float64`` scalars in the saved state).

    ``kind``: ``adamw`` (DINO/iBOT/EsViT ViTs: regularized and not-regularized groups),
    ``lars`` (SwAV / DINO ResNet-50: SGD with momentum, LARS-like ``eta`` / exclusion keys),
    ``plain`` (Lightning / solo-learn: float schedules, no numpy).
    """
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    groups = [{"params": [model[0].weight, model[1].weight]},
              {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0}]
    if kind == "lars":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
        for group in optimizer.param_groups:
            group |= {"eta": 0.001, "lars_exclude": group.get("weight_decay", 0.0) == 0.0}
    else:
        optimizer = torch.optim.AdamW(groups, lr=5e-4)
    model(torch.linspace(-1, 1, 4).reshape(1, 4)).sum().backward()
    optimizer.step()
    if kind != "plain":
        lr_schedule = np.linspace(5e-4, 1e-6, 10)  # utils.cosine_scheduler returns numpy arrays
        wd_schedule = np.linspace(0.04, 0.4, 10)
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = lr_schedule[3]
            if i == 0:  # only the regularized group gets the weight-decay schedule
                group["weight_decay"] = wd_schedule[3]
    return optimizer.state_dict()


def _fp16_scaler() -> dict[str, Any]:
    """``fp16_scaler.state_dict()`` as DINO/iBOT save it with ``--use_fp16 true``."""
    return torch.amp.GradScaler("cpu").state_dict()


def _save(obj: Any, path: Path | str, *, legacy: bool = False, numpy1: bool = False) -> Path:
    """``torch.save``; ``numpy1=True`` writes numpy scalars under numpy 1.x's names
    (``numpy.core.multiarray.scalar``), as files saved with numpy < 2 hold them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    if numpy1:
        as_numpy1(path)
    return path


def as_numpy1(path: Path | str) -> Path:
    """Rewrite a checkpoint's pickled numpy globals to numpy 1.x names (``numpy.core.*``).

    torch pickles with protocol 2, where a global is the text line ``module\nname\n``; the
    zip format is rewritten member by member (stored, like torch writes it)."""
    import io
    import zipfile

    path = Path(path)
    raw = path.read_bytes()
    old, new = b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        path.write_bytes(raw.replace(old, new))
        return path
    with zipfile.ZipFile(io.BytesIO(raw)) as source:
        members = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for name, data in members:
            target.writestr(name, data.replace(old, new) if name.endswith("data.pkl") else data)
    return path


def _default_center(num: int) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, num).reshape(1, num)


# --------------------------------------------------------------------------- layouts

def write_dino(path: Path | str, *, prototypes: np.ndarray, form: str = "weight-norm-old",
               backbone: str = "vit", gains: np.ndarray | None = None,
               student: np.ndarray | None = None, student_gains: np.ndarray | None = None,
               teacher_prefix: str | None = None, student_prefix: str = "module.",
               dtype: torch.dtype = torch.float32, with_args: bool = True, with_path_args: bool = False,
               with_optimizer: bool = True, center: np.ndarray | None = None,
               legacy: bool = False, fp16: bool = False, numpy1: bool = False) -> Path:
    """A facebookresearch/dino ``checkpoint.pth`` (``main_dino.py``'s save dict).

    Args:
        prototypes: (K, D) teacher prototype directions.
        form: the last layer's storage form (released ViT-S/16: ``weight-norm-old``; ViT-B/16
            and ResNet-50: ``plain``).
        backbone: ``vit`` (``backbone.`` ViT, ``head.mlp.0/2/4``) or ``resnet50``
            (``head.mlp.0``, BatchNorm ``mlp.1``, ``mlp.3``; the teacher carries ``module.``)
            or ``xcit`` (ViT-like keys and head; the teacher carries ``module.``: XCiT has BatchNorm).
        gains: teacher g (K,); default ones. ``student_gains`` likewise (default ones: the
            student of ``norm_last_layer=True``).
        student: (K, D) student directions; default the teacher's.
        teacher_prefix: default ``""`` for ViT, ``"module."`` for ResNet-50 (BatchNorm: DDP).
        student_prefix: ``"module."`` (DDP), stackable (``"module._orig_mod."``).
        dtype: tensor dtype (fp16/bf16 runs).
        with_args: include ``args`` (an ``argparse.Namespace``); ``with_path_args`` adds a
            ``pathlib.PosixPath`` to it (submitit runs).
        center: (K,) ``dino_loss.center``; default ``linspace(-1, 1, K)``.
        legacy: write the pre-1.6 (non-zip) serialization.
        fp16: add ``fp16_scaler`` (the GradScaler state of ``--use_fp16 true`` runs).
        numpy1: write the optimizer's numpy scalars under numpy 1.x names.
    """
    num = np.asarray(prototypes).shape[0]
    resnet = backbone == "resnet50"
    if backbone not in ("vit", "resnet50", "xcit"):
        raise ValueError(f"unknown backbone {backbone!r}")
    if teacher_prefix is None:
        teacher_prefix = "" if backbone == "vit" else "module."
    in_dim = RESNET_DIM if resnet else VIT_DIM
    body = resnet_backbone() if resnet else vit_backbone()

    def network(protos: np.ndarray, g: np.ndarray | None, prefix: str) -> dict[str, torch.Tensor]:
        state = prefixed(body, "backbone.") | dino_head_state("head", protos, in_dim=in_dim, form=form,
                                                            gains=g, use_bn=resnet)
        return prefixed(state, prefix)

    checkpoint: dict[str, Any] = {
        "student": network(prototypes if student is None else student, student_gains, student_prefix),
        "teacher": network(prototypes, gains, teacher_prefix),
        "epoch": 100,
        "dino_loss": {"center": _default_center(num) if center is None
                      else torch.as_tensor(np.asarray(center, dtype=np.float32)).reshape(1, num)},
    }
    if with_optimizer:
        checkpoint["optimizer"] = _optimizer("lars" if resnet else "adamw")
    if fp16:
        checkpoint["fp16_scaler"] = _fp16_scaler()
    if with_args:
        checkpoint["args"] = _args(arch="resnet50" if resnet else "vit_small", patch_size=16,
                                   out_dim=num, norm_last_layer=form != "plain", use_bn_in_head=resnet,
                                   momentum_teacher=0.996, epochs=100, lr=5e-4)
        if with_path_args:
            checkpoint["args"].output_dir = pathlib.PosixPath("/checkpoint/dino/run")
    return _save(_cast(checkpoint, dtype), path, legacy=legacy, numpy1=numpy1)


def write_ibot(path: Path | str, *, prototypes: np.ndarray, patch_prototypes: np.ndarray | None = None,
               form: str = "weight-norm-old", gains: np.ndarray | None = None,
               patch_gains: np.ndarray | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """A bytedance/ibot ``checkpoint.pth``: DINO's layout with ``head.last_layer2`` and ``ibot_loss``.

    ``patch_prototypes=None`` writes a shared head: ``last_layer2`` *is* ``last_layer`` (one
    tensor saved under both names, as ``state_dict()`` of a shared module does). Otherwise the
    patch head is a separate last layer. ``ibot_loss`` holds ``center`` [1, K] and ``center2``
    [1, 1, K_patch].
    """
    num = np.asarray(prototypes).shape[0]

    def network(prefix: str) -> dict[str, torch.Tensor]:
        head = dino_head_state("head", prototypes, in_dim=VIT_DIM, form=form, gains=gains)
        cls_layer = {k.removeprefix("head.last_layer"): v for k, v in head.items()
                     if k.startswith("head.last_layer.")}
        if patch_prototypes is None:
            head |= {f"head.last_layer2{leaf}": tensor for leaf, tensor in cls_layer.items()}
        else:
            head |= last_layer_state("head.last_layer2", patch_prototypes, form=form,
                                     gains=patch_gains, seed=7)
        return prefixed(prefixed(vit_backbone(), "backbone.") | head, prefix)

    num_patch = num if patch_prototypes is None else np.asarray(patch_prototypes).shape[0]
    checkpoint = {
        "student": network("module."),
        "teacher": network(""),
        "optimizer": _optimizer(),
        "fp16_scaler": _fp16_scaler(),
        "epoch": 800,
        "args": _args(arch="vit_small", out_dim=num, patch_out_dim=num_patch,
                      shared_head=patch_prototypes is None, shared_head_teacher=True,
                      norm_last_layer=False),
        "ibot_loss": {"center": _default_center(num),
                      "center2": _default_center(num_patch).reshape(1, 1, num_patch)},
    }
    return _save(_cast(checkpoint, dtype), path)


def write_esvit(path: Path | str, *, prototypes: np.ndarray, dense_prototypes: np.ndarray | None = None,
                backbone: str = "swin", form: str = "weight-norm-old",
                gains: np.ndarray | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """A microsoft/esvit checkpoint: ``head.*`` (view level) and ``head_dense.*`` (region level).

    ``backbone="swin"``: the heads are attributes of the backbone, no ``backbone.`` prefix.
    ``backbone="resnet50"``: ``backbone.`` / ``head.`` / ``head_dense.``. ``dense_prototypes``
    default: a fixed random set of the same shape (a separate head).
    """
    p = np.asarray(prototypes)
    if dense_prototypes is None:
        dense_prototypes = np.random.default_rng(11).standard_normal(p.shape).astype(np.float32)
    resnet = backbone == "resnet50"
    in_dim = RESNET_DIM if resnet else SWIN_DIM

    def network(prefix: str) -> dict[str, torch.Tensor]:
        body = prefixed(resnet_backbone(), "backbone.") if resnet else swin_backbone()
        heads = dino_head_state("head", p, in_dim=in_dim, form=form, gains=gains, seed=4)
        heads |= dino_head_state("head_dense", dense_prototypes, in_dim=in_dim, form=form, seed=5)
        return prefixed(body | heads, prefix)

    checkpoint = {
        "student": network("module."),
        "teacher": network("module." if resnet else ""),
        "optimizer": _optimizer(),
        "epoch": 300,
        "args": _args(arch="resnet50" if resnet else "swin_tiny", out_dim=p.shape[0],
                      use_dense_prediction=True, norm_last_layer=False),
        "dino_loss": {"center": _default_center(p.shape[0]),
                      "center_grid": _default_center(p.shape[0])},
    }
    return _save(_cast(checkpoint, dtype), path)


def write_msn(path: Path | str, *, prototypes: np.ndarray, training: bool = False,
              dtype: torch.dtype = torch.float32, seed: int = 8) -> Path:
    """A facebookresearch/msn checkpoint: top-level ``prototypes`` [K, D] stored un-normalised
    (row norms uniform in [0.5, 3]) and ``target_encoder`` (``module.``, with the ``fc``
    projection ``fc1``/``bn1``/``fc2``/``bn2``/``fc3``). ``training=True`` adds ``encoder``,
    ``opt``, ``epoch``, ``loss``, ``batch_size``, ``world_size``, ``lr``, ``temperature``.
    The expected directions are ``expected_vectors(prototypes)``."""
    p = np.asarray(prototypes, dtype=np.float64)
    scales = np.random.default_rng(seed).uniform(0.5, 3.0, size=(p.shape[0], 1))
    stored = torch.from_numpy((p / np.linalg.norm(p, axis=1, keepdims=True) * scales).astype(np.float32))
    gen = _gen(seed)

    def encoder() -> dict[str, torch.Tensor]:
        fc = _linear("fc.fc1", HIDDEN, VIT_DIM, gen) | _batchnorm("fc.bn1", HIDDEN, gen)
        fc |= _linear("fc.fc2", HIDDEN, HIDDEN, gen) | _batchnorm("fc.bn2", HIDDEN, gen)
        fc |= _linear("fc.fc3", p.shape[1], HIDDEN, gen)
        return prefixed(vit_backbone() | fc, "module.")

    checkpoint: dict[str, Any] = {"target_encoder": encoder(), "prototypes": stored}
    if training:
        checkpoint |= {"encoder": encoder(), "opt": _optimizer("plain"), "epoch": 800, "loss": 2.5,
                       "batch_size": 64, "world_size": 16, "lr": 1e-3, "temperature": 0.1}
    return _save(_cast(checkpoint, dtype), path)


def _dinov2_like(path: Path | str, *, prototypes: np.ndarray, ibot_prototypes: np.ndarray | None,
                 form: str, gains: np.ndarray | None, ibot_gains: np.ndarray | None,
                 dtype: torch.dtype) -> Path:
    teacher = prefixed(vit_backbone(), "backbone.")
    teacher |= dino_head_state("dino_head", prototypes, in_dim=VIT_DIM, form=form, gains=gains)
    if ibot_prototypes is not None:
        teacher |= dino_head_state("ibot_head", ibot_prototypes, in_dim=VIT_DIM, form=form,
                                   gains=ibot_gains, seed=6)
    return _save(_cast({"teacher": teacher}, dtype), path)


def write_dinov2(path: Path | str, *, prototypes: np.ndarray, ibot_prototypes: np.ndarray | None = None,
                 form: str = "weight-norm-old", gains: np.ndarray | None = None,
                 ibot_gains: np.ndarray | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """A facebookresearch/dinov2 ``teacher_checkpoint.pth``: ``{"teacher": {backbone.*,
    dino_head.*, ibot_head.*}}`` (``ibot_head`` only with ``ibot_prototypes``: a separate iBOT
    head). Weight-norm last layers; pass ``gains`` (DINOv2 trains g)."""
    return _dinov2_like(path, prototypes=prototypes, ibot_prototypes=ibot_prototypes, form=form,
                        gains=gains, ibot_gains=ibot_gains, dtype=dtype)


def write_dinov3(path: Path | str, *, prototypes: np.ndarray, ibot_prototypes: np.ndarray | None = None,
                 gains: np.ndarray | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """A DINOv3 teacher checkpoint: DINOv2's layout with plain ``last_layer.weight``."""
    return _dinov2_like(path, prototypes=prototypes, ibot_prototypes=ibot_prototypes, form="plain",
                        gains=gains, ibot_gains=None, dtype=dtype)


def write_lightly(path: Path | str, *, heads: Mapping[str, np.ndarray], form: str = "weight-norm-old",
                  gains: Mapping[str, np.ndarray] | None = None, lightning: bool = False,
                  prefix: str = "", dtype: torch.dtype = torch.float32) -> Path:
    """A model built with lightly's ``DINOProjectionHead``: for each ``attr`` in ``heads``,
    ``<attr>.layers.0/2/4`` (Linear, GELU, Linear, GELU, Linear) and ``<attr>.last_layer``.
    A backbone ``<role>_backbone.*`` goes with each ``teacher*`` / ``student*`` head.
    ``lightning=True`` wraps the state in a Lightning checkpoint (``state_dict``)."""
    gen = _gen(9)
    state: dict[str, torch.Tensor] = {}
    for i, (attr, protos) in enumerate(heads.items()):
        bottleneck = np.asarray(protos).shape[1]
        state |= _linear(f"{attr}.layers.0", HIDDEN, VIT_DIM, gen)
        state |= _linear(f"{attr}.layers.2", HIDDEN, HIDDEN, gen)
        state |= _linear(f"{attr}.layers.4", bottleneck, HIDDEN, gen)
        state |= last_layer_state(f"{attr}.last_layer", protos, form=form,
                                  gains=None if gains is None else gains.get(attr), seed=20 + i)
        role = "teacher" if "teacher" in attr else "student" if "student" in attr else ""
        if role:
            state |= prefixed(vit_backbone(), f"{role}_backbone.")
    state = prefixed(state, prefix)
    if lightning:
        checkpoint: dict[str, Any] = {"epoch": 10, "global_step": 1000,
                                      "pytorch-lightning_version": "2.4.0", "state_dict": state,
                                      "optimizer_states": [_optimizer("plain")], "lr_schedulers": [],
                                      "hyper_parameters": {"lr": 1e-3}}
    else:
        checkpoint = state
    return _save(_cast(checkpoint, dtype), path)


def write_sololearn(path: Path | str, *, prototypes: np.ndarray, student: np.ndarray | None = None,
                    form: str = "weight-norm-old", gains: np.ndarray | None = None,
                    student_gains: np.ndarray | None = None,
                    dtype: torch.dtype = torch.float32, hydra_config: bool = False) -> Path:
    """A solo-learn DINO Lightning checkpoint: ``state_dict`` with ``backbone.*``, ``head.*``
    (student), ``momentum_backbone.*``, ``momentum_head.*`` (teacher), ``classifier.*``.
    solo-learn's ``DINOHead`` uses BatchNorm: ``mlp.0``, BN ``mlp.1``, ``mlp.3``, BN ``mlp.4``,
    ``mlp.6``. Lightning's ``loops`` and ``callbacks`` hold the trainer's progress and the
    ``ModelCheckpoint`` state; ``hydra_config=True`` stores the run's config as the OmegaConf
    ``DictConfig`` solo-learn's hydra entry point passes to the model (``hyper_parameters.cfg``;
    needs the ``omegaconf`` test extra)."""
    def head(prefix: str, protos: np.ndarray, g: np.ndarray | None, seed: int) -> dict[str, torch.Tensor]:
        gen = _gen(seed)
        bottleneck = np.asarray(protos).shape[1]
        state = _linear(f"{prefix}.mlp.0", HIDDEN, RESNET_DIM, gen)
        state |= _batchnorm(f"{prefix}.mlp.1", HIDDEN, gen)
        state |= _linear(f"{prefix}.mlp.3", HIDDEN, HIDDEN, gen)
        state |= _batchnorm(f"{prefix}.mlp.4", HIDDEN, gen)
        state |= _linear(f"{prefix}.mlp.6", bottleneck, HIDDEN, gen)
        return state | last_layer_state(f"{prefix}.last_layer", protos, form=form, gains=g, seed=seed)

    state = prefixed(resnet_backbone(), "backbone.") | prefixed(resnet_backbone(), "momentum_backbone.")
    state |= head("head", prototypes if student is None else student, student_gains, 30)
    state |= head("momentum_head", prototypes, gains, 31)
    state |= _linear("classifier", 10, RESNET_DIM, _gen(32))
    num = np.asarray(prototypes).shape[0]
    hyper: dict[str, Any] = {"method": "dino", "num_prototypes": num}
    if hydra_config:
        from omegaconf import OmegaConf

        hyper = {"cfg": OmegaConf.create({
            "name": "dino-cifar10", "method": "dino", "backbone": {"name": "resnet18", "kwargs": {}},
            "method_kwargs": {"num_prototypes": num, "proj_hidden_dim": 2048, "norm_last_layer": False,
                              "warmup_teacher_temperature_epochs": 50, "clip_grad": 0.0},
            "optimizer": {"name": "lars", "lr": 0.3, "weight_decay": 1e-6,
                          "kwargs": {"clip_lr": True, "eta": 0.02, "exclude_bias_n_norm": True}},
            "data": {"dataset": "cifar10", "num_workers": 4},
            "devices": [0, 1], "max_epochs": 400, "precision": "16-mixed"})}
    progress = {"total": {"ready": 100000, "completed": 100000}, "current": {"ready": 250, "completed": 250}}
    checkpoint = {"epoch": 400, "global_step": 100000, "pytorch-lightning_version": "2.4.0",
                  "state_dict": state,
                  "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": progress,
                                         "epoch_loop.batch_progress": progress}},
                  "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min'}": {
                      "monitor": None, "best_model_score": None, "best_model_path": "",
                      "dirpath": "trained_models/dino/run", "last_model_path": ""}},
                  "optimizer_states": [_optimizer("plain")], "lr_schedulers": [{"last_epoch": 400}],
                  "hparams_name": "kwargs" if not hydra_config else "cfg",
                  "hyper_parameters": hyper}
    return _save(_cast(checkpoint, dtype), path)


def write_swav(path: Path | str, *, prototypes: np.ndarray | Sequence[np.ndarray],
               container: str = "bare", dtype: torch.dtype = torch.float32) -> Path:
    """A facebookresearch/swav checkpoint: ``module.`` ResNet, ``module.projection_head.0/1/3``
    and ``module.prototypes.weight`` (plain). A list of arrays writes SwAV's multi-head
    ``module.prototypes.prototypes<i>.weight``. ``container="state_dict"`` nests the weights
    as the training checkpoints do (``{"epoch", "state_dict", "optimizer"}``)."""
    gen = _gen(12)
    state = resnet_backbone()
    first = np.asarray(prototypes[0] if isinstance(prototypes, (list, tuple)) else prototypes)
    state |= _linear("projection_head.0", HIDDEN, RESNET_DIM, gen)
    state |= _batchnorm("projection_head.1", HIDDEN, gen)
    state |= _linear("projection_head.3", first.shape[1], HIDDEN, gen)
    if isinstance(prototypes, (list, tuple)):
        for i, protos in enumerate(prototypes):
            state |= last_layer_state(f"prototypes.prototypes{i}", protos, form="plain")
    else:
        state |= last_layer_state("prototypes", prototypes, form="plain")
    state = prefixed(state, "module.")
    checkpoint: Any = state
    if container == "state_dict":
        checkpoint = {"epoch": 800, "state_dict": state, "optimizer": _optimizer("lars")}
    return _save(_cast(checkpoint, dtype), path)


def write_backbone_only(path: Path | str, *, backbone: str = "vit", nest: str | None = None) -> Path:
    """A backbone-only release (DINO ``*_pretrain.pth``: a flat state dict; iBOT
    ``checkpoint_teacher.pth``: pass ``nest="state_dict"`` to nest it under one key)."""
    state = resnet_backbone() if backbone == "resnet50" else vit_backbone()
    return _save({nest: state} if nest else state, path)


def write_extracted(path: Path | str, source: Path | str, *, network: str = "teacher",
                    with_head: bool = True) -> Path:
    """What iBOT's ``extract_backbone_weights.py`` makes of ``source``: ``{"state_dict": ...}``
    holding ``network``'s backbone keys without ``backbone.`` / ``module.backbone.``, plus its other
    keys (the head) when ``with_head`` (the released ``checkpoint_teacher.pth`` files: without)."""
    full = torch.load(source, map_location="cpu", weights_only=False)
    extracted: dict[str, torch.Tensor] = {}
    for key, value in full[network].items():
        if key.startswith("backbone"):
            extracted[key[len("backbone."):]] = value
        elif key.startswith("module.backbone"):
            extracted[key[len("module.backbone."):]] = value
        elif with_head:
            extracted[key] = value
    return _save({"state_dict": extracted}, path)


def write_array(path: Path | str, arrays: np.ndarray | Mapping[str, np.ndarray]) -> Path:
    """A raw array file by suffix: ``.npy`` (one array), ``.npz`` (a mapping of named arrays),
    ``.pt`` / ``.pth`` (one tensor, via ``torch.save``)."""
    path = Path(path)
    if path.suffix == ".npz":
        np.savez(path, **dict(arrays))  # type: ignore[arg-type]
    elif path.suffix == ".npy":
        np.save(path, np.asarray(arrays))
    else:
        _save(torch.from_numpy(np.ascontiguousarray(arrays)), path)
    return path


def family_writers(prototypes: np.ndarray) -> dict[str, Callable[[Path], Path]]:
    """For every checkpoint family, a writer of a checkpoint in its layout whose main head holds
    ``prototypes`` (K, D)."""
    return {
        "dino": lambda p: write_dino(p, prototypes=prototypes),
        "ibot": lambda p: write_ibot(p, prototypes=prototypes),
        "esvit": lambda p: write_esvit(p, prototypes=prototypes),
        "msn": lambda p: write_msn(p, prototypes=prototypes),
        "dinov2": lambda p: write_dinov2(p, prototypes=prototypes),
        "dinov3": lambda p: write_dinov3(p, prototypes=prototypes),
        "lightly": lambda p: write_lightly(p, heads={"teacher_head": prototypes,
                                                     "student_head": prototypes}),
        "solo-learn": lambda p: write_sololearn(p, prototypes=prototypes),
        "swav": lambda p: write_swav(p, prototypes=prototypes),
    }
