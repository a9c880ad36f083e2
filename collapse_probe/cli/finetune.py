"""``collapse-probe finetune``: repair a collapsed head with the method's objective plus
KoLeo-Proto on frozen-backbone features; writes a new checkpoint in the same layout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..repair.settings import DEFAULT_KOLEO_WEIGHT
from .common import (atomic_write, progress_bar, refuse_overwriting_sources, run_command,
                     stderr_console, stdout_console)
from .options import Format, Trust, read_options
from .render import render_finetune

__all__ = ["register"]

_BARS = "▁▂▃▄▅▆▇█"


def finetune_command(
    checkpoint: Annotated[str, typer.Argument(
        metavar="CKPT", help="The checkpoint to repair (never modified): a file, zoo name or "
        "bundled example name.")],
    features: Annotated[Path, typer.Option(
        "--features", help="Backbone features .npy: (N, V, d) with V >= 2 views, or (N, d) "
                           "(feature-space augmentation: Gaussian noise + feature dropout).")],
    out: Annotated[Path, typer.Option("--out", help="The new checkpoint (same layout as the input).")],
    koleo_weight: Annotated[float, typer.Option(
        "--koleo-weight", help="Lambda of KoLeo-Proto (0: the method's loss alone).")] = DEFAULT_KOLEO_WEIGHT,
    steps: Annotated[int, typer.Option("--steps", help="Optimisation steps.")] = 500,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per step (per process).")] = 256,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 1e-4,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    json_out: Annotated[Optional[str], typer.Option(
        "--json", metavar="FILE|-", help="Write the numbers as JSON to FILE, or - for stdout.")] = None,
    checkpoint_format: Format = None,
    head: Annotated[Optional[str], typer.Option(
        "--head", help="Which head (default: the format's main head, e.g. head, dino_head).")] = None,
    teacher: Annotated[str, typer.Option(
        "--teacher", help="What the written teacher is: copy-student (the student at the end, so "
                          "it carries the repair) or ema (the EMA teacher of the run, which lags).")] = "copy-student",
    teacher_momentum: Annotated[Optional[float], typer.Option(
        "--teacher-momentum", help="Start of the teacher EMA momentum (cosine to 1); default: "
                                   "1 - 6/steps, at most 0.996, so the teacher follows the repair.")] = None,
    teacher_temp: Annotated[float, typer.Option("--teacher-temp", help="DINO teacher temperature.")] = 0.04,
    koleo_anchors: Annotated[Optional[int], typer.Option(
        "--koleo-anchors", help="KoLeo-Proto on this many random anchors per step (unbiased); 0: "
                                "exact over all K. Default: exact unless the exact neighbour search "
                                "would cost more than the rest of the step.")] = None,
    log_every: Annotated[int, typer.Option("--log-every", help="Print the losses every N steps.")] = 50,
    trust_checkpoint: Trust = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-step lines.")] = False,
) -> None:
    """Continue training a checkpoint's prototype head with its objective plus KoLeo-Proto."""
    # Under torchrun only rank 0 talks.
    rank0 = int(os.environ.get("RANK", "0")) == 0

    def body() -> None:
        from ..repair import (
            DinoSettings,
            KoLeoSettings,
            TeacherSettings,
            TrainSettings,
            finetune,
        )
        from ..sources import resolve_source

        refuse_overwriting_sources({"--out": out, "--json": json_out}, [checkpoint],
                                   inputs=[("--features", features)])
        path = resolve_source(checkpoint)
        console = stderr_console() if json_out == "-" else stdout_console()

        def on_log(step: int, curve) -> None:  # noqa: ANN001 - numpy array
            if quiet or not rank0:
                return
            total, method, koleo = curve[-1]
            console.print(f"step {step + 1:>6}/{steps}  loss {total:9.4f}  method {method:9.4f}  "
                          f"koleo {koleo:9.4f}", highlight=False, soft_wrap=True)

        train = TrainSettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
                              log_every=log_every)
        koleo = KoLeoSettings(weight=koleo_weight, anchors="auto" if koleo_anchors is None else koleo_anchors)
        written = TeacherSettings(written=teacher, momentum=teacher_momentum)
        # --teacher-temp is the one objective flag (DINO's); left at its default, every family
        # gets its own objective's defaults
        dino = DinoSettings(teacher_temp=teacher_temp)
        objective = None if dino == DinoSettings() else dino
        with progress_bar("fine-tuning", total=steps, rate_unit="steps",
                          quiet=quiet or not rank0) as update:
            result = finetune(path, features, out=out,
                              read=read_options(checkpoint_format=checkpoint_format,
                                                network="teacher", key=None, trust=trust_checkpoint),
                              head=head, train=train, koleo=koleo, teacher=written, objective=objective,
                              on_log=on_log, on_step=None if update is None else lambda step: update(step + 1))
        if not rank0:
            return
        for renderable in render_finetune(result):
            console.print(renderable, soft_wrap=True)
        if json_out is not None:
            atomic_write(json_out, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_command)
