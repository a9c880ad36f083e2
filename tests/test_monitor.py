"""PrototypeMonitor: JSON lines, subsampling, teacher statistics, the once-only warning."""

from __future__ import annotations

import json
import logging
import math
import warnings

import numpy as np
import pytest
import torch

from collapse_probe import InputError, PrototypeCollapseWarning, PrototypeMonitor


def _weights(num_unique: int, copies: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """num_unique random directions; the first one repeated ``copies`` extra times at the end."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(num_unique, dim, generator=gen)
    return torch.cat([base, base[:1].repeat(copies, 1)])


def _koleo_oracle(weights: np.ndarray, delta: float) -> float:
    unit = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    dist = np.linalg.norm(unit[:, None, :] - unit[None, :, :], axis=2)
    np.fill_diagonal(dist, np.inf)
    return float(-np.mean(np.log(dist.min(axis=1) + delta)))


def test_records_go_to_json_lines_with_hand_checked_values(tmp_path) -> None:
    path = tmp_path / "run" / "monitor.jsonl"
    weights = _weights(12, 4)  # K = 16, 12 unique
    logits = torch.full((3, 16), -5.0)
    logits[0, 2] = logits[1, 2] = logits[2, 7] = 5.0  # argmaxes {2, 7}
    monitor = PrototypeMonitor(path, every=5, utilization_floor=None)
    assert monitor.update(0, weights, teacher_logits=logits) is not None
    assert monitor.update(3, weights) is None  # not a multiple of every
    assert monitor.update(10, weights.numpy()) is not None
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 10]
    first = lines[0]
    assert first["num_prototypes"] == 16 and first["unique"] == 12
    assert first["utilization"] == pytest.approx(12 / 16) and first["eps"] == 0.025
    assert first["koleo"] == pytest.approx(_koleo_oracle(weights.numpy().astype(np.float64), 1e-8), rel=1e-5)
    assert first["batch_usage"] == pytest.approx(2 / 16) and first["batch_size"] == 3
    p = torch.softmax(logits.double(), dim=1).numpy()
    per_row = -(p * np.log(p)).sum(axis=1)
    assert first["teacher_entropy"] == pytest.approx(per_row.mean(), rel=1e-12)
    marginal = p.mean(axis=0)
    assert first["teacher_marginal_entropy"] == pytest.approx(-(marginal * np.log(marginal)).sum(), rel=1e-12)
    assert lines[1]["teacher_entropy"] is None and lines[1]["batch_usage"] is None
    assert [r["step"] for r in monitor.records] == [0, 10]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_accepts_weight_norm_layers_and_dino_heads_with_fresh_weights() -> None:
    torch.manual_seed(0)
    old = torch.nn.utils.weight_norm(torch.nn.Linear(8, 20, bias=False))
    with torch.no_grad():
        old.weight_v[10:] = old.weight_v[0]
        old.weight_g.mul_(torch.linspace(0.5, 2.0, 20)[:, None])  # gains never change directions
    new = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(8, 20, bias=False))
    with torch.no_grad():
        new.parametrizations.weight.original1[10:] = new.parametrizations.weight.original1[0]

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.last_layer = new

    monitor = PrototypeMonitor(utilization_floor=None)
    assert monitor.update(0, old)["unique"] == 10
    assert monitor.update(1, Head())["unique"] == 10


def test_accepts_a_rebuilt_prototype_head() -> None:
    from layouts import dino_head_state, planted_prototypes

    from collapse_probe import rebuild_head

    protos, labels = planted_prototypes(5, [4, 1, 2, 1, 1], 8, seed=3)
    head = rebuild_head(dino_head_state("head", protos, in_dim=16), format="dino")
    record = PrototypeMonitor(utilization_floor=None).update(0, head)
    assert record["unique"] == 5 and record["num_prototypes"] == 9


def test_warns_once_below_the_floor(tmp_path, caplog) -> None:
    monitor = PrototypeMonitor(tmp_path / "m.jsonl", utilization_floor=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="collapse_probe.monitor"):
            monitor.update(0, _weights(20, 0))  # healthy: 20 of 20
            monitor.update(1, _weights(4, 12))  # 4 of 16: below the floor
            monitor.update(2, _weights(2, 14))  # still below: no second warning
    ours = [w for w in caught if issubclass(w.category, PrototypeCollapseWarning)]
    assert len(ours) == 1 and "step 1" in str(ours[0].message) and "25.00%" in str(ours[0].message)
    assert [r.levelno for r in caplog.records if r.name == "collapse_probe.monitor"] == [logging.WARNING]
    assert monitor.warned


def test_tensorboard_is_skipped_silently_when_missing(tmp_path) -> None:
    pytest.importorskip("torch")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        monitor = PrototypeMonitor(tensorboard_dir=tmp_path / "tb", utilization_floor=None)
        assert monitor.update(0, _weights(5, 0)) is not None
        monitor.close()
        assert not (tmp_path / "tb").exists()
    else:
        with PrototypeMonitor(tensorboard_dir=tmp_path / "tb", utilization_floor=None) as monitor:
            monitor.update(0, _weights(5, 0))
        assert any((tmp_path / "tb").iterdir())


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="every"):
        PrototypeMonitor(every=0)
    with pytest.raises(InputError, match="utilization_floor"):
        PrototypeMonitor(utilization_floor=1.5)
    with pytest.raises(InputError, match="koleo_anchors"):
        PrototypeMonitor(koleo_anchors=0)
    monitor = PrototypeMonitor(utilization_floor=None)
    with pytest.raises(InputError, match=r"\(B, 6\)"):
        monitor.update(0, _weights(6, 0), teacher_logits=torch.zeros(4, 5))
    with pytest.raises(InputError, match="prototypes"):
        monitor.update(0, "not a matrix")


def test_sampled_koleo_averages_the_anchors_it_draws() -> None:
    weights = _weights(30, 10)  # K = 40: the 11 copies have KoLeo term -log(delta)
    exact = PrototypeMonitor(utilization_floor=None).update(0, weights)["koleo"]
    torch.manual_seed(0)
    sampled = [PrototypeMonitor(utilization_floor=None, koleo_anchors=8).update(0, weights)["koleo"]
               for _ in range(60)]
    assert exact == pytest.approx(_koleo_oracle(weights.numpy().astype(np.float64), 1e-8), rel=1e-5)
    assert len(set(sampled)) > 1  # a different subset each call
    assert np.mean(sampled) == pytest.approx(exact, rel=0.15)  # unbiased: the mean converges


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors() -> None:
    weights = _weights(12, 4).cuda()
    logits = torch.randn(8, 16, device="cuda")
    record = PrototypeMonitor(utilization_floor=None).update(0, weights, teacher_logits=logits)
    assert record["unique"] == 12 and math.isfinite(record["koleo"])
