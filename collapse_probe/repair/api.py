"""``finetune``: continue training a checkpoint's prototype head with its method's objective plus
KoLeo-Proto, on frozen-backbone features, and write a new checkpoint in the same layout."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError, UnsafeCheckpointError, option
from ..families import FAMILIES, family
from ..options import ReadOptions
from ..validation import fail
from .features import Augmentation, FeatureViews, load_features
from .result import UTILIZATION_EPS, FinetuneResult
from .settings import (DEFAULT_KOLEO_WEIGHT, TEACHER_MODES, KoLeoSettings, ObjectiveSettings, TeacherSettings,
                       TrainSettings, objective_settings)

__all__ = ["finetune", "SUPPORTED_FORMATS", "DEFAULT_KOLEO_WEIGHT", "TEACHER_MODES", "choose_koleo_anchors"]

log = logging.getLogger(__name__)

#: Formats whose objective is implemented: every family's (the DINO loss, MSN's, or SwAV's
#: swapped prediction; DeepCluster-v2 files share SwAV's layout and are read, and fine-tuned, as
#: ``swav``).
SUPPORTED_FORMATS: tuple[str, ...] = tuple(f.name for f in FAMILIES)


def finetune(
    checkpoint_path: Path | str,
    features: Any,
    *,
    out: Path | str,
    read: ReadOptions | None = None,
    head: str | None = None,
    train: TrainSettings = TrainSettings(),
    koleo: KoLeoSettings = KoLeoSettings(),
    teacher: TeacherSettings = TeacherSettings(),
    objective: ObjectiveSettings | None = None,
    augmentation: Augmentation | None = None,
    on_log: Callable[[int, np.ndarray], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> FinetuneResult:
    """Fine-tune a checkpoint's prototype head (MLP and last layer) and write ``out``.

    The backbone is not touched: ``features`` are its outputs. The student head is trained on the
    method's objective plus ``koleo.weight`` * KoLeo-Proto on its prototypes; during the run the
    teacher head, which gives the targets, is an EMA of the student (momentum cosine
    ``teacher.momentum`` -> 1; by default a start suited to the run's length, see
    :func:`~collapse_probe.repair.loop.auto_teacher_momentum`). The written teacher, which
    ``audit`` reads, is the student at the end (``TeacherSettings(written="copy-student")``, the
    default: it carries the repair whenever the student does), or the EMA teacher
    (``written="ema"``: it lags; on ``dino-digits`` over 200 steps its unique count at eps 0.1
    went 468 -> 509 while the student's went 324 -> 981). DINO-family formats use
    the DINO loss ([CLS] head only: iBOT's patch loss and EsViT's region loss need tokens; the
    center starts from ``dino_loss.center`` / ``ibot_loss.center`` when the file has one); MSN
    uses its prototype loss with mean-entropy maximisation (prototypes shared by both networks);
    SwAV (one network, no teacher) its swapped prediction of Sinkhorn-Knopp codes, every set of
    prototypes at once when the file has several (``prototypes.prototypes<i>``), prototypes
    re-normalised after every step. DeepCluster-v2 files have SwAV's layout and are fine-tuned
    with SwAV's objective (DeepCluster-v2's own k-means assignments are not implemented).
    Under ``torchrun`` (``WORLD_SIZE`` > 1) the student is wrapped in DDP, each process draws from
    its shard of the samples, and only rank 0 writes.

    Args:
        checkpoint_path: the input checkpoint; never modified.
        features: ``.npy`` path or array, ``(N, V, d)`` with V >= 2 views of each sample, or
            ``(N, d)`` with feature-space augmentation (``augmentation``; Gaussian noise 0.1 std
            and feature dropout 0.1 by default).
        out: the new checkpoint (same layout, only head tensors changed); must not be the input.
        read: the checkpoint's format (detected when None) and trust; both networks are read,
            so its network and key do not apply.
        head: which head (default: the format's main head, every set of SwAV prototypes; see
            :func:`collapse_probe.heads.rebuild_head`).
        train: steps, batch size, AdamW settings, seed, device, logging interval
            (:class:`~collapse_probe.repair.settings.TrainSettings`).
        koleo: KoLeo-Proto's weight (:data:`DEFAULT_KOLEO_WEIGHT`; 0 for the method alone),
            exact or sampled search, block size
            (:class:`~collapse_probe.repair.settings.KoLeoSettings`). The anchor choice is
            recorded in the result's settings.
        teacher: the written teacher and the EMA momentum's start
            (:class:`~collapse_probe.repair.settings.TeacherSettings`); not used by SwAV.
        objective: the objective's settings: :class:`~collapse_probe.repair.settings.DinoSettings`,
            ``MsnSettings`` or ``SwavSettings``, which must match the checkpoint's family
            (``Family.objective``); None (default): that objective's defaults.
        augmentation: feature-space augmentation of ``(N, d)`` features.
        on_log: called as ``on_log(step, curve_so_far)`` every ``train.log_every`` steps.
        on_step: called with the step index after every step (e.g. a progress bar).

    Returns:
        FinetuneResult with utilization before/after (eps 0.025 and 0.1) of both networks and
        the loss curve.

    Raises:
        InputError: bad features, settings, ``out`` equal to the input, unsupported format, an
            objective record of another family's objective.
        CheckpointError: unreadable checkpoint or head.
    """
    import torch

    from ..checkpoints import load_state, network_state, read_checkpoint
    from .loop import auto_teacher_momentum, copy_student, distributed_from_env, freeze_unit_gains, train_heads
    from .methods import build_heads, build_objective

    source = Path(checkpoint_path)
    target = Path(out)
    _check_paths(source, target)
    _check_record("train", train, TrainSettings)
    _check_record("koleo", koleo, KoLeoSettings)
    _check_record("teacher", teacher, TeacherSettings)
    teacher_momentum = teacher.momentum if teacher.momentum is not None else auto_teacher_momentum(train.steps)
    augmentation = augmentation or Augmentation()
    array = load_features(features)
    torch_device = _device(train.device)

    read = ReadOptions(format=read.format, trust=read.trust) if read is not None else ReadOptions()
    checkpoint = read_checkpoint(source, read)
    if checkpoint.replaced:
        # Placeholders cannot be written back as the objects they replaced.
        raise UnsafeCheckpointError(
            f"{source} holds pickled classes that were not loaded "
            f"({', '.join(checkpoint.replaced)}); fine-tuning writes every entry back, which "
            f"it cannot do for them. Pass {option('trust', True)} only if you trust the file's "
            "source (full unpickling runs any code it holds).")
    fmt = checkpoint.format
    if fmt not in SUPPORTED_FORMATS:
        raise InputError(f"fine-tuning {fmt} checkpoints is not supported (its objective is not "
                         f"implemented): supported formats are {', '.join(SUPPORTED_FORMATS)}.")
    objective_name = family(fmt).objective
    method = objective_settings(objective, objective=objective_name, format=fmt)
    obj = load_state(source, trust=read.trust)
    teacher_state, student_state = _network_states(obj, fmt, network_state)
    one_network = family(fmt).one_network  # SwAV trains one network: no teacher, no EMA

    heads = build_heads(method, checkpoint, head=head, teacher_state=teacher_state, student_state=student_state)
    teacher_head, student = heads.teacher, heads.student
    _check_dims(teacher_head, student, array)
    frozen_gain = freeze_unit_gains(student)
    names = ("model",) if one_network else ("teacher", "student")

    before = {names[0]: _unique(teacher_head)}
    if not one_network:
        before["student"] = _unique(student)

    dist = distributed_from_env(torch_device)
    if dist.active and torch_device.type == "cuda":
        torch_device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.rank)))
    torch.manual_seed(train.seed)
    generator = torch.Generator().manual_seed(train.seed + 7919 * dist.rank)
    shard = np.arange(dist.rank, array.shape[0], dist.world_size) if dist.active else None
    views = FeatureViews(array, augmentation=augmentation, indices=shard, generator=generator,
                         device=torch_device)
    student.to(torch_device)
    teacher_head.to(torch_device)
    num_views = array.shape[1] if array.ndim == 3 else augmentation.num_views
    anchors, anchor_choice = choose_koleo_anchors(
        koleo.anchors, student, rows_per_step=min(train.batch_size, int(views.data.shape[0])) * num_views,
        one_network=one_network)
    loss, objective_record = build_objective(method, heads, checkpoint, device=torch_device)
    koleo_generator = torch.Generator().manual_seed(train.seed + 1)
    curve = train_heads(student, teacher_head, loss, views, train, koleo_weight=koleo.weight,
                        teacher_momentum=teacher_momentum, dist=dist,
                        koleo_options={"block_size": koleo.block_size, "num_anchors": anchors,
                                       "generator": koleo_generator},
                        on_log=on_log if dist.rank == 0 else None,
                        on_step=on_step if dist.rank == 0 else None)
    if teacher.written == "copy-student" and not one_network:
        copy_student(teacher_head, student)
    student.cpu()
    teacher_head.cpu()
    after = {names[0]: _unique(teacher_head)}
    if not one_network:
        after["student"] = _unique(student)

    # the networks the file holds (a teacher-only file gets the teacher back)
    networks = names[:1] if one_network or student_state is None else names
    written: list[str] = []
    if dist.rank == 0:
        from .writer import replace_tensors, save_checkpoint

        pairs = _replacements(teacher_head, teacher_state, fmt)
        if student_state is not None and not one_network:
            pairs += _replacements(student, student_state, fmt)
        from ..checkpoints.files import sniff

        written = replace_tensors(obj, _unique_pairs(pairs))
        save_checkpoint(obj, target, legacy=sniff(source) == "torch-legacy")
    if dist.active:
        import torch.distributed as tdist

        tdist.barrier()

    run_settings = {
        "koleo_weight": koleo.weight, "steps": train.steps, "batch_size": train.batch_size, "lr": train.lr,
        "weight_decay": train.weight_decay, "device": str(torch_device.type), "seed": train.seed,
        "world_size": dist.world_size, "teacher": None if one_network else teacher.written,
        "teacher_momentum": None if one_network else teacher_momentum,
        "teacher_momentum_choice": None if one_network else ("auto" if teacher.momentum is None else "set"),
        "frozen_unit_gain": frozen_gain, "feature_shape": list(array.shape),
        "augmentation": None if array.ndim == 3 else {
            "num_views": augmentation.num_views, "noise_std": augmentation.noise_std,
            "feature_drop": augmentation.feature_drop},
        "koleo_block_size": koleo.block_size, "koleo_anchors": anchors,
        "koleo_search": "exact" if anchors is None else "sampled", "koleo_anchors_choice": anchor_choice,
    } | objective_record
    head_names = heads.names
    return FinetuneResult(
        checkpoint=source, out=target if dist.rank == 0 else None, format=fmt,
        head=teacher_head.spec.name if not one_network or len(head_names) == 1 else ",".join(head_names),
        objective=objective_name, num_prototypes=teacher_head.num_prototypes, networks=networks,
        settings=run_settings, unique_before=before, unique_after=after, loss=curve,
        written_keys=tuple(written))


def choose_koleo_anchors(requested: int | str | None, head: Any, *, rows_per_step: int,
                         one_network: bool = False) -> tuple[int | None, str]:
    """The KoLeo-Proto anchors per step: None (exact) or a sample size, and how it was chosen.

    ``"auto"`` compares floating-point work. The exact search costs about ``2 K^2 D`` per step
    (every prototype against every other); the rest of the step about ``8 R P`` for R rows
    (batch x views) through a head of P weights (student forward and backward: 3 passes, the
    teacher's forward: 1; 3 passes for one network). Exact when it costs no more than the rest
    of the step; otherwise as many anchors as cost that much (``2 M K D``), at least 256, in
    multiples of 256, unless that is half of K or more: sampling then saves little and adds
    noise, so the search stays exact.

    Returns:
        (anchors or None, ``"auto"`` or ``"set"``).
    """
    if requested != "auto":
        return (None if not requested else int(requested)), "set"
    layers = head.prototype_layers() if callable(getattr(head, "prototype_layers", None)) else [head.prototype_layer()]
    from ..koleo import prototype_weight

    shapes = [tuple(prototype_weight(layer).shape) for layer in layers]
    weights = sum(p.numel() for p in head.parameters())
    step = (3 if one_network else 4) * 2 * rows_per_step * weights
    num, dim = max(shapes)
    exact = 2 * num * num * dim
    if exact <= step:
        return None, "auto"
    anchors = max(256, int(step // (2 * num * dim)) // 256 * 256)
    return (None if 2 * anchors >= num else anchors), "auto"


# -- helpers ---------------------------------------------------------------------------------------
def _check_paths(source: Path, target: Path) -> None:
    if not source.is_file():
        raise InputError(f"checkpoint {source} does not exist (or is not a file).")
    same = source.resolve() == target.resolve()
    if not same and target.exists():
        try:
            same = os.path.samefile(source, target)
        except OSError:
            same = False
    if same:
        raise InputError(f"{option('out', str(target))} is the input checkpoint: write the fine-tuned "
                         "checkpoint to a new file (the input is never overwritten).")
    if target.is_dir():
        raise InputError(f"{option('out', str(target))} is a directory: name a file, e.g. "
                         f"{target / 'finetuned.pth'}.")


def _check_record(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind):
        raise fail(name, expected=f"a {kind.__name__} record", got=type(value).__name__)


def _device(name: str) -> Any:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{option('device', 'cuda')} was asked for but no CUDA device is available: "
                         f"use {option('device', 'cpu')}.")
    return torch.device(name)


def _network_states(obj: Mapping[str, Any], fmt: str, network_state: Callable[..., dict]) -> tuple[dict, dict | None]:
    teacher = network_state(obj, format=fmt, network="teacher")
    try:
        student: dict | None = network_state(obj, format=fmt, network="student")
    except CheckpointError:
        student = None
    if student is not None and _same_objects(teacher, student):
        student = None  # one network only (e.g. a lightly head without a role in its name)
    return teacher, student


def _same_objects(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    ids = {id(v) for k, v in a.items() if k != "prototypes"}
    return bool(ids) and ids == {id(v) for k, v in b.items() if k != "prototypes"}


def _check_dims(teacher: Any, student: Any, array: np.ndarray) -> None:
    import torch

    for name, head in (("teacher", teacher), ("student", student)):
        linears = [m for m in head.mlp.modules() if isinstance(m, torch.nn.Linear)]
        expected = linears[0].in_features if linears else head.prototypes().shape[1]
        if array.shape[-1] != expected:
            raise fail("features", expected=f"feature dimension d = {expected} (the {name} head's input)",
                       got=f"d = {array.shape[-1]}", hint="Pass the backbone outputs the head was trained on.")
    if teacher.num_prototypes != student.num_prototypes:
        raise CheckpointError("the student and teacher heads have different numbers of prototypes.")
    shapes = [{name: tuple(p.shape) for name, p in head.named_parameters()} for head in (teacher, student)]
    if shapes[0] != shapes[1]:
        raise CheckpointError(f"the student and teacher heads are stored differently ({teacher.form} vs "
                              f"{student.form}, or different layers): the teacher EMA needs matching heads.")


def _unique(head: Any) -> dict[float, int]:
    """Unique prototypes at :data:`UTILIZATION_EPS`; summed over the sets of a SwAV head set."""
    from ..dedup import sweep
    from ..types import PrototypeSet

    parts = list(head.heads) if hasattr(head, "heads") else [head]
    totals: dict[float, int] = {}
    for part in parts:
        matrix = part.prototypes().detach().cpu().float().numpy()
        for r in sweep(PrototypeSet.from_array(matrix, name=part.spec.name), eps=UTILIZATION_EPS):
            totals[r.eps] = totals.get(r.eps, 0) + r.unique
    return totals


def _replacements(head: Any, state: Mapping[str, Any], fmt: str) -> list[tuple[Any, Any]]:
    import torch

    new = head.to_state()
    pairs = [(state[key], tensor) for key, tensor in new.items()]
    for layer, twin_layer in family(fmt).twin_layers:
        if head.spec.last_prefix != layer:
            continue
        # a shared head saved as two equal tensors: keep them equal
        for key, tensor in new.items():
            twin = key.replace(f"{layer}.", f"{twin_layer}.", 1)
            if twin != key and twin in state and torch.equal(state[twin], state[key]):
                pairs.append((state[twin], tensor))
    return pairs


def _unique_pairs(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    seen: set[int] = set()
    out = []
    for old, new in pairs:
        if id(old) not in seen:
            seen.add(id(old))
            out.append((old, new))
    return out
