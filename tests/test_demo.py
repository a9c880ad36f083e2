"""The small DINO trainer on the digits: it learns, it saves DINO's layout, KoLeo-Proto spreads."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from collapse_probe.demo import (
    MultiCrop,
    TrainConfig,
    knn_accuracy,
    load_digits_split,
    long_tail_indices,
    train_dino,
)
from collapse_probe.demo.train import save_dino_checkpoint
from collapse_probe.errors import InputError
from collapse_probe.options import ReadOptions

K = 64


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return load_digits_split(seed=0).train_images[:128]


def _config(**overrides) -> TrainConfig:
    base = {"num_prototypes": K, "epochs": 2, "batch_size": 32, "warmup_epochs": 1,
            "freeze_last_layer_epochs": 0, "seed": 3}
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def plain(images):
    return train_dino(images, config=_config())


@pytest.fixture(scope="module")
def koleo(images):
    return train_dino(images, config=_config(koleo_weight=1.0))


def _min_neighbour_distance(weight: torch.Tensor) -> np.ndarray:
    """Brute force: distance from each unit prototype to its nearest other prototype."""
    unit = weight.double().numpy()
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    dist = np.sqrt(((unit[:, None, :] - unit[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    return dist.min(axis=1)


def test_loss_is_finite_and_moves(plain) -> None:
    assert plain.epoch_loss.shape == (2,)
    assert np.isfinite(plain.epoch_loss).all()
    assert plain.epoch_loss[0] != plain.epoch_loss[1]
    # the teacher is an EMA of the student, not a copy of it
    key = "head.mlp.0.weight"
    assert not torch.equal(plain.student[key], plain.teacher[key])


def test_koleo_spreads_the_prototypes_on_the_same_seed(plain, koleo) -> None:
    before = _min_neighbour_distance(plain.student["head.last_layer.weight_v"])
    after = _min_neighbour_distance(koleo.student["head.last_layer.weight_v"])
    # KoLeo-Proto maximises the mean log nearest-neighbour distance: it must be larger
    assert np.log(after).mean() > np.log(before).mean() + 0.01
    assert koleo.epoch_koleo[-1] < plain.epoch_koleo[-1]


def test_checkpoint_has_the_dino_layout_and_loads_weights_only(plain, tmp_path) -> None:
    path = save_dino_checkpoint(plain, tmp_path / "dino.pth")
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == ["argparse.Namespace"]
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"student", "teacher", "dino_loss", "epoch", "args"}
    assert all(k.startswith(("module.backbone.", "module.head.")) for k in ckpt["student"])
    assert all(k.startswith(("backbone.", "head.")) for k in ckpt["teacher"])
    for prefix, net in (("module.", ckpt["student"]), ("", ckpt["teacher"])):
        for i in (0, 2, 4):
            assert f"{prefix}head.mlp.{i}.weight" in net
        assert net[f"{prefix}head.last_layer.weight_g"].shape == (K, 1)
        assert net[f"{prefix}head.last_layer.weight_v"].shape == (K, 64)
    assert torch.equal(ckpt["student"]["module.head.last_layer.weight_v"],
                       plain.student["head.last_layer.weight_v"])
    assert ckpt["dino_loss"]["center"].shape == (1, K)
    assert ckpt["epoch"] == 2
    assert isinstance(ckpt["args"], argparse.Namespace) and ckpt["args"].out_dim == K
    assert not list(tmp_path.glob("*.tmp"))


def test_knn_accuracy_known_answers_and_range(plain, images) -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:2] * 10
    train = np.concatenate([centres[0] + rng.normal(size=(20, 4)), centres[1] + rng.normal(size=(20, 4))])
    labels = np.repeat([0, 1], 20)
    test = np.stack([centres[0] + 0.1, centres[1] + 0.1])
    assert knn_accuracy(train, labels, test, np.array([0, 1]), k=5).accuracy == 1.0
    assert knn_accuracy(train, labels, test, np.array([1, 0]), k=5).accuracy == 0.0
    split = load_digits_split(seed=0)
    net = plain.teacher_net()
    from collapse_probe.demo import backbone_features

    result = knn_accuracy(backbone_features(net, split.train_images[:300]), split.train_labels[:300],
                          backbone_features(net, split.test_images[:100]), split.test_labels[:100])
    assert 0.0 <= result.accuracy <= 1.0
    assert result.accuracy > 0.3  # far above chance (0.1): the features carry the digit


def test_long_tail_profile_and_split() -> None:
    labels = np.repeat(np.arange(10), 50)
    keep = long_tail_indices(labels, imbalance=0.1, seed=0)
    counts = np.bincount(labels[keep], minlength=10)
    expected = [max(1, round(50 * 0.1 ** (c / 9))) for c in range(10)]
    assert counts.tolist() == expected
    split = load_digits_split(seed=0, long_tail=0.1)
    assert split.tail_classes == (5, 6, 7, 8, 9)
    assert np.bincount(split.test_labels).min() >= 50  # the held-out split stays balanced
    with pytest.raises(InputError):
        long_tail_indices(labels, imbalance=0.0, seed=0)


def test_multicrop_shapes_range_and_determinism(images) -> None:
    crop = MultiCrop(num_global=2, num_local=3)
    batch = torch.from_numpy(images[:5])
    views = crop(batch, generator=torch.Generator().manual_seed(0))
    again = crop(batch, generator=torch.Generator().manual_seed(0))
    assert len(views) == 5 and all(v.shape == (5, 1, 8, 8) for v in views)
    assert all(float(v.min()) >= 0.0 and float(v.max()) <= 1.0 for v in views)
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    assert not torch.equal(views[0], views[1])


def test_bad_config_is_a_typed_error(images) -> None:
    with pytest.raises(InputError):
        train_dino(images, config=_config(koleo_weight=-1.0))
    with pytest.raises(InputError):
        train_dino(images[:10], config=_config())


def test_shipped_digits_checkpoints_show_the_repair() -> None:
    from collapse_probe.checkpoints import load_prototypes
    from collapse_probe.dedup import deduplicate
    from collapse_probe.examples import example_path

    unique = {}
    for name in ("dino-digits", "dino-digits-koleo"):
        for network in ("teacher", "student"):
            (head,) = load_prototypes(example_path(name), ReadOptions(network=network))
            assert head.num_prototypes == 1024 and head.dim == 64
            unique[name, network] = deduplicate(head, eps=0.025).unique
        assert example_path(name).stat().st_size < 5_000_000
    # At the paper's threshold (eps 0.025) plain DINO is at most half unique, teacher and
    # student; KoLeo-Proto keeps at least 95 % of the prototypes apart.
    for network in ("teacher", "student"):
        assert unique["dino-digits", network] <= 512
        assert unique["dino-digits-koleo", network] >= 0.95 * 1024


def test_dino_loss_matches_hand_computed_values() -> None:
    from collapse_probe.demo.train import _dino_loss

    zeros = torch.zeros(1, 4)
    # uniform teacher and student: the cross-entropy is ln K
    loss = _dino_loss([zeros, zeros, zeros], torch.zeros(2, 4), torch.zeros(1, 4), num_global=2,
                      student_temp=0.1, teacher_temp=0.04)
    assert float(loss) == pytest.approx(np.log(4))
    # a one-hot teacher (after centering) on prototype 0; student logits s give -log softmax(s/T)[0]
    teacher = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2)
    student = torch.tensor([[0.2, 0.0, 0.0, 0.0]])
    loss = _dino_loss([student, student], teacher, torch.zeros(1, 4), num_global=2,
                      student_temp=0.1, teacher_temp=1e-4)
    expected = -(2.0 - np.log(np.exp(2.0) + 3.0))  # 2 terms (view 0 vs 1, 1 vs 0), same value
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_missing_scikit_learn_is_one_clear_error(monkeypatch) -> None:
    import importlib.util

    from collapse_probe.demo import load_digits_split
    from collapse_probe.errors import CollapseProbeError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(CollapseProbeError, match=r"collapse-probe\[demo\]"):
        load_digits_split(seed=0)


def test_teacher_momentum_schedule_end_points(images) -> None:
    # momentum 1 throughout: the teacher never moves from the shared initialisation
    frozen = train_dino(images, config=_config(epochs=1, teacher_momentum=1.0, teacher_momentum_end=1.0))
    init = train_dino(images, config=_config(epochs=1, lr=0.0, min_lr=0.0, teacher_momentum=1.0,
                                             teacher_momentum_end=1.0))
    for name, value in frozen.teacher.items():
        torch.testing.assert_close(value, init.student[name], rtol=0, atol=0)
    # momentum 0 throughout: the teacher is the student after every step
    copied = train_dino(images, config=_config(epochs=1, teacher_momentum=0.0, teacher_momentum_end=0.0))
    for name, value in copied.teacher.items():
        torch.testing.assert_close(value, copied.student[name], rtol=0, atol=0)


def test_weight_decay_schedule_shrinks_the_weights(images) -> None:
    def norm(result) -> float:
        return float(sum(v.double().norm() ** 2 for k, v in result.student.items()
                         if v.ndim > 1 and "weight_g" not in k) ** 0.5)

    none = train_dino(images, config=_config(weight_decay=0.0, weight_decay_end=0.0))
    decayed = train_dino(images, config=_config(weight_decay=0.0, weight_decay_end=50.0))
    assert norm(decayed) < 0.99 * norm(none)
    with pytest.raises(InputError, match="weight_decay"):
        train_dino(images, config=_config(weight_decay_end=-0.1))
    with pytest.raises(InputError, match="teacher_momentum"):
        train_dino(images, config=_config(teacher_momentum_end=1.5))
