"""``center_usage``: a data-free usage proxy from the ``center`` buffer of DINO/iBOT checkpoints.

What the center is: the EMA (momentum 0.9) of the batch mean of the teacher's raw logits,
``c_k = E_x[<h(x), w_k>]``. The teacher subtracts it before sharpening, so a prototype with a
large ``c_k`` is one the raw teacher output keeps favouring: exactly the imbalance centering
hides.

The proxy is ``softmax(c / T)`` with ``T`` the teacher temperature (0.04 by default, DINO's
final teacher temperature; recipes use up to 0.07). It is the teacher's assignment of an
"average sample" (the softmax of the mean logit), not the mean assignment of the data, so it
is labelled ``center-proxy`` and never reports a used count. Duplicate prototypes receive the
same logits and therefore the same center values, so merging the proxy mass over duplicate
groups is as meaningful as for data and shows the same shortcut.
"""

from __future__ import annotations

import numpy as np

from ..dedup import deduplicate
from ..thresholds import GATE_EPS
from ..types import PrototypeSet
from ..errors import option
from ..validation import describe, fail
from .data import as_prototype_set
from .report import UsageReport
from .stats import TOP_GROUPS, summarise

__all__ = ["center_usage", "DEFAULT_CENTER_TEMPERATURE"]

#: DINO's (final) teacher temperature; iBOT and most DINO recipes use 0.04 to 0.07.
DEFAULT_CENTER_TEMPERATURE: float = 0.04


def _proxy_mass(center: np.ndarray, temperature: float) -> np.ndarray:
    scaled = center.astype(np.float64) / temperature
    scaled -= scaled.max()  # a stable softmax: 1/T of 0.04 turns logits of 1 into 25
    mass = np.exp(scaled)
    return mass / mass.sum()


def center_usage(
    center: np.ndarray,
    prototypes: PrototypeSet | np.ndarray,
    *,
    temperature: float = DEFAULT_CENTER_TEMPERATURE,
    eps: float = GATE_EPS,
    method: str = "components",
    top: int = TOP_GROUPS,
) -> UsageReport:
    """Usage proxy ``softmax(center / temperature)`` over the prototypes of the same head.

    Args:
        center: (K,) or (1, K) teacher-logit running mean (``dino_loss.center`` /
            ``ibot_loss.center``); a torch tensor is accepted.
        prototypes: the head's (K, D) prototypes or PrototypeSet, for the duplicate groups.
        temperature: softmax temperature (> 0); the teacher's, 0.04 by default.
        eps, method: duplicate groups for the merged statistics.

    Returns:
        UsageReport with ``source="center-proxy"``, ``used``/``counts``/``num_samples`` None.
    """
    if hasattr(center, "detach"):
        center = center.detach().float().cpu().numpy()
    array = np.asarray(center)
    if array.ndim == 0 or array.size != max(array.shape, default=0) or not np.issubdtype(array.dtype, np.number):
        raise fail("center", expected="a real vector of shape (K,) or (1, K)", got=describe(array))
    array = array.reshape(-1)
    if not np.isfinite(array).all():
        raise fail("center", expected="finite values", got="NaN or Inf",
                   hint=f"The run probably diverged; use an earlier checkpoint or {option('features')}.")
    temperature = float(temperature)
    if not (np.isfinite(temperature) and temperature > 0):
        raise fail("temperature", expected="a positive number", got=repr(temperature),
                   hint="DINO's teacher temperature is 0.04 to 0.07.")
    protos = as_prototype_set(prototypes)
    if array.size != protos.num_prototypes:
        raise fail("center", expected=f"{protos.num_prototypes} values (one per prototype of "
                   f"{protos.name!r})", got=f"{array.size}",
                   hint="The center belongs to another head (iBOT: center is [CLS], center2 patches).")
    dedup = deduplicate(protos, eps=eps, method=method)
    return summarise(_proxy_mass(array, temperature), dedup, source="center-proxy",
                     temperature=temperature, head=protos.name, top=top)
