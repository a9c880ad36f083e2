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

__all__ = ["finetune", "SUPPORTED_FORMATS", "DEFAULT_KOLEO_WEIGHT", "TEACHER_MODES", "choose_koleo_anchors"]

log = logging.getLogger(__name__)

#: Formats whose objective is implemented: every family's (the DINO loss, MSN's, or SwAV's
#: swapped prediction; DeepCluster-v2 files share SwAV's layout and are read, and fine-tuned, as
#: ``swav``).
SUPPORTED_FORMATS: tuple[str, ...] = tuple(f.name for f in FAMILIES)

#: ``teacher=`` choices for the written teacher: the student at the end of the run (default), or
#: the EMA teacher itself. During the run the teacher is an EMA of the student either way.
TEACHER_MODES: tuple[str, ...] = ("copy-student", "ema")

#: The starting KoLeo-Proto weight. The paper's value could not be read; 0.1 is the weight DINOv2
#: gives its (feature-space) KoLeo term. On small synthetic collapsed heads it separates every
#: copy within 100-150 steps, the method's loss ending within about 10 % of a run without it.
#: Tune it: it is always recorded.
DEFAULT_KOLEO_WEIGHT: float = 0.1


def finetune(
    checkpoint_path: Path | str,
    features: Any,
    *,
    out: Path | str,
    koleo_weight: float = DEFAULT_KOLEO_WEIGHT,
    steps: int = 500,
    batch_size: int = 256,
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    device: str = "cpu",
    seed: int = 0,
    read: ReadOptions | None = None,
    head: str | None = None,
    teacher: str = "copy-student",
    teacher_temp: float = 0.04,
    student_temp: float = 0.1,
    teacher_momentum: float | None = None,
    center_momentum: float = 0.9,
    msn_temperature: float = 0.1,
    msn_sharpen: float = 0.25,
    memax_weight: float = 1.0,
    swav_temperature: float = 0.1,
    swav_epsilon: float = 0.05,
    sinkhorn_iterations: int = 3,
    augmentation: Augmentation | None = None,
    koleo_block_size: int | None = None,
    koleo_anchors: int | str | None = "auto",
    log_every: int = 50,
    on_log: Callable[[int, np.ndarray], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> FinetuneResult:
    """Fine-tune a checkpoint's prototype head (MLP and last layer) and write ``out``.

    The backbone is not touched: ``features`` are its outputs. The student head is trained on the
    method's objective plus ``koleo_weight`` * KoLeo-Proto on its prototypes; during the run the
    teacher head, which gives the targets, is an EMA of the student (momentum cosine
    ``teacher_momentum`` -> 1; by default a start suited to the run's length, see
    :func:`~collapse_probe.repair.loop.auto_teacher_momentum`). The written teacher, which
    ``audit`` reads, is the student at the end (``teacher="copy-student"``, the default: it
    carries the repair whenever the student does), or the EMA teacher (``teacher="ema"``: it
    lags; on ``dino-digits`` over 200 steps its unique count at eps 0.1 went 468 -> 509 while the
    student's went 324 -> 981). DINO-family formats use
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
        koleo_weight: lambda of KoLeo-Proto (:data:`DEFAULT_KOLEO_WEIGHT`); 0 for the method alone.
        steps, batch_size, lr, weight_decay: AdamW settings.
        device: ``cpu`` or ``cuda`` (``cuda`` under torchrun means ``cuda:LOCAL_RANK``).
        seed: seeds batch order, augmentation and KoLeo's jitter.
        read: the checkpoint's format (detected when None) and trust; both networks are read,
            so its network and key do not apply.
        head: which head (default: the format's main head, every set of SwAV prototypes; see
            :func:`collapse_probe.heads.rebuild_head`).
        teacher: ``copy-student`` (default) or ``ema``: what the written teacher is.
        teacher_momentum: start of the EMA momentum; None picks one suited to ``steps``.
        teacher_temp, student_temp, center_momentum: DINO loss settings.
        msn_temperature, msn_sharpen, memax_weight: MSN loss settings.
        swav_temperature, swav_epsilon, sinkhorn_iterations: SwAV loss settings (0.1, 0.05, 3).
        koleo_block_size: passed to KoLeo-Proto (memory of the neighbour search).
        koleo_anchors: ``"auto"`` (default): exact KoLeo-Proto unless the exact neighbour search
            would cost more than the rest of the step, then a sampled estimate on as many
            anchors as fit that cost (:func:`choose_koleo_anchors`); None or 0: exact; N:
            N random anchors per step. The choice is recorded in the result's settings.
        log_every: log (and call ``on_log(step, curve_so_far)``) every this many steps.
        on_step: called with the step index after every step (e.g. a progress bar).

    Returns:
        FinetuneResult with utilization before/after (eps 0.025 and 0.1) of both networks and
        the loss curve.

    Raises:
        InputError: bad features, settings, ``out`` equal to the input, unsupported format.
        CheckpointError: unreadable checkpoint or head.
    """
    import torch

    from ..checkpoints import load_state, network_state, read_checkpoint
    from .loop import auto_teacher_momentum, copy_student, distributed_from_env, freeze_unit_gains, train_heads

    source = Path(checkpoint_path)
    target = Path(out)
    _check_paths(source, target)
    if teacher not in TEACHER_MODES:
        raise fail("teacher", expected=" or ".join(repr(m) for m in TEACHER_MODES), got=repr(teacher))
    momentum_given = teacher_momentum is not None
    if teacher_momentum is None:
        teacher_momentum = auto_teacher_momentum(steps if isinstance(steps, int) else 1)
    settings = _check_settings(koleo_weight=koleo_weight, steps=steps, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay, teacher_momentum=teacher_momentum,
                               log_every=log_every)
    _check_anchors(koleo_anchors)
    augmentation = augmentation or Augmentation()
    array = load_features(features)
    torch_device = _device(device)

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
    obj = load_state(source, trust=read.trust)
    objective_name = family(fmt).objective
    teacher_state, student_state = _network_states(obj, fmt, network_state)
    one_network = family(fmt).one_network  # SwAV trains one network: no teacher, no EMA

    from ..heads import rebuild_head

    head_names = _swav_heads(checkpoint, head) if objective_name == "swav" else [head]

    def build(state: Mapping[str, Any]) -> Any:
        if objective_name == "swav":
            from ..heads.model import HeadSet

            return HeadSet([rebuild_head(state, format=fmt, head=name) for name in head_names])
        return rebuild_head(state, format=fmt, head=head, temperature=msn_temperature)

    teacher_head = build(teacher_state)
    # Without a student in the file, it starts as a copy of the teacher (rebuilt, not deep-copied:
    # old weight-norm modules cannot be deep-copied).
    student = teacher_head if one_network else build(student_state if student_state is not None else teacher_state)
    if objective_name == "msn":
        student.prototype_matrix = teacher_head.prototype_matrix  # one set, trained by gradient
    _check_dims(teacher_head, student, array)
    frozen_gain = freeze_unit_gains(student)
    names = ("model",) if one_network else ("teacher", "student")

    before = {names[0]: _unique(teacher_head)}
    if not one_network:
        before["student"] = _unique(student)

    dist = distributed_from_env(torch_device)
    if dist.active and torch_device.type == "cuda":
        torch_device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.rank)))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 7919 * dist.rank)
    shard = np.arange(dist.rank, array.shape[0], dist.world_size) if dist.active else None
    views = FeatureViews(array, augmentation=augmentation, indices=shard, generator=generator,
                         device=torch_device)
    student.to(torch_device)
    teacher_head.to(torch_device)
    num_views = array.shape[1] if array.ndim == 3 else augmentation.num_views
    anchors, anchor_choice = choose_koleo_anchors(
        koleo_anchors, student, rows_per_step=min(batch_size, int(views.data.shape[0])) * num_views,
        one_network=one_network)
    if objective_name == "msn":
        from .objectives import MsnObjective

        objective: Any = MsnObjective(sharpen=msn_sharpen, memax_weight=memax_weight)
    elif objective_name == "swav":
        from .objectives import SwavObjective

        objective = SwavObjective(temperature=swav_temperature, epsilon=swav_epsilon,
                                  iterations=sinkhorn_iterations, sizes=student.sizes)
        objective.after_step = _normalise_prototypes  # type: ignore[attr-defined]
    else:
        from .objectives import DinoObjective

        center = checkpoint.extras.get("center")
        if center is not None and center.shape[-1] != teacher_head.num_prototypes:
            center = None
        objective = DinoObjective(None if center is None else torch.from_numpy(np.asarray(center)),
                                  num_prototypes=teacher_head.num_prototypes, teacher_temp=teacher_temp,
                                  student_temp=student_temp, center_momentum=center_momentum,
                                  device=torch_device)
    koleo_generator = torch.Generator().manual_seed(seed + 1)
    curve = train_heads(student, teacher_head, objective, views, settings, dist=dist,
                        koleo_options={"block_size": koleo_block_size, "num_anchors": anchors,
                                       "generator": koleo_generator},
                        on_log=on_log if dist.rank == 0 else None,
                        on_step=on_step if dist.rank == 0 else None)
    if teacher == "copy-student" and not one_network:
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
        "koleo_weight": koleo_weight, "steps": steps, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "device": str(torch_device.type), "seed": seed,
        "world_size": dist.world_size, "teacher": None if one_network else teacher,
        "teacher_momentum": None if one_network else teacher_momentum,
        "teacher_momentum_choice": None if one_network else ("set" if momentum_given else "auto"),
        "frozen_unit_gain": frozen_gain, "feature_shape": list(array.shape),
        "augmentation": None if array.ndim == 3 else {
            "num_views": augmentation.num_views, "noise_std": augmentation.noise_std,
            "feature_drop": augmentation.feature_drop},
        "koleo_block_size": koleo_block_size, "koleo_anchors": anchors,
        "koleo_search": "exact" if anchors is None else "sampled", "koleo_anchors_choice": anchor_choice,
    }
    if objective_name == "msn":
        run_settings |= {"temperature": msn_temperature, "sharpen": msn_sharpen, "memax_weight": memax_weight}
    elif objective_name == "swav":
        run_settings |= {"temperature": swav_temperature, "epsilon": swav_epsilon,
                         "sinkhorn_iterations": sinkhorn_iterations, "heads": list(head_names),
                         "prototypes_per_head": student.sizes}
    else:
        run_settings |= {"teacher_temp": teacher_temp, "student_temp": student_temp,
                         "center_momentum": center_momentum,
                         "center_from_checkpoint": checkpoint.extras.get("center") is not None}
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


def _check_anchors(value: Any) -> None:
    if value is None or value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail("koleo_anchors", expected="'auto', None, 0 (exact) or a positive number of anchors",
                   got=repr(value))


def _swav_heads(checkpoint: Any, head: str | None) -> list[str]:
    names = [h.name for h in checkpoint.heads]
    if head is not None:
        if head not in names:
            raise InputError(f"{option('head', head)}: this SwAV checkpoint has {', '.join(names)}.")
        return [head]
    return names


def _normalise_prototypes(head: Any) -> None:
    # SwAV keeps unit prototypes: every step starts from normalised rows (main_swav.py)
    import torch

    with torch.no_grad():
        for layer in head.prototype_layers():
            layer.weight.copy_(torch.nn.functional.normalize(layer.weight, dim=1, p=2))


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


def _check_settings(**values: Any) -> Any:
    from .loop import LoopSettings

    if not (np.isfinite(values["koleo_weight"]) and values["koleo_weight"] >= 0):
        raise fail("koleo_weight", expected="a finite number >= 0", got=repr(values["koleo_weight"]))
    for name in ("steps", "batch_size", "log_every"):
        if not (isinstance(values[name], int) and values[name] >= 1):
            raise fail(name, expected="a positive integer", got=repr(values[name]))
    if not (np.isfinite(values["lr"]) and values["lr"] > 0):
        raise fail("lr", expected="a positive learning rate", got=repr(values["lr"]))
    if not values["weight_decay"] >= 0:
        raise fail("weight_decay", expected="a number >= 0", got=repr(values["weight_decay"]))
    if not 0 <= values["teacher_momentum"] <= 1:
        raise fail("teacher_momentum", expected="a momentum in [0, 1]", got=repr(values["teacher_momentum"]))
    return LoopSettings(**values)


def _device(name: str) -> Any:
    import torch

    if name not in ("cpu", "cuda"):
        raise fail("device", expected="'cpu' or 'cuda'", got=repr(name))
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
    if fmt == "ibot" and head.spec.last_prefix == "head.last_layer":
        # a shared iBOT head saved as two equal tensors: keep them equal
        for key, tensor in new.items():
            twin = key.replace("head.last_layer.", "head.last_layer2.", 1)
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
