"""Time fine-tuning steps of a DINO head on the CPU: healthy and collapsed prototypes.

One step is what ``collapse-probe finetune`` runs per step (``collapse_probe.repair.loop``): a
batch of V views of B frozen-backbone features through the student head (MLP in -> 2048 -> 2048
-> 256, GELU, weight-norm last layer 256 -> K) and the teacher head, DINO's loss (centering,
sharpening, cross-entropy between views), KoLeo-Proto on the student's prototypes, backward,
AdamW, the teacher EMA. KoLeo-Proto is exact or sampled as ``finetune`` chooses by default
(``koleo_anchors="auto"``), and exact for comparison (``--exact`` adds that column).

Heads: ``healthy`` (random directions) and ``zipf`` (the realistic collapsed head of
``bench_koleo.py``: one giant group, 3000 near-copies at K = 16384, 20000 at 65536, K / 5
otherwise, the rest in Zipf-sized groups 1e-3 apart).

    .venv/bin/python benchmarks/bench_finetune.py                       # K = 8192 and 65536
    .venv/bin/python benchmarks/bench_finetune.py --sizes 8192 --steps 5 --exact
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_koleo import giant_size, load_average, zipf_head  # noqa: E402

from collapse_probe.repair.api import choose_koleo_anchors  # noqa: E402
from collapse_probe.repair.features import Augmentation, FeatureViews  # noqa: E402
from collapse_probe.repair.loop import Distributed, auto_teacher_momentum, train_heads  # noqa: E402
from collapse_probe.repair.objectives import DinoObjective  # noqa: E402
from collapse_probe.repair.settings import TrainSettings  # noqa: E402
from collapse_probe.heads import rebuild_head  # noqa: E402


def dino_state(prototypes: torch.Tensor, *, in_dim: int, hidden: int, seed: int) -> dict[str, torch.Tensor]:
    """A DINO network state (``head.mlp.0/2/4``, weight-norm ``head.last_layer``)."""
    gen = torch.Generator().manual_seed(seed)
    dims = [(hidden, in_dim), (hidden, hidden), (prototypes.shape[1], hidden)]
    state: dict[str, torch.Tensor] = {}
    for index, (out_dim, inp) in zip((0, 2, 4), dims):
        state[f"head.mlp.{index}.weight"] = torch.randn(out_dim, inp, generator=gen) / inp ** 0.5
        state[f"head.mlp.{index}.bias"] = torch.zeros(out_dim)
    state["head.last_layer.weight_g"] = torch.ones(prototypes.shape[0], 1)
    state["head.last_layer.weight_v"] = prototypes.clone()
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 65536])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--in-dim", type=int, default=384, help="backbone width (ViT-S: 384)")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256, help="finetune's default batch")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--exact", action="store_true", help="also time steps with exact KoLeo-Proto")
    parser.add_argument("--exact-max", type=int, default=16384,
                        help="largest K for --exact (one exact step at K = 65536 is minutes on 2 cores)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 keeps a loaded machine's ratios steadier")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, load average {load_average()}")
    features = torch.randn(4096, args.in_dim, generator=torch.Generator().manual_seed(3)).numpy()
    rows = []
    for num in args.sizes:
        for name in ("healthy", "zipf"):
            protos = (torch.randn(num, args.dim, generator=torch.Generator().manual_seed(1)) if name == "healthy"
                      else zipf_head(num, args.dim, giant_size(num, None)))
            state = dino_state(protos, in_dim=args.in_dim, hidden=args.hidden, seed=2)
            student = rebuild_head(state, format="dino")
            student.last_layer.weight_g.requires_grad_(False)  # norm_last_layer=True, as finetune does
            teacher = rebuild_head(state, format="dino")
            views = FeatureViews(features, augmentation=Augmentation(), indices=None,
                                 generator=torch.Generator().manual_seed(0), device="cpu")
            auto, _ = choose_koleo_anchors("auto", student, rows_per_step=args.batch * 2)
            exact = args.exact and auto is not None and num <= args.exact_max
            modes = {"auto": auto} | ({"exact": None} if exact else {})
            for mode, anchors in modes.items():
                settings = TrainSettings(steps=args.steps + 1, batch_size=args.batch, lr=1e-4, weight_decay=0.0,
                                         log_every=10 ** 9)
                objective = DinoObjective(None, num_prototypes=num)
                stamps: list[float] = []
                train_heads(student, teacher, objective, views, settings, koleo_weight=0.1,
                            teacher_momentum=auto_teacher_momentum(args.steps + 1), dist=Distributed(),
                            koleo_options={"num_anchors": anchors, "generator": torch.Generator().manual_seed(1)},
                            on_step=lambda step: stamps.append(time.perf_counter()))
                per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)  # the first step is the warm-up
                label = "exact" if anchors is None else f"{anchors} anchors"
                rows.append({"K": num, "head": name, "koleo": label, "mode": mode, "seconds_per_step": per_step,
                             "batch": args.batch, "views": 2, "load": load_average()})
                print(f"K={num:>6} {name:>8} KoLeo {label:>14} ({mode}): {per_step:7.2f} s/step", flush=True)
    print(f"load average at the end {load_average()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
