"""PrototypeHead: a DINO-family head rebuilt from checkpoint tensors, and :func:`rebuild_head`.

This module defines an ``nn.Module`` subclass, so it imports torch at module level; nothing in
the package imports it until a head is rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .build import build_last_layer, build_mlp, load_exact
from ..families import HeadSpec, default_head, head_spec

__all__ = ["PrototypeHead", "HeadSet", "rebuild_head"]

#: Epsilon of the L2 normalisation before the last layer (``F.normalize``'s default, as in the
#: DINO/iBOT/DINOv2 float32 heads).
NORMALIZE_EPS = 1e-12


class PrototypeHead(nn.Module):
    """A prototype head: MLP -> L2 normalisation -> prototypes, computed in float32.

    Build it with :func:`rebuild_head`. BatchNorm layers stay in eval mode (running statistics are
    used and never updated), whatever ``train()`` says, so a rebuilt head is a pure function of
    the checkpoint tensors.

    Attributes:
        spec: where the head lives in the checkpoint.
        mlp: the projection MLP (``nn.Linear``, ``nn.Sequential``) or ``nn.Identity`` if none.
        last_layer: the bias-free Linear in its original storage form (``linear`` logits), or
            None; ``prototype_matrix``: the raw (K, D) parameter for ``cosine`` logits (MSN).
        form: storage form of the prototypes (``weight-norm-old``, ``weight-norm-new``,
            ``plain``, ``raw``).
        temperature: divides the cosine logits (MSN only).
    """

    def __init__(self, spec: HeadSpec, mlp: nn.Module | None, mlp_keys: Mapping[str, str],
                 last: nn.Module | torch.Tensor | None, last_keys: Mapping[str, str], form: str,
                 dtypes: Mapping[str, torch.dtype], *, temperature: float = 0.1) -> None:
        super().__init__()
        self.spec = spec
        self.mlp = mlp if mlp is not None else nn.Identity()
        self.form = form
        self.temperature = float(temperature)
        self._keys: dict[str, str] = {f"mlp.{k}": v for k, v in mlp_keys.items()}
        if isinstance(last, nn.Module):
            self.last_layer: nn.Module | None = last
            self.prototype_matrix = None
            self._keys.update({f"last_layer.{k}": v for k, v in last_keys.items()})
        else:
            self.last_layer = None
            # None: an MSN projection read without its top-level prototypes (embed only)
            self.prototype_matrix = None if last is None else nn.Parameter(last)
            self._keys.update({"prototype_matrix": v for v in last_keys.values()})
        self._dtypes = dict(dtypes)

    # -- computation ---------------------------------------------------------------------------
    def train(self, mode: bool = True) -> PrototypeHead:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(N, d) backbone features -> (N, D) bottleneck output (the MLP only, not normalised)."""
        return self.mlp(features.float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, d) backbone features -> (N, K) logits, as the method's own head computes them."""
        z = nn.functional.normalize(self.embed(features), dim=-1, p=2, eps=NORMALIZE_EPS)
        if self.last_layer is not None:
            return self.last_layer(z)
        protos = nn.functional.normalize(self.prototypes(), dim=-1, p=2, eps=NORMALIZE_EPS)
        return z @ protos.T / self.temperature

    def prototypes(self) -> torch.Tensor:
        """(K, D) effective prototype matrix (weight norm applied, not normalised), differentiable."""
        from ..koleo import prototype_weight

        if self.last_layer is not None:
            return prototype_weight(self.last_layer)
        if self.prototype_matrix is None:
            raise CheckpointError("this MSN head was rebuilt without its prototypes (embed only): "
                                  "pass prototypes= (the file's top-level 'prototypes').")
        return self.prototype_matrix

    def prototype_layer(self) -> nn.Module | torch.Tensor:
        """What :class:`~collapse_probe.KoLeoProtoLoss` takes: the last layer or the raw matrix."""
        return self.last_layer if self.last_layer is not None else self.prototype_matrix

    @property
    def num_prototypes(self) -> int:
        return int(self.prototypes().shape[0])

    # -- writing back --------------------------------------------------------------------------
    @property
    def checkpoint_keys(self) -> tuple[str, ...]:
        """The checkpoint keys this head was read from (and :meth:`to_state` writes)."""
        return tuple(self._keys.values())

    def to_state(self, prefix_map: Mapping[str, str] | None = None) -> dict[str, torch.Tensor]:
        """The head's tensors under their original checkpoint key names, form and dtype.

        Args:
            prefix_map: optional ``{old leading part: new leading part}`` applied to each key
                (e.g. ``{"head.": "module.head."}`` to write into a DDP-wrapped network).

        Returns:
            {checkpoint key: CPU tensor}, detached copies in the dtypes the checkpoint had.
        """
        own = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for local, original in self._keys.items():
            key = original
            for old, new in (prefix_map or {}).items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            out[key] = own[local].detach().to(device="cpu", dtype=self._dtypes[original]).clone()
        return out


def rebuild_head(state: Mapping[str, Any], *, format: str, head: str | None = None,  # noqa: A002
                 prototypes: torch.Tensor | None = None, temperature: float = 0.1) -> PrototypeHead:
    """Rebuild a prototype head from a flat network state dict.

    This is the public way to run a checkpoint's own head on features (``embed`` for bottleneck
    embeddings, ``forward`` for logits) and to fine-tune it (see :func:`collapse_probe.finetune`).

    Args:
        state: flat ``{key: tensor}`` of one network, wrapper prefixes stripped
            (:func:`collapse_probe.checkpoints.network_state`).
        format: checkpoint format (``dino``, ``ibot``, ``esvit``, ``dinov2``, ``dinov3``,
            ``lightly``, ``solo-learn``, ``msn``, ``swav``).
        head: which head (``head``, ``head_patch``, ``head_dense``, ``dino_head``, ``ibot_head``,
            ``momentum_head``, a lightly attribute, ...); default: the format's main head.
        prototypes: MSN only: the (K, D) top-level ``prototypes`` when ``state`` lacks it.
        temperature: MSN only: the cosine-logit temperature (MSN's default 0.1).

    Returns:
        A float32 :class:`PrototypeHead` on the CPU, shapes inferred from the tensors.
    """
    keys = list(state)
    spec = head_spec(format, head or default_head(format, keys), keys)
    mlp, mlp_keys = build_mlp(state, spec.mlp_prefix, activation=spec.activation) if spec.mlp_prefix else (None, {})
    dtypes = {original: state[original].dtype for original in mlp_keys.values()}
    if spec.logits == "cosine":
        # MSN keeps its prototypes at the top level of the file (``network_state`` adds them):
        # without them the head can still embed (forward and prototypes() then raise).
        matrix = state.get(spec.last_prefix, prototypes)
        last: nn.Module | torch.Tensor | None = None
        last_keys, form = {}, "raw"
        if matrix is not None:
            matrix = matrix.detach()
            if matrix.ndim != 2:
                raise CheckpointError(f"MSN prototypes must be (K, D), got shape {tuple(matrix.shape)}.")
            last = matrix.to(device="cpu", dtype=torch.float32).clone()
            last_keys = {"prototype_matrix": spec.last_prefix}
            dtypes[spec.last_prefix] = matrix.dtype
    else:
        last, last_keys, form = build_last_layer(state, spec.last_prefix)
        dtypes.update({original: state[original].dtype for original in last_keys.values()})
    built = PrototypeHead(spec, mlp, mlp_keys, last, last_keys, form, dtypes, temperature=temperature)
    if mlp is not None:
        load_exact(built.mlp, state, mlp_keys)
    if isinstance(last, nn.Module):
        load_exact(last, state, last_keys)
    if last is not None:
        _check_shapes(built, spec)
    return built.float().eval()


def _check_shapes(head: PrototypeHead, spec: HeadSpec) -> None:
    out_dim = None
    linears = [m for m in head.mlp.modules() if isinstance(m, nn.Linear)]
    if linears:
        for a, b in zip(linears, linears[1:]):
            if a.out_features != b.in_features:
                raise CheckpointError(f"the head MLP under {spec.mlp_prefix} does not chain: "
                                      f"{a.out_features} outputs feed {b.in_features} inputs.")
        out_dim = linears[-1].out_features
    dim = int(head.prototypes().shape[1])
    if out_dim is not None and out_dim != dim:
        raise CheckpointError(f"the head MLP under {spec.mlp_prefix} outputs {out_dim} dimensions "
                              f"but the prototypes under {spec.last_prefix} have {dim}.")


class HeadSet(nn.Module):
    """Several prototype heads on one shared MLP, trained together: SwAV's multiple sets of
    prototypes (``nmb_prototypes`` a list: ``prototypes.prototypes<i>``).

    ``forward`` returns the heads' logits side by side, (N, sum of K_i), in the order of
    ``heads``; ``sizes`` gives each head's K_i. The first head's MLP is used by all of them.
    """

    def __init__(self, heads: list[PrototypeHead]) -> None:
        super().__init__()
        if not heads:
            raise CheckpointError("no prototype heads to fine-tune.")
        for head in heads[1:]:
            head.mlp = heads[0].mlp  # one projection, as in the checkpoint
        self.heads = nn.ModuleList(heads)
        self.spec = heads[0].spec

    def train(self, mode: bool = True) -> HeadSet:
        for head in self.heads:
            head.train(mode)
        self.training = mode
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = nn.functional.normalize(self.heads[0].embed(features), dim=-1, p=2, eps=NORMALIZE_EPS)
        return torch.cat([head.last_layer(z) for head in self.heads], dim=-1)

    @property
    def sizes(self) -> list[int]:
        return [head.num_prototypes for head in self.heads]

    @property
    def num_prototypes(self) -> int:
        return sum(self.sizes)

    @property
    def mlp(self) -> nn.Module:
        return self.heads[0].mlp

    def prototype_layers(self) -> list[nn.Module | torch.Tensor]:
        """Each head's last layer, for KoLeo-Proto (one term per set of prototypes)."""
        return [head.prototype_layer() for head in self.heads]

    def to_state(self, prefix_map: Mapping[str, str] | None = None) -> dict[str, torch.Tensor]:
        """Every head's tensors under their checkpoint keys (the shared MLP once)."""
        out: dict[str, torch.Tensor] = {}
        for head in self.heads:
            out.update(head.to_state(prefix_map))
        return out
