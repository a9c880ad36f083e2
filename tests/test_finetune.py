"""finetune on tiny planted collapsed checkpoints: same layout out, only the head changed, more
unique prototypes with KoLeo-Proto than without, input untouched."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from layouts import (RESNET_DIM, planted_prototypes, write_dino, write_dinov2, write_dinov3, write_esvit,
                     write_ibot, write_lightly, write_msn, write_sololearn, write_swav)

from collapse_probe import (FinetuneResult, KoLeoSettings, TeacherSettings, TrainSettings, deduplicate,
                            finetune)
from collapse_probe.checkpoints import load_state, read_checkpoint
from collapse_probe.errors import CollapseProbeError, InputError
from collapse_probe.options import ReadOptions

FEATURE_DIM = 16  # layouts.VIT_DIM: the tiny ViT's output width
K, D, GROUPS = 256, 16, 16


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny matrices on a shared 2-core machine: one thread avoids oversubscription.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested dicts by dotted path (tensors and plain values alike)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, Mapping):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def assert_same(a: Any, b: Any, key: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), key
    elif isinstance(a, Mapping):  # e.g. an optimizer state inside a list
        assert isinstance(b, Mapping) and a.keys() == b.keys(), key
        for name in a:
            assert_same(a[name], b[name], f"{key}.{name}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), key
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{key}[{i}]")
    else:
        assert a == b, key


def clustered_views(num: int = 256, views: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((32, FEATURE_DIM))
    labels = rng.integers(0, 32, num)
    x = centres[labels][:, None, :] + 0.3 * rng.standard_normal((num, views, FEATURE_DIM))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finetune")
    protos, _ = planted_prototypes(GROUPS, K // GROUPS, D, noise=1e-3, seed=3)
    return write_dino(folder / "collapsed.pth", prototypes=protos)


@pytest.fixture(scope="module")
def runs(collapsed: Path) -> dict[float, tuple[FinetuneResult, Path, str, str]]:
    torch.set_num_threads(1)
    features = clustered_views()
    out: dict[float, tuple[FinetuneResult, Path, str, str]] = {}
    for weight in (0.0, 0.1):
        before = sha256(collapsed)
        target = collapsed.with_name(f"out_{weight}.pth")
        result = finetune(collapsed, features, out=target, koleo=KoLeoSettings(weight=weight),
                          train=TrainSettings(steps=120, batch_size=64, lr=1e-3, seed=1),
                          teacher=TeacherSettings(momentum=0.95))
        out[weight] = (result, target, before, sha256(collapsed))
    return out


def test_only_head_tensors_change(collapsed: Path, runs) -> None:
    result, target, _, _ = runs[0.1]
    old, new = flat(load_state(collapsed)), flat(load_state(target))
    assert list(old) == list(new)  # same keys, same order
    head_keys = {k for k in old if k.startswith(("student.module.head.", "teacher.head."))}
    assert set(result.written_keys) <= head_keys
    for key in old:
        if key not in head_keys:
            assert_same(old[key], new[key], key)
    changed = {k for k in head_keys if not torch.equal(old[k], new[k])}
    # the last layer and the MLP moved in both networks
    for key in ("teacher.head.last_layer.weight_v", "student.module.head.last_layer.weight_v",
                "teacher.head.mlp.0.weight", "student.module.head.mlp.4.weight"):
        assert key in changed
    # the student's g was all ones (norm_last_layer=True): it stays frozen
    assert torch.equal(new["student.module.head.last_layer.weight_g"], old["student.module.head.last_layer.weight_g"])
    assert result.settings["frozen_unit_gain"] is True


def test_forms_and_dtypes_are_preserved(collapsed: Path, runs) -> None:
    _, target, _, _ = runs[0.1]
    old, new = flat(load_state(collapsed)), flat(load_state(target))
    for key in old:
        if isinstance(old[key], torch.Tensor):
            assert new[key].dtype == old[key].dtype and new[key].shape == old[key].shape, key
    for network in ("teacher", "student"):
        assert read_checkpoint(target, ReadOptions(network=network)).forms == {"head": "weight-norm-old"}


def test_koleo_repairs_the_collapsed_head(collapsed: Path, runs) -> None:
    with_koleo, target, _, _ = runs[0.1]
    without, target0, _, _ = runs[0.0]
    assert with_koleo.unique_before["teacher"][0.025] == GROUPS
    assert with_koleo.unique_after["teacher"][0.025] > with_koleo.unique_before["teacher"][0.025]
    assert with_koleo.unique_after["teacher"][0.025] > without.unique_after["teacher"][0.025]
    assert with_koleo.unique_after["student"][0.1] > without.unique_after["student"][0.1]
    # the file says the same as the result, read back independently
    (teacher_head,) = read_checkpoint(target).heads
    assert deduplicate(teacher_head, eps=0.025).unique == with_koleo.unique_after["teacher"][0.025]
    assert deduplicate(read_checkpoint(target0).heads[0], eps=0.025).unique < \
        deduplicate(teacher_head, eps=0.025).unique
    assert with_koleo.loss.shape == (120, 3) and np.isfinite(with_koleo.loss[:, :2]).all()
    assert with_koleo.loss[-1, 2] < with_koleo.loss[0, 2]  # KoLeo-Proto went down


def test_input_file_is_never_modified(runs) -> None:
    for _, _, before, after in runs.values():
        assert before == after


def test_result_records_settings_and_json(runs) -> None:
    result, target, _, _ = runs[0.1]
    data = result.to_dict()
    assert data["out"] == str(target) and data["objective"] == "dino"
    assert data["settings"]["koleo_weight"] == 0.1 and data["settings"]["augmentation"] is None
    assert data["settings"]["center_from_checkpoint"] is True
    assert data["unique_after"]["teacher"]["0.025"]["unique"] == result.unique_after["teacher"][0.025]
    assert len(data["loss"]["total"]) == 120


def test_new_weight_norm_half_precision_and_2d_features(tmp_path: Path) -> None:
    protos, _ = planted_prototypes(8, 4, D, seed=4)
    path = write_dino(tmp_path / "half.pth", prototypes=protos, form="weight-norm-new", dtype=torch.float16)
    features = clustered_views(64)[:, 0]  # (N, d): augmented views
    result = finetune(path, features, out=tmp_path / "o.pth", train=TrainSettings(steps=3, batch_size=16, lr=1e-3))
    assert result.settings["augmentation"] == {"num_views": 2, "noise_std": 0.1, "feature_drop": 0.1}
    old, new = flat(load_state(path)), flat(load_state(tmp_path / "o.pth"))
    assert list(old) == list(new)
    key = "teacher.head.last_layer.parametrizations.weight.original1"
    assert new[key].dtype == torch.float16 and not torch.equal(new[key], old[key])


def test_legacy_serialization_is_kept(tmp_path: Path) -> None:
    from collapse_probe.checkpoints.files import sniff

    protos, _ = planted_prototypes(8, 4, D, seed=8)
    path = write_dino(tmp_path / "legacy.pth", prototypes=protos, legacy=True)
    finetune(path, clustered_views(32), out=tmp_path / "o.pth", train=TrainSettings(steps=2, batch_size=16))
    assert sniff(path) == sniff(tmp_path / "o.pth") == "torch-legacy"
    assert list(flat(load_state(path))) == list(flat(load_state(tmp_path / "o.pth")))


def test_ibot_shared_head_stays_shared(tmp_path: Path) -> None:
    protos, _ = planted_prototypes(8, 4, D, seed=5)
    path = write_ibot(tmp_path / "ibot.pth", prototypes=protos)
    finetune(path, clustered_views(64), out=tmp_path / "o.pth", train=TrainSettings(steps=3, batch_size=16, lr=1e-3))
    new = flat(load_state(tmp_path / "o.pth"))
    old = flat(load_state(path))
    for net in ("teacher.", "student.module."):
        for leaf in ("weight_g", "weight_v"):
            a, b = new[f"{net}head.last_layer.{leaf}"], new[f"{net}head.last_layer2.{leaf}"]
            assert torch.equal(a, b)
        assert not torch.equal(new[f"{net}head.last_layer2.weight_v"], old[f"{net}head.last_layer2.weight_v"])
    assert torch.equal(new["ibot_loss.center2"], old["ibot_loss.center2"])


def test_msn_prototypes_and_projections(tmp_path: Path) -> None:
    protos, _ = planted_prototypes(8, 4, D, seed=6)
    path = write_msn(tmp_path / "msn.pth", prototypes=protos, training=True)
    result = finetune(path, clustered_views(64), out=tmp_path / "o.pth",
                      train=TrainSettings(steps=3, batch_size=16, lr=1e-3))
    assert result.objective == "msn" and result.networks == ("teacher", "student")
    old, new = flat(load_state(path)), flat(load_state(tmp_path / "o.pth"))
    assert list(old) == list(new)
    changed = {k for k in old if isinstance(old[k], torch.Tensor) and not torch.equal(old[k], new[k])}
    assert "prototypes" in changed
    assert "encoder.module.fc.fc3.weight" in changed and "target_encoder.module.fc.fc3.weight" in changed
    assert all(k == "prototypes" or ".fc." in k for k in changed)
    # BatchNorm running statistics are used, never updated
    assert "target_encoder.module.fc.bn1.running_mean" not in changed


@pytest.mark.parametrize("layout", ["dinov2", "dinov3", "esvit", "lightly", "lightly-single",
                                    "solo-learn", "dino-resnet50"])
def test_every_dino_like_layout(tmp_path: Path, layout: str) -> None:
    protos, _ = planted_prototypes(8, 4, D, seed=7)
    path = tmp_path / "in.pth"
    dim = FEATURE_DIM
    if layout == "dinov2":  # teacher only: the student starts as its copy
        write_dinov2(path, prototypes=protos, ibot_prototypes=protos)
    elif layout == "dinov3":
        write_dinov3(path, prototypes=protos)
    elif layout == "esvit":
        write_esvit(path, prototypes=protos)
    elif layout == "lightly":
        write_lightly(path, heads={"student_head": protos, "teacher_head": protos})
    elif layout == "lightly-single":
        write_lightly(path, heads={"projection_head": protos}, lightning=True)
    elif layout == "solo-learn":
        write_sololearn(path, prototypes=protos)
        dim = 32  # its ResNet backbone
    else:
        write_dino(path, prototypes=protos, backbone="resnet50", form="plain")
        dim = 32
    rng = np.random.default_rng(0)
    features = rng.standard_normal((48, 2, dim)).astype(np.float32)
    result = finetune(path, features, out=tmp_path / "o.pth", train=TrainSettings(steps=3, batch_size=16, lr=1e-3))
    old, new = flat(load_state(path)), flat(load_state(tmp_path / "o.pth"))
    assert list(old) == list(new)
    changed = {k for k in old if isinstance(old[k], torch.Tensor) and not torch.equal(old[k], new[k])}
    assert changed and changed <= set(result.written_keys)
    for key in old:
        if key not in result.written_keys:
            assert_same(old[key], new[key], key)
    expected = 1 if layout in ("dinov2", "dinov3", "lightly-single") else 2
    assert len(result.networks) == expected


def test_errors(collapsed: Path, tmp_path: Path) -> None:
    good = clustered_views(16)
    with pytest.raises(InputError, match="2 views"):
        finetune(collapsed, good[:, :1], out=tmp_path / "o.pth", train=TrainSettings(steps=1))
    with pytest.raises(InputError, match="input checkpoint"):
        finetune(collapsed, good, out=collapsed, train=TrainSettings(steps=1))
    with pytest.raises(InputError, match="does not exist"):
        finetune(tmp_path / "missing.pth", good, out=tmp_path / "o.pth", train=TrainSettings(steps=1))
    with pytest.raises(InputError, match="feature dimension"):
        finetune(collapsed, good[..., :5], out=tmp_path / "o.pth", train=TrainSettings(steps=1))
    with pytest.raises(InputError, match="koleo_weight"):
        finetune(collapsed, good, out=tmp_path / "o.pth", koleo=KoLeoSettings(weight=-1.0))
    with pytest.raises(CollapseProbeError):
        finetune(collapsed, tmp_path / "nope.npy", out=tmp_path / "o.pth", train=TrainSettings(steps=1))
    assert not (tmp_path / "o.pth").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device(collapsed: Path, tmp_path: Path) -> None:
    result = finetune(collapsed, clustered_views(64), out=tmp_path / "o.pth",
                      train=TrainSettings(steps=5, batch_size=16, lr=1e-3, device="cuda"))
    assert result.settings["device"] == "cuda"
    assert read_checkpoint(tmp_path / "o.pth").heads[0].num_prototypes == K


# -- the pieces, against hand computations ------------------------------------------------------------
def test_dino_objective_by_hand() -> None:
    from collapse_probe.repair.objectives import DinoObjective

    student = torch.tensor([[[0.0, 0.1], [0.1, 0.0]]])  # (B=1, V=2, K=2)
    teacher = torch.tensor([[[0.04, 0.0], [0.0, 0.0]]])
    objective = DinoObjective(torch.tensor([0.0, 0.0]), num_prototypes=2, teacher_temp=0.04,
                              student_temp=0.1, center_momentum=0.9)
    loss = objective(student, teacher)
    # teacher view 0: softmax([1, 0]); view 1: [0.5, 0.5]. Student view 1: softmax([1, 0]); view 0: softmax([0, 1]).
    e = math.e
    q0 = [e / (e + 1), 1 / (e + 1)]
    log_s1 = [math.log(e / (e + 1)), math.log(1 / (e + 1))]
    log_s0 = [math.log(1 / (e + 1)), math.log(e / (e + 1))]
    expected = (-(q0[0] * log_s1[0] + q0[1] * log_s1[1]) - 0.5 * (log_s0[0] + log_s0[1])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # center: 0.9 * 0 + 0.1 * mean teacher output over samples and views
    torch.testing.assert_close(objective.center, torch.tensor([0.002, 0.0]))


def test_msn_objective_by_hand() -> None:
    from collapse_probe.repair.objectives import MsnObjective

    anchor = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5]]]))  # uniform predictions
    target = torch.log(torch.tensor([[[0.8, 0.2], [0.8, 0.2]]]))
    loss = MsnObjective(sharpen=0.5, memax_weight=1.0)(anchor, target)
    sharp = [0.64 / 0.68, 0.04 / 0.68]
    expected = -(sharp[0] + sharp[1]) * math.log(0.5)  # CE against a uniform prediction; me-max term 0
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    skewed = torch.log(torch.tensor([[[0.9, 0.1], [0.9, 0.1]]]))
    only_memax = MsnObjective(memax_weight=1.0)(skewed, skewed) - MsnObjective(memax_weight=0.0)(skewed, skewed)
    assert only_memax.item() == pytest.approx(math.log(2) + 0.9 * math.log(0.9) + 0.1 * math.log(0.1), rel=1e-5)


def test_teacher_momentum_schedule() -> None:
    from collapse_probe.repair.loop import teacher_momentum_at

    assert teacher_momentum_at(0, 100, 0.996) == pytest.approx(0.996)
    assert teacher_momentum_at(99, 100, 0.996) == pytest.approx(1.0)
    assert teacher_momentum_at(50, 101, 0.996) == pytest.approx(0.998)


def test_writer_replaces_shared_storage_and_refuses_unknown_tensors() -> None:
    from collapse_probe.errors import CheckpointError
    from collapse_probe.repair.writer import replace_tensors

    shared = torch.ones(3, 2)
    root = {"a": {"w": shared, "twin": shared[:]}, "other": torch.zeros(2), "epoch": 3}
    new = torch.full((3, 2), 2.0)
    written = replace_tensors(root, [(shared, new)])
    assert written == ["a.w", "a.twin"] and root["a"]["twin"] is new and root["epoch"] == 3
    with pytest.raises(CheckpointError, match="not found"):
        replace_tensors(root, [(torch.ones(1), torch.ones(1))])


# -- the teacher shows the repair ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["copy-student", "ema"])
def test_teacher_shows_the_repair_by_default(collapsed: Path, tmp_path: Path, mode: str) -> None:
    # the default writes the student as the teacher; the EMA teacher with the default momentum
    # (suited to the run) also shows the repair on this head
    kwargs = {} if mode == "copy-student" else {"teacher": TeacherSettings(written="ema")}
    result = finetune(collapsed, clustered_views(), out=tmp_path / "o.pth",
                      train=TrainSettings(steps=100, batch_size=64, lr=1e-3, seed=2), **kwargs)
    assert result.settings["teacher"] == mode and result.settings["teacher_momentum_choice"] == "auto"
    assert result.settings["teacher_momentum"] == pytest.approx(1 - 6 / 100)
    for network in ("teacher", "student"):
        assert result.unique_before[network][0.025] == GROUPS
        assert result.unique_after[network][0.025] > GROUPS, network
    # the audit reads the teacher: the file says so too
    assert deduplicate(read_checkpoint(tmp_path / "o.pth").heads[0], eps=0.025).unique == \
        result.unique_after["teacher"][0.025]


def test_dino_default_momentum_lags_behind_on_short_runs(collapsed: Path, tmp_path: Path) -> None:
    # DINO's 0.996 keeps ~80 % of the old teacher over 100 steps: the student repairs, the teacher less
    fixed = finetune(collapsed, clustered_views(), out=tmp_path / "o.pth",
                     train=TrainSettings(steps=100, batch_size=64, lr=1e-3, seed=2),
                     teacher=TeacherSettings(written="ema", momentum=0.996))
    assert fixed.settings["teacher_momentum_choice"] == "set"
    assert fixed.unique_after["teacher"][0.025] < fixed.unique_after["student"][0.025]


def test_copy_student_teacher(collapsed: Path, tmp_path: Path) -> None:
    result = finetune(collapsed, clustered_views(), out=tmp_path / "o.pth",
                      train=TrainSettings(steps=40, batch_size=64, lr=1e-3))  # the default
    assert result.unique_after["teacher"] == result.unique_after["student"]
    new = flat(load_state(tmp_path / "o.pth"))
    for leaf in ("last_layer.weight_v", "mlp.0.weight", "mlp.4.bias"):
        assert torch.equal(new[f"teacher.head.{leaf}"], new[f"student.module.head.{leaf}"]), leaf
    with pytest.raises(InputError, match="teacher"):
        finetune(collapsed, clustered_views(), out=tmp_path / "x.pth", train=TrainSettings(steps=1),
                 teacher=TeacherSettings(written="student"))


def test_teacher_only_file_reports_both_networks(tmp_path: Path) -> None:
    protos, _ = planted_prototypes(8, 4, D, seed=7)
    path = write_dinov2(tmp_path / "in.pth", prototypes=protos)
    result = finetune(path, clustered_views(48), out=tmp_path / "o.pth", train=TrainSettings(steps=3, batch_size=16))
    assert result.networks == ("teacher",) and set(result.unique_before) == {"teacher", "student"}


# -- KoLeo-Proto: exact or sampled, chosen from the cost of a step --------------------------------------
def test_koleo_anchors_auto_choice() -> None:
    from collapse_probe.repair.api import choose_koleo_anchors

    def head(num: int, dim: int = 256, hidden: int = 2048, in_dim: int = 384) -> Any:
        class Head(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.mlp = torch.nn.Sequential(torch.nn.Linear(in_dim, hidden), torch.nn.Linear(hidden, dim))
                self.last_layer = torch.nn.Linear(dim, num, bias=False)

            def prototype_layer(self) -> Any:
                return self.last_layer

        return Head()

    # weights P = 384*2048 + 2048 + 2048*256 + 256 + 256 K; step = 8 * rows * P; exact = 2 K^2 D
    small = head(1024)
    assert choose_koleo_anchors("auto", small, rows_per_step=512) == (None, "auto")
    big = head(65536)
    weights = sum(p.numel() for p in big.parameters())
    anchors, how = choose_koleo_anchors("auto", big, rows_per_step=512)
    assert how == "auto" and anchors == (8 * 512 * weights) // (2 * 65536 * 256) // 256 * 256
    assert 1024 <= anchors < 65536
    assert choose_koleo_anchors(0, big, rows_per_step=512) == (None, "set")
    assert choose_koleo_anchors(None, big, rows_per_step=512) == (None, "set")
    assert choose_koleo_anchors(300, big, rows_per_step=512) == (300, "set")


def test_koleo_choice_is_recorded(collapsed: Path, tmp_path: Path) -> None:
    result = finetune(collapsed, clustered_views(32), out=tmp_path / "o.pth",
                      train=TrainSettings(steps=2, batch_size=16))
    data = result.to_dict()["settings"]
    assert data["koleo_search"] == "exact" and data["koleo_anchors"] is None
    assert data["koleo_anchors_choice"] == "auto"
    forced = finetune(collapsed, clustered_views(32), out=tmp_path / "o.pth",
                      train=TrainSettings(steps=2, batch_size=16), koleo=KoLeoSettings(anchors=64))
    assert forced.settings["koleo_search"] == "sampled" and forced.settings["koleo_anchors"] == 64
    with pytest.raises(InputError, match="koleo_anchors"):
        finetune(collapsed, clustered_views(32), out=tmp_path / "o.pth", train=TrainSettings(steps=2),
                 koleo=KoLeoSettings(anchors=-3))


# -- SwAV ---------------------------------------------------------------------------------------------
def test_sinkhorn_codes_by_hand() -> None:
    from collapse_probe.repair.objectives import sinkhorn_codes

    # balanced scores: exp(s / eps) = [[e, 1], [1, e]] is already balanced, so codes are its rows
    a, eps = 0.1, 0.05
    e = math.exp(a / eps)
    codes = sinkhorn_codes(torch.tensor([[a, 0.0], [0.0, a]]), epsilon=eps, iterations=3)
    expected = torch.tensor([[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]])
    torch.testing.assert_close(codes, expected)
    # an unbalanced case, iterated by hand: Q = exp(s/eps)^T (K x B), rows to 1/K, columns to 1/B
    s = [[0.3, 0.1, -0.2], [0.2, 0.0, 0.1]]  # (B=2, K=3)
    q = [[math.exp(s[b][k] / eps) for b in range(2)] for k in range(3)]
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(3):
        q = [[v / sum(row) / 3 for v in row] for row in q]
        cols = [sum(q[k][b] for k in range(3)) for b in range(2)]
        q = [[q[k][b] / cols[b] / 2 for b in range(2)] for k in range(3)]
    hand = torch.tensor([[q[k][b] * 2 for k in range(3)] for b in range(2)])
    torch.testing.assert_close(sinkhorn_codes(torch.tensor(s), epsilon=eps, iterations=3), hand)
    torch.testing.assert_close(hand.sum(dim=1), torch.ones(2))


def test_swav_objective_by_hand() -> None:
    from collapse_probe.repair.objectives import SwavObjective

    a, b, eps, tau = 0.1, 0.05, 0.05, 0.1
    view0 = [[a, 0.0], [0.0, a]]
    view1 = [[0.0, b], [b, 0.0]]
    scores = torch.tensor([[view0[0], view1[0]], [view0[1], view1[1]]])  # (B=2, V=2, K=2)
    e, f = math.exp(a / eps), math.exp(b / eps)
    q0 = [[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]]
    q1 = [[1 / (f + 1), f / (f + 1)], [f / (f + 1), 1 / (f + 1)]]

    def log_softmax(row: list[float]) -> list[float]:
        z = math.log(sum(math.exp(v / tau) for v in row))
        return [v / tau - z for v in row]

    def ce(q: list[list[float]], view: list[list[float]]) -> float:
        return -sum(sum(qk * lk for qk, lk in zip(q[i], log_softmax(view[i]))) for i in range(2)) / 2

    expected = (ce(q0, view1) + ce(q1, view0)) / 2  # codes of each view predicted from the other
    loss = SwavObjective(temperature=tau, epsilon=eps, iterations=3)(scores)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # two heads: the mean of each head's loss
    two = SwavObjective(temperature=tau, epsilon=eps, sizes=[2, 2])(torch.cat([scores, scores.flip(-1)], dim=-1))
    assert two.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("heads", [1, 2])
def test_swav_finetune(tmp_path: Path, heads: int) -> None:
    sets = [planted_prototypes(8, 8, D, noise=1e-3, seed=20 + i)[0] for i in range(heads)]
    path = write_swav(tmp_path / "swav.pth", prototypes=sets if heads > 1 else sets[0], container="state_dict")
    rng = np.random.default_rng(0)
    centres = 2.0 * rng.standard_normal((16, RESNET_DIM))
    features = (centres[rng.integers(0, 16, 256)][:, None, :]
                + 0.3 * rng.standard_normal((256, 2, RESNET_DIM))).astype(np.float32)
    result = finetune(path, features, out=tmp_path / "o.pth", train=TrainSettings(steps=100, batch_size=64, lr=1e-3))
    assert result.objective == "swav" and result.networks == ("model",)
    assert result.settings["prototypes_per_head"] == [64] * heads and result.settings["teacher"] is None
    assert result.unique_before["model"][0.025] == 8 * heads
    assert result.unique_after["model"][0.025] > 8 * heads
    old, new = flat(load_state(path)), flat(load_state(tmp_path / "o.pth"))
    assert list(old) == list(new)
    changed = {k for k in old if isinstance(old[k], torch.Tensor) and not torch.equal(old[k], new[k])}
    assert changed and all(".projection_head." in k or ".prototypes." in k for k in changed)
    assert "state_dict.module.projection_head.1.running_mean" not in changed
    for head in read_checkpoint(tmp_path / "o.pth").heads:
        # SwAV keeps unit prototypes
        np.testing.assert_allclose(head.norms, 1.0, atol=1e-5)


# -- settings records -----------------------------------------------------------------------------------
def test_objective_settings_must_match_the_family(collapsed: Path, tmp_path: Path) -> None:
    from collapse_probe import DinoSettings, MsnSettings, SwavSettings

    protos, _ = planted_prototypes(8, 4, D, seed=6)
    msn = write_msn(tmp_path / "msn.pth", prototypes=protos, training=True)
    with pytest.raises(InputError, match=r"^objective: msn checkpoints .* \(MsnSettings\), got DinoSettings"):
        finetune(msn, clustered_views(32), out=tmp_path / "o.pth", objective=DinoSettings())
    with pytest.raises(InputError, match=r"^objective: dino checkpoints .* \(DinoSettings\), got SwavSettings"):
        finetune(collapsed, clustered_views(32), out=tmp_path / "o.pth", objective=SwavSettings())
    with pytest.raises(InputError, match="^train: expected a TrainSettings record"):
        finetune(collapsed, clustered_views(32), out=tmp_path / "o.pth", train={"steps": 2})  # type: ignore[arg-type]
    assert not (tmp_path / "o.pth").exists()
    result = finetune(msn, clustered_views(32), out=tmp_path / "o.pth", train=TrainSettings(steps=2, batch_size=16),
                      objective=MsnSettings(temperature=0.2, sharpen=0.3, memax_weight=0.5))
    assert {k: result.settings[k] for k in ("temperature", "sharpen", "memax_weight")} == \
        {"temperature": 0.2, "sharpen": 0.3, "memax_weight": 0.5}


def test_settings_records_check_their_values() -> None:
    for build, name in ((lambda: TrainSettings(steps=0), "steps"), (lambda: TrainSettings(lr=0.0), "lr"),
                        (lambda: TrainSettings(weight_decay=-1.0), "weight_decay"),
                        (lambda: TrainSettings(device="tpu"), "device"),
                        (lambda: KoLeoSettings(weight=float("nan")), "koleo_weight"),
                        (lambda: KoLeoSettings(anchors=True), "koleo_anchors"),
                        (lambda: TeacherSettings(momentum=1.5), "teacher_momentum")):
        with pytest.raises(InputError, match=f"^{name}: expected"):
            build()
