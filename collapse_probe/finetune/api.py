"""``finetune``: continue training a checkpoint's prototype head with its method's objective plus
KoLeo-Proto, on frozen-backbone features, and write a new checkpoint in the same layout."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError, UnsafeCheckpointError
from ..validation import fail
from .features import Augmentation, FeatureViews, load_features
from .result import UTILIZATION_EPS, FinetuneResult

__all__ = ["finetune", "SUPPORTED_FORMATS", "DEFAULT_KOLEO_WEIGHT"]

log = logging.getLogger(__name__)

#: Formats whose objective is implemented: the DINO loss, or MSN's.
SUPPORTED_FORMATS: tuple[str, ...] = ("dino", "ibot", "esvit", "dinov2", "dinov3", "lightly",
                                      "solo-learn", "msn")

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
    format: str | None = None,  # noqa: A002
    head: str | None = None,
    trust: bool = False,
    teacher_temp: float = 0.04,
    student_temp: float = 0.1,
    teacher_momentum: float = 0.996,
    center_momentum: float = 0.9,
    msn_temperature: float = 0.1,
    msn_sharpen: float = 0.25,
    memax_weight: float = 1.0,
    augmentation: Augmentation | None = None,
    koleo_block_size: int | None = None,
    koleo_anchors: int | None = None,
    log_every: int = 50,
    on_log: Callable[[int, np.ndarray], None] | None = None,
) -> FinetuneResult:
    """Fine-tune a checkpoint's prototype head (MLP and last layer) and write ``out``.

    The backbone is not touched: ``features`` are its outputs. The student head is trained on the
    method's objective plus ``koleo_weight`` * KoLeo-Proto on its prototypes; the teacher head is
    an EMA of the student (momentum cosine ``teacher_momentum`` -> 1). DINO-family formats use the
    DINO loss ([CLS] head only: iBOT's patch loss and EsViT's region loss need tokens; the
    center starts from ``dino_loss.center`` / ``ibot_loss.center`` when the file has one); MSN
    uses its prototype loss with mean-entropy maximisation (prototypes shared by both networks).
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
        format: checkpoint format; detected when None.
        head: which head (default: the format's main head; see :func:`collapse_probe.heads.rebuild_head`).
        trust: unpickle the checkpoint with full pickle (trusted files only).
        teacher_temp, student_temp, center_momentum: DINO loss settings.
        msn_temperature, msn_sharpen, memax_weight: MSN loss settings.
        koleo_block_size, koleo_anchors: passed to KoLeo-Proto (memory / sampled mode).
        log_every: log (and call ``on_log(step, curve_so_far)``) every this many steps.

    Returns:
        FinetuneResult with utilization before/after (eps 0.025 and 0.1) and the loss curve.

    Raises:
        InputError: bad features, settings, ``out`` equal to the input, unsupported format.
        CheckpointError: unreadable checkpoint or head.
    """
    import torch

    from ..checkpoints import load_state, network_state, read_checkpoint
    from .loop import distributed_from_env, freeze_unit_gains, train_heads

    source = Path(checkpoint_path)
    target = Path(out)
    _check_paths(source, target)
    settings = _check_settings(koleo_weight=koleo_weight, steps=steps, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay, teacher_momentum=teacher_momentum,
                               log_every=log_every)
    augmentation = augmentation or Augmentation()
    array = load_features(features)
    torch_device = _device(device)

    checkpoint = read_checkpoint(source, format=format, trust=trust)
    if checkpoint.replaced:
        # Placeholders cannot be written back as the objects they replaced.
        raise UnsafeCheckpointError(
            f"{source} holds pickled classes that were not loaded "
            f"({', '.join(checkpoint.replaced)}); fine-tuning writes every entry back, which "
            "it cannot do for them. Pass --trust-checkpoint only if you trust the file's "
            "source (full unpickling runs any code it holds).")
    fmt = checkpoint.format
    if fmt not in SUPPORTED_FORMATS:
        raise InputError(f"fine-tuning {fmt} checkpoints is not supported (its objective is not "
                         f"implemented): supported formats are {', '.join(SUPPORTED_FORMATS)}.")
    obj = load_state(source, trust=trust)
    teacher_state, student_state = _network_states(obj, fmt, network_state)

    from ..heads import rebuild_head

    def build(state: Mapping[str, Any]) -> Any:
        return rebuild_head(state, format=fmt, head=head, temperature=msn_temperature)

    teacher = build(teacher_state)
    # Without a student in the file, it starts as a copy of the teacher (rebuilt, not deep-copied:
    # old weight-norm modules cannot be deep-copied).
    student = build(student_state if student_state is not None else teacher_state)
    if fmt == "msn":
        student.prototype_matrix = teacher.prototype_matrix  # one set, trained by gradient
    _check_dims(teacher, student, array)
    frozen_gain = freeze_unit_gains(student)

    before = {"teacher": _unique(teacher)}
    if student_state is not None:
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
    teacher.to(torch_device)
    if fmt == "msn":
        from .objectives import MsnObjective

        objective: Any = MsnObjective(sharpen=msn_sharpen, memax_weight=memax_weight)
    else:
        from .objectives import DinoObjective

        center = checkpoint.extras.get("center")
        if center is not None and center.shape[-1] != teacher.num_prototypes:
            center = None
        objective = DinoObjective(None if center is None else torch.from_numpy(np.asarray(center)),
                                  num_prototypes=teacher.num_prototypes, teacher_temp=teacher_temp,
                                  student_temp=student_temp, center_momentum=center_momentum,
                                  device=torch_device)
    koleo_generator = torch.Generator().manual_seed(seed + 1)
    curve = train_heads(student, teacher, objective, views, settings, dist=dist,
                        koleo_options={"block_size": koleo_block_size, "num_anchors": koleo_anchors,
                                       "generator": koleo_generator},
                        on_log=on_log if dist.rank == 0 else None)
    student.cpu()
    teacher.cpu()
    after = {"teacher": _unique(teacher)}
    if student_state is not None:
        after["student"] = _unique(student)

    networks = ("teacher",) if student_state is None else ("teacher", "student")
    written: list[str] = []
    if dist.rank == 0:
        from .writer import replace_tensors, save_checkpoint

        pairs = _replacements(teacher, teacher_state, fmt)
        if student_state is not None:
            pairs += _replacements(student, student_state, fmt)
        from ..checkpoints.sniff import sniff

        written = replace_tensors(obj, _unique_pairs(pairs))
        save_checkpoint(obj, target, legacy=sniff(source) == "torch-legacy")
    if dist.active:
        import torch.distributed as tdist

        tdist.barrier()

    run_settings = {
        "koleo_weight": koleo_weight, "steps": steps, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "device": str(torch_device.type), "seed": seed,
        "world_size": dist.world_size, "teacher_momentum": teacher_momentum,
        "frozen_unit_gain": frozen_gain, "feature_shape": list(array.shape),
        "augmentation": None if array.ndim == 3 else {
            "num_views": augmentation.num_views, "noise_std": augmentation.noise_std,
            "feature_drop": augmentation.feature_drop},
        "koleo_block_size": koleo_block_size, "koleo_anchors": koleo_anchors,
    }
    if fmt == "msn":
        run_settings |= {"temperature": msn_temperature, "sharpen": msn_sharpen, "memax_weight": memax_weight}
    else:
        run_settings |= {"teacher_temp": teacher_temp, "student_temp": student_temp,
                         "center_momentum": center_momentum,
                         "center_from_checkpoint": checkpoint.extras.get("center") is not None}
    return FinetuneResult(
        checkpoint=source, out=target if dist.rank == 0 else None, format=fmt,
        head=teacher.spec.name, objective="msn" if fmt == "msn" else "dino",
        num_prototypes=teacher.num_prototypes, networks=networks, settings=run_settings,
        unique_before=before, unique_after=after, loss=curve, written_keys=tuple(written))


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
        raise InputError(f"--out {target} is the input checkpoint: write the fine-tuned "
                         "checkpoint to a new file (the input is never overwritten).")
    if target.is_dir():
        raise InputError(f"--out {target} is a directory: name a file, e.g. {target / 'finetuned.pth'}.")


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
        raise InputError("--device cuda was asked for but no CUDA device is available: use --device cpu.")
    return torch.device(name)


def _network_states(obj: Mapping[str, Any], fmt: str, network_state: Callable[..., dict]) -> tuple[dict, dict | None]:
    teacher = network_state(obj, format=fmt, network="teacher")
    try:
        student: dict | None = network_state(obj, format=fmt, network="student")
    except CheckpointError:
        student = None
    if fmt == "msn":
        prototypes = obj.get("prototypes")
        teacher = {**teacher, "prototypes": prototypes}
        if student is not None:
            student = {**student, "prototypes": prototypes}
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
    from ..dedup import sweep
    from ..types import PrototypeSet

    matrix = head.prototypes().detach().cpu().float().numpy()
    results = sweep(PrototypeSet.from_array(matrix, name=head.spec.name), eps=UTILIZATION_EPS)
    return {r.eps: r.unique for r in results}


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
