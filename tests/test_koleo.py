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


# -- exactness on collapsed heads: giant groups, Zipf groups, exact copies ---------------------------
def grouped_head(sizes: list[int], dim: int, spacing: float, seed: int) -> torch.Tensor:
    """Groups of near-copies (``spacing`` = typical distance between two members) around random
    unit centres, one group per entry of ``sizes``, rows shuffled."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(len(sizes), dim, generator=g), dim=1)
    owner = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    owner = owner[torch.randperm(int(sum(sizes)), generator=g)]
    return centres[owner] + spacing / (2 * dim) ** 0.5 * torch.randn(len(owner), dim, generator=g)


def float64_oracle(unit: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Nearest neighbour and squared distance of every row by brute force: the float64 norm of
    every difference, no expansion; ties to the smallest index (``argmin``'s first minimum)."""
    u = unit.double().numpy()
    num = u.shape[0]
    index, d2 = np.empty(num, dtype=np.int64), np.empty(num)
    for start in range(0, num, 128):
        diff = u[start:start + 128, None, :] - u[None, :, :]
        sq = np.einsum("bkd,bkd->bk", diff, diff)
        sq[np.arange(sq.shape[0]), np.arange(start, start + sq.shape[0])] = np.inf
        index[start:start + 128] = sq.argmin(axis=1)
        d2[start:start + 128] = sq.min(axis=1)
    return index, d2


ZIPF = [3000] + [max(1, 300 // i) for i in range(1, 40)]  # one giant group, then 300, 150, 100, ...


@pytest.mark.parametrize("case", ["giant-1e-3", "giant-1e-6", "exact-copies", "healthy"])
def test_neighbours_match_float64_oracle(case: str) -> None:
    if case == "healthy":
        w = random_weights(1500, 24, 11)
    else:
        spacing = 1e-6 if case == "giant-1e-6" else 1e-3
        w = grouped_head(ZIPF, 24, spacing, seed=12)
        if case == "exact-copies":
            w[:400] = w[400]  # 401 exact copies of one row, inside whatever group it is in
            w[500:510] = w[2000]
    unit = torch.nn.functional.normalize(w, dim=1)
    got = nearest_neighbors(unit, block_size=512)
    index, d2 = float64_oracle(unit)
    u = unit.double().numpy()
    diff = u - u[got.numpy()]
    got_d2 = np.einsum("kd,kd->k", diff, diff)  # summed as the oracle sums
    # the same distances as the float64 reference, and the same neighbour (these heads have no
    # two candidates at exactly equal distance, except exact copies: smallest index there too)
    np.testing.assert_array_equal(got_d2, d2)
    np.testing.assert_array_equal(got.numpy(), index)
    if case == "exact-copies":
        assert (d2[:400] == 0).all() and got[0] == 1 and got[1] == 0 and got[400] == 0


def test_giant_group_loss_and_gradient_match_float64() -> None:
    w = grouped_head(ZIPF, 24, 1e-3, seed=13)
    unit = torch.nn.functional.normalize(w, dim=1)
    index, _ = float64_oracle(unit)
    x = w.clone().requires_grad_(True)
    loss = koleo_proto_loss(x)
    loss.backward()
    # float64 reference of the same definition, through the oracle's neighbours
    x64 = w.double().requires_grad_(True)
    u64 = torch.nn.functional.normalize(x64, dim=1)
    ref = -torch.log((u64 - u64[torch.from_numpy(index)]).norm(dim=1) + 1e-8).mean()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-3, atol=1e-3 * float(x64.grad.abs().max()))


def test_sampled_anchors_in_giant_group_match_oracle() -> None:
    w = grouped_head(ZIPF, 16, 1e-3, seed=14)
    unit = torch.nn.functional.normalize(w, dim=1)
    anchors = torch.randperm(unit.shape[0], generator=torch.Generator().manual_seed(0))[:700]
    index, _ = float64_oracle(unit)
    assert torch.equal(nearest_neighbors(unit, anchors=anchors), torch.from_numpy(index)[anchors])
