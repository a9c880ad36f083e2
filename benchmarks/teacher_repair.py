"""Does the repair reach the teacher? Fine-tune the bundled ``dino-digits`` checkpoint and print
unique prototypes before/after for both networks, for each way of writing the teacher.

Features: the checkpoint's own teacher backbone on two global crops (``MultiCrop`` defaults,
seed 0) of the 1257 training digits, (1257, 2, 128). Each variant runs ``finetune`` with
``--steps`` (200), batch 256, lr 1e-4, KoLeo-Proto weight 0.1, seed 0:

* ``copy-student``: the default; the written teacher is the student at the end;
* ``ema``: the run's EMA teacher, momentum from 1 - 6/steps (the default schedule) to 1;
* ``ema 0.996``: the EMA teacher with DINO's fixed 0.996 start.

    .venv/bin/python benchmarks/teacher_repair.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from collapse_probe import TeacherSettings, TrainSettings, finetune  # noqa: E402
from collapse_probe.checkpoints import load_state  # noqa: E402
from collapse_probe.demo.augment import MultiCrop  # noqa: E402
from collapse_probe.demo.data import load_digits_split  # noqa: E402
from collapse_probe.demo.model import build_net  # noqa: E402
from collapse_probe.sources import resolve_source  # noqa: E402


def digits_views(checkpoint: Path, seed: int = 0) -> np.ndarray:
    net = build_net(1024)
    net.load_state_dict(load_state(checkpoint)["teacher"])
    net.eval()
    images = torch.from_numpy(np.asarray(load_digits_split(seed=0).train_images, np.float32))
    crops, gen = MultiCrop(), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        views = [net.backbone(crops.crops(images, scale=crops.global_scale, generator=gen)).numpy()
                 for _ in range(2)]
    return np.stack(views, axis=1).astype(np.float32)  # (N, 2, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    checkpoint = Path(resolve_source("dino-digits"))
    features = digits_views(checkpoint)
    variants = {"copy-student": TeacherSettings(), "ema": TeacherSettings(written="ema"),
                "ema 0.996": TeacherSettings(written="ema", momentum=0.996)}
    print(f"{'teacher':>13} {'network':>8} {'eps 0.025':>14} {'eps 0.1':>14}")
    with tempfile.TemporaryDirectory() as folder:
        for name, teacher in variants.items():
            result = finetune(checkpoint, features, out=Path(folder) / "repaired.pth", teacher=teacher,
                              train=TrainSettings(steps=args.steps, batch_size=256, lr=1e-4, seed=0))
            for network in ("teacher", "student"):
                cells = [f"{result.unique_before[network][e]:>5} -> {result.unique_after[network][e]:<5}"
                         for e in (0.025, 0.1)]
                print(f"{name:>13} {network:>8} {cells[0]:>14} {cells[1]:>14}", flush=True)


if __name__ == "__main__":
    main()
