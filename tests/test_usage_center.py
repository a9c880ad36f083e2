"""The data-free proxy: softmax of the checkpoint's center at the teacher temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from collapse_probe import InputError, center_usage


def _protos() -> np.ndarray:
    e = np.eye(4, dtype=np.float32)
    return np.stack([e[0], e[0], e[0] + 0.005 * e[1], e[1], e[2], e[3]])  # groups {0,1,2},3,4,5


def test_center_proxy_is_the_tempered_softmax_with_merged_statistics() -> None:
    temperature = 0.04
    weights = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    center = (temperature * np.log(weights) + 0.3)[None, :]  # (1, K) as stored; a shift changes nothing
    report = center_usage(center, _protos(), temperature=temperature, eps=0.025)
    assert report.source == "center-proxy" and report.is_proxy
    assert report.used is None and report.counts is None and report.num_samples is None
    assert report.merged_used is None and report.used_fraction is None
    assert report.temperature == temperature
    np.testing.assert_allclose(report.mass, weights / 9.0, rtol=1e-12)
    h = -(3 * (2 / 9) * math.log(2 / 9) + 3 * (1 / 9) * math.log(1 / 9))
    assert report.entropy == pytest.approx(h, abs=1e-12)
    merged_h = -((6 / 9) * math.log(6 / 9) + 3 * (1 / 9) * math.log(1 / 9))
    assert report.merged_perplexity == pytest.approx(math.exp(merged_h), abs=1e-12)
    assert report.unique == 4
    assert report.largest_group.members == (0, 1, 2)
    assert report.largest_group_share == pytest.approx(6 / 9)
    data = report.to_dict()
    assert data["proxy"] is True and data["used"] is None and len(data["mass"]) == 6


def test_center_temperature_sharpens_and_tensors_are_accepted() -> None:
    center = torch.tensor([[0.10, 0.05, 0.0, 0.0, -0.05, -0.1]])
    cold = center_usage(center, _protos(), temperature=0.01)
    warm = center_usage(center, _protos(), temperature=1.0)
    assert cold.perplexity < warm.perplexity <= 6.0
    assert cold.top_groups[0].label == 0  # prototypes 0-2 hold the largest center values


def test_center_errors_are_one_line() -> None:
    with pytest.raises(InputError, match="6 values"):
        center_usage(np.zeros(5), _protos())
    with pytest.raises(InputError, match="temperature"):
        center_usage(np.zeros(6), _protos(), temperature=0.0)
    with pytest.raises(InputError, match="finite"):
        center_usage(np.full(6, np.nan), _protos())
    with pytest.raises(InputError, match="shape"):
        center_usage(np.zeros((2, 6)), _protos())
