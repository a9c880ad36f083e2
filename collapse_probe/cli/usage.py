"""``collapse-probe usage``: which prototypes real data uses, or the center proxy without data."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .common import (
    atomic_write,
    progress_bar,
    refuse_overwriting_sources,
    run_command,
    stderr_console,
    stdout_console,
)
from .options import Format, Key, Network, NetworkOption, Space, Trust, read_options
from .render import render_usage

__all__ = ["register"]


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"




def usage_command(
    checkpoint: str = typer.Argument(..., metavar="CKPT",
                                     help="Checkpoint file, zoo name or bundled example name."),
    features: Optional[Path] = typer.Option(
        None, "--features", metavar="FILE",
        help="(N, d) features as .npy (memory-mapped). Without it: the center proxy."),
    space: Space = typer.Option(Space.backbone, "--space",
                                help="backbone: through the head MLP; bottleneck: used as they are."),
    eps: float = typer.Option(0.025, "--eps", help="Distance threshold of the duplicate groups."),
    head: Optional[str] = typer.Option(None, "--head", help="Head name; the first head by default."),
    temperature: float = typer.Option(0.04, "--temperature",
                                      help="Softmax temperature of the center proxy."),
    json_out: Optional[str] = typer.Option(None, "--json", metavar="FILE|-",
                                           help="Write the JSON report to FILE, or - for stdout."),
    checkpoint_format: Format = None,
    network: NetworkOption = Network.teacher,
    key: Key = None,
    trust_checkpoint: Trust = False,
    device: Device = typer.Option(Device.cpu, "--device",
                                  help="Where samples are scored: cpu, cuda, or auto (the GPU when present)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Which prototypes a data set actually uses (assignment by cosine), plain and merged over duplicates."""

    def body() -> None:
        import os

        from ..sources import resolve_source
        from ..usage import usage_from_checkpoint
        from ..usage.shards import leave_process_group

        refuse_overwriting_sources({"--json": json_out}, [checkpoint],
                                   inputs=[("--features", features)])
        # Under torchrun every rank scores its shard; only rank 0 talks and writes.
        rank0 = int(os.environ.get("RANK", "0")) == 0
        read = read_options(checkpoint_format=checkpoint_format, network=network, key=key,
                            trust=trust_checkpoint)
        path = resolve_source(checkpoint, cache_dir=read.cache_dir)
        err = stderr_console()
        with progress_bar("assigning samples", quiet=quiet or not rank0 or features is None) as update:
            report = usage_from_checkpoint(
                path, features, space=space.value, head=head, eps=eps, read=read,
                temperature=temperature, progress=update, device=device.value)
        try:
            if rank0:
                write(report, path, err)
        finally:
            leave_process_group()

    def write(report, path: Path, err) -> None:  # noqa: ANN001 - rich and the report type are lazy
        import json

        console = err if json_out == "-" else stdout_console()
        for renderable in render_usage(report, checkpoint=path.name if path == Path(checkpoint) else checkpoint):
            console.print(renderable)
        if json_out is not None:
            document = {"checkpoint": str(path), "features": None if features is None else str(features),
                        **report.to_dict()}
            atomic_write(json_out, json.dumps(document, indent=1) + "\n")

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("usage")(usage_command)
