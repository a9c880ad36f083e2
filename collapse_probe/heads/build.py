"""Modules rebuilt from state tensors: the MLP (layer kinds and shapes read from the keys) and the
last layer in its original storage form. Each builder also returns the map from the module's
own state keys to the checkpoint's key names, so the tensors can be written back unchanged.

This module defines nothing at import time that needs torch; torch is imported in each builder.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..errors import CheckpointError

__all__ = ["build_mlp", "build_last_layer", "load_exact"]

_BN_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _children(state: Mapping[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """``{child: {leaf: tensor}}`` for keys ``<prefix>.<child>.<leaf>`` (child is one path part)."""
    out: dict[str, dict[str, Any]] = {}
    start = f"{prefix}."
    for key, value in state.items():
        if key.startswith(start):
            child, _, leaf = key[len(start):].partition(".")
            if leaf:
                out.setdefault(child, {})[leaf] = value
    return out


def _activation(name: str) -> Any:
    import torch

    return torch.nn.GELU() if name == "gelu" else torch.nn.ReLU()


def _module_for(tensors: Mapping[str, Any], where: str) -> tuple[str, Any]:
    """A Linear or BatchNorm1d shaped like ``tensors`` (its leaf -> tensor map)."""
    import torch

    weight = tensors.get("weight")
    if "running_mean" in tensors:
        num = int(tensors["running_mean"].shape[0])
        affine = weight is not None
        return "bn", torch.nn.BatchNorm1d(num, affine=affine)
    if weight is not None and weight.ndim == 2 and set(tensors) <= {"weight", "bias"}:
        out_dim, in_dim = (int(s) for s in weight.shape)
        return "linear", torch.nn.Linear(in_dim, out_dim, bias="bias" in tensors)
    raise CheckpointError(f"cannot rebuild the head layer {where}: keys {sorted(tensors)} are "
                          "neither a Linear (weight [out, in], bias) nor a BatchNorm1d.")


def build_mlp(state: Mapping[str, Any], prefix: str, *, activation: str) -> tuple[Any, dict[str, str]]:
    """The MLP stored under ``prefix``: one Linear, or a Sequential whose children keep their names.

    Numbered children (``mlp.0``, ``mlp.2``, ...) get the activation at every index without
    parameters (so ``0 Linear, 1 BatchNorm, 3 Linear`` has it at 2). Named children (MSN's
    ``fc1, bn1, fc2, bn2, fc3``) get one after each Linear (and its BatchNorm) except the last.

    Returns:
        (module or None when nothing is stored under ``prefix``, {module key: checkpoint key}).
    """
    import torch

    if f"{prefix}.weight" in state:
        tensors = {leaf: state[f"{prefix}.{leaf}"] for leaf in ("weight", "bias") if f"{prefix}.{leaf}" in state}
        kind, module = _module_for(tensors, prefix)
        if kind != "linear":
            raise CheckpointError(f"{prefix} is a single layer but not a Linear.")
        return module, {leaf: f"{prefix}.{leaf}" for leaf in tensors}
    children = _children(state, prefix)
    if not children:
        return None, {}
    layers: OrderedDict[str, Any] = OrderedDict()
    if all(name.isdigit() for name in children):
        last = max(int(name) for name in children)
        for index in range(last + 1):
            tensors = children.get(str(index))
            layers[str(index)] = (_activation(activation) if tensors is None
                                  else _module_for(tensors, f"{prefix}.{index}")[1])
    else:
        ordered = sorted(children, key=_natural_order)
        kinds = [_module_for(children[name], f"{prefix}.{name}") for name in ordered]
        for i, (name, (kind, module)) in enumerate(zip(ordered, kinds)):
            layers[name] = module
            is_last = i == len(ordered) - 1
            next_is_bn = not is_last and kinds[i + 1][0] == "bn"
            if not is_last and not next_is_bn:
                digits = re.sub(r"\D", "", name) or str(i)
                layers[f"{activation}{digits}"] = _activation(activation)
    mlp = torch.nn.Sequential(layers)
    key_map = {key: f"{prefix}.{key}" for key in mlp.state_dict()}
    missing = [k for k in key_map.values() if k not in state]
    if missing:
        raise CheckpointError(f"the head MLP under {prefix} lacks {', '.join(missing[:3])}.")
    return mlp, key_map


def _natural_order(name: str) -> tuple[int, int, str]:
    # fc1 < bn1 < fc2 < bn2 < fc3: by number, then Linear before its BatchNorm.
    digits = re.findall(r"\d+", name)
    number = int(digits[-1]) if digits else 0
    return number, 0 if name.startswith("fc") else 1, name


def build_last_layer(state: Mapping[str, Any], prefix: str) -> tuple[Any, dict[str, str], str]:
    """The last layer under ``prefix`` as a bias-free Linear in the checkpoint's storage form.

    Returns:
        (module, {module key: checkpoint key}, form) with form ``weight-norm-old``
        (``torch.nn.utils.weight_norm``), ``weight-norm-new`` (parametrizations) or ``plain``.
    """
    import torch

    from ..checkpoints.keys import find_last_layer

    layer = find_last_layer(state, prefix, name=prefix)
    if layer is None:
        raise CheckpointError(f"no last layer under {prefix} (expected {prefix}.weight, "
                              f"{prefix}.weight_g/_v or {prefix}.parametrizations.weight.original0/1).")
    v = state[layer.keys[-1]]
    out_dim, in_dim = (int(s) for s in v.shape)
    linear = torch.nn.Linear(in_dim, out_dim, bias=False)
    if layer.form == "weight-norm-old":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the old API is deprecated, not gone
            linear = torch.nn.utils.weight_norm(linear)
        leaves = ("weight_g", "weight_v")
    elif layer.form == "weight-norm-new":
        linear = torch.nn.utils.parametrizations.weight_norm(linear)
        leaves = ("parametrizations.weight.original0", "parametrizations.weight.original1")
    else:
        leaves = ("weight",)
    return linear, {leaf: f"{prefix}.{leaf}" for leaf in leaves}, layer.form


def load_exact(module: Any, state: Mapping[str, Any], key_map: Mapping[str, str]) -> None:
    """Copy the checkpoint tensors into ``module`` (float32 parameters and float buffers)."""
    import torch

    own = module.state_dict()
    with torch.no_grad():
        for local, original in key_map.items():
            source = state[original]
            target = own[local]
            if tuple(source.shape) != tuple(target.shape):
                raise CheckpointError(f"{original} has shape {tuple(source.shape)}, expected "
                                      f"{tuple(target.shape)} from the rest of the head.")
            target.copy_(source.detach().to(device=target.device, dtype=target.dtype))
