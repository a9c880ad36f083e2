"""KoLeoProtoLoss against a dense oracle written here, on tiny synthetic prototypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from collapse_probe import KoLeoProtoLoss, deduplicate
from collapse_probe.errors import InputError
from collapse_probe.koleo import koleo_proto_loss, nearest_neighbors


def dense_koleo(weight: torch.Tensor, delta: float = 1e-8) -> torch.Tensor:
    """The definition, with the full K x K distance matrix."""
    unit = weight / weight.norm(dim=1, keepdim=True)
    diff = unit[:, None, :] - unit[None, :, :]  # (K, K, D)
    # unit rows are at most 2 apart: 10 on the diagonal keeps a row from being its own neighbour
    # (and keeps sqrt away from 0 there, where its gradient is NaN)
    sq = diff.pow(2).sum(-1) + 10.0 * torch.eye(unit.shape[0], dtype=unit.dtype)
    dist = sq.sqrt()
    return -torch.log(dist.min(dim=1).values + delta).mean()


def random_weights(num: int, dim: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num, dim, generator=g, dtype=dtype)


def test_value_and_gradient_match_dense() -> None:
    w = random_weights(40, 8, 0).requires_grad_(True)
    loss = KoLeoProtoLoss()(w)
    loss.backward()
    w2 = w.detach().clone().requires_grad_(True)
    ref = dense_koleo(w2)
    ref.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-4, atol=1e-6)


def test_gradcheck_float64_without_ties() -> None:
    w = random_weights(12, 5, 1, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: koleo_proto_loss(x, jitter=0.0), (w,))
    # and the same numbers as the dense definition
    torch.testing.assert_close(koleo_proto_loss(w), dense_koleo(w))


@pytest.mark.parametrize("block_size", [1, 3, 16, 64, 1000])
def test_blocked_equals_dense(block_size: int) -> None:
    w = random_weights(64, 6, 2)
    unit = torch.nn.functional.normalize(w, dim=1)
    dist = torch.cdist(unit.double(), unit.double())
    dist.fill_diagonal_(math.inf)
    expected = dist.argmin(dim=1)
    got = nearest_neighbors(unit, block_size=block_size)
    assert torch.equal(got, expected)
    loss = KoLeoProtoLoss(block_size=block_size)(w)
    assert float(loss) == pytest.approx(float(dense_koleo(w.double())), rel=1e-5)


def test_near_ties_are_decided_exactly() -> None:
    # Copies 1e-5 apart: float32 Gram scores cannot order them, the float64 pass must.
    g = torch.Generator().manual_seed(3)
    base = torch.nn.functional.normalize(torch.randn(4, 32, generator=g), dim=1)
    w = base.repeat_interleave(6, dim=0) + 1e-5 * torch.randn(24, 32, generator=g)
    unit = torch.nn.functional.normalize(w, dim=1)
    dist = torch.cdist(unit.double(), unit.double())
    dist.fill_diagonal_(math.inf)
    assert torch.equal(nearest_neighbors(unit, block_size=5), dist.argmin(dim=1))


def test_sampled_mode_is_unbiased() -> None:
    w = random_weights(30, 4, 4)
    full = float(dense_koleo(w.double()))
    gen = torch.Generator().manual_seed(5)
    loss = KoLeoProtoLoss(num_anchors=5, generator=gen)
    samples = [float(loss(w)) for _ in range(800)]
    stderr = np.std(samples) / math.sqrt(len(samples))
    assert abs(np.mean(samples) - full) < 4 * stderr
    # one sample really is a subset: it differs from the full mean
    assert np.std(samples) > 0


def test_sampled_mode_with_all_anchors_is_exact() -> None:
    w = random_weights(20, 4, 6)
    assert float(KoLeoProtoLoss(num_anchors=20)(w)) == pytest.approx(float(KoLeoProtoLoss()(w)))


@pytest.mark.parametrize("jitter", [0.0, 1e-6])
def test_exact_duplicates_have_finite_gradients(jitter: float) -> None:
    base = random_weights(4, 8, 7)
    w = base.repeat(2, 1).requires_grad_(True)  # every row has an exact copy
    loss = KoLeoProtoLoss(jitter=jitter, generator=torch.Generator().manual_seed(0))(w)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(w.grad).all()
    if jitter == 0:
        assert loss.item() == pytest.approx(-math.log(1e-8))
    else:
        assert float(w.grad.abs().max()) > 0  # copies are pushed apart


def test_layer_forms_give_the_same_loss() -> None:
    torch.manual_seed(8)
    plain = torch.nn.Linear(6, 20, bias=False)
    raw = plain.weight.detach().clone()
    old = torch.nn.utils.weight_norm(torch.nn.Linear(6, 20, bias=False))
    new = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(6, 20, bias=False))
    with torch.no_grad():
        old.weight_v.copy_(raw * 3.0)
        old.weight_g.fill_(0.5)
        new.parametrizations.weight.original1.copy_(raw * 2.0)
        new.parametrizations.weight.original0.fill_(2.0)
    koleo = KoLeoProtoLoss()
    expected = float(koleo(raw))
    for layer in (plain, old, new, torch.nn.Parameter(raw.clone())):
        assert float(koleo(layer)) == pytest.approx(expected, rel=1e-6)
    koleo(old).backward()
    assert old.weight_v.grad is not None and torch.isfinite(old.weight_v.grad).all()


def test_float32_under_autocast_and_half_inputs() -> None:
    w = random_weights(16, 8, 9)
    expected = float(dense_koleo(w.double()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = KoLeoProtoLoss()(w)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert KoLeoProtoLoss()(w.half()).dtype == torch.float32


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError):
        KoLeoProtoLoss()(torch.zeros(1, 4))
    with pytest.raises(InputError):
        KoLeoProtoLoss()(torch.zeros(5))
    with pytest.raises(InputError):
        KoLeoProtoLoss(num_anchors=0)(torch.randn(5, 3))


def test_optimising_koleo_spreads_a_collapsed_set() -> None:
    g = torch.Generator().manual_seed(10)
    centres = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    w = centres.repeat_interleave(8, dim=0) + 1e-4 * torch.randn(64, 16, generator=g)
    before = deduplicate(w.numpy(), eps=0.025).unique
    assert before == 8
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.01)
    koleo = KoLeoProtoLoss()
    for _ in range(200):
        opt.zero_grad()
        koleo(w).backward()
        opt.step()
    assert deduplicate(w.detach().numpy(), eps=0.025).unique == 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    w = random_weights(300, 16, 11)
    cpu = float(KoLeoProtoLoss(block_size=64)(w))
    gpu = float(KoLeoProtoLoss(block_size=64)(w.cuda()))
    assert gpu == pytest.approx(cpu, rel=1e-5)
