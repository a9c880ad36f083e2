"""Cost of one PrototypeMonitor record next to one DINO head training step, on the CPU.

The step: a DINO head (MLP in -> 2048 -> 2048 -> 256, GELU, weight-norm last layer 256 -> K) on a
batch of student and teacher features, DINO's cross-entropy between the centred, sharpened
teacher softmax and the student softmax, backward, and an SGD step. The monitor record: exact
duplicate count at eps 0.025, the KoLeo value and the teacher statistics of the batch.

Three heads: ``healthy`` (K random directions), ``collapsed`` (K prototypes in ``--groups``
equal groups of near-copies: about 1000 unique of 65536) and ``zipf``, the realistic collapsed
head of ``bench_koleo.py`` (one giant group of near-copies 1e-3 apart, 20000 at K = 65536,
3000 at 16384, K / 5 otherwise, the others Zipf-sized, as released DINO heads).

    python benchmarks/bench_monitor.py                      # K = 65536, D = 256, batch 64
    python benchmarks/bench_monitor.py --num-prototypes 8192 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_koleo import giant_size, load_average, zipf_head  # noqa: E402

from collapse_probe import PrototypeMonitor, deduplicate
from collapse_probe.koleo import koleo_proto_loss


def dino_head(in_dim: int, hidden: int, bottleneck: int, num_prototypes: int) -> torch.nn.Module:
    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = torch.nn.Sequential(
                torch.nn.Linear(in_dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden),
                torch.nn.GELU(), torch.nn.Linear(hidden, bottleneck))
            self.last_layer = torch.nn.utils.parametrizations.weight_norm(
                torch.nn.Linear(bottleneck, num_prototypes, bias=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.last_layer(torch.nn.functional.normalize(self.mlp(x), dim=-1))

    return Head()


def head_step(student: torch.nn.Module, teacher: torch.nn.Module, opt: torch.optim.Optimizer,
              feats_s: torch.Tensor, feats_t: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        t_logits = teacher(feats_t)
        t = torch.softmax((t_logits - center) / 0.04, dim=-1)
    s = torch.log_softmax(student(feats_s) / 0.1, dim=-1)
    loss = -(t * s).sum(dim=-1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return t_logits


def planted(num: int, dim: int, groups: int | None, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if groups is None:
        return torch.randn(num, dim, generator=gen)
    centres = torch.nn.functional.normalize(torch.randn(groups, dim, generator=gen), dim=1)
    owner = torch.randint(0, groups, (num,), generator=gen)
    owner[:groups] = torch.arange(groups)
    return centres[owner] + 1e-4 * torch.randn(num, dim, generator=gen) / dim ** 0.5


def best_of(repeats: int, fn) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-prototypes", type=int, default=65536)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--in-dim", type=int, default=384, help="backbone width (ViT-S: 384)")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--groups", type=int, default=1000, help="groups of the collapsed head")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--koleo-anchors", type=int, default=4096, help="the sampled-KoLeo variant")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = parser.parse_args()
    torch.manual_seed(0)
    k, d = args.num_prototypes, args.dim

    student = dino_head(args.in_dim, args.hidden, d, k)
    teacher = dino_head(args.in_dim, args.hidden, d, k).requires_grad_(False)
    opt = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    feats_s = torch.randn(args.batch, args.in_dim)
    feats_t = torch.randn(args.batch, args.in_dim)
    center = torch.zeros(1, k)
    head_step(student, teacher, opt, feats_s, feats_t, center)  # warm-up
    step_s = best_of(max(3, args.repeats), lambda: head_step(student, teacher, opt, feats_s, feats_t, center))
    t_logits = head_step(student, teacher, opt, feats_s, feats_t, center)
    if not args.json:
        print(f"K={k} D={d} batch={args.batch} threads={torch.get_num_threads()} load average {load_average()}")
        print(f"DINO head step (forward teacher+student, loss, backward, SGD): {step_s * 1e3:.1f} ms", flush=True)

    results: dict[str, object] = {
        "K": k, "D": d, "batch": args.batch, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "head_step_s": step_s, "heads": {}}
    for name, groups in (("healthy", None), ("collapsed", args.groups), ("zipf", None)):
        weights = zipf_head(k, d, giant_size(k, None)) if name == "zipf" else planted(k, d, groups)
        host = weights.numpy()
        dedup_s = best_of(args.repeats, lambda: deduplicate(host, eps=0.025))
        with torch.no_grad():
            koleo_s = best_of(args.repeats, lambda: koleo_proto_loss(weights, jitter=0.0))
        monitor = PrototypeMonitor(utilization_floor=None)
        record_s = best_of(args.repeats, lambda: monitor.update(0, weights, teacher_logits=t_logits))
        record = monitor.records[-1]
        sampled = PrototypeMonitor(utilization_floor=None, koleo_anchors=args.koleo_anchors)
        sampled_s = best_of(args.repeats, lambda: sampled.update(0, weights, teacher_logits=t_logits))
        r = results["heads"][name] = {  # type: ignore[index]
            "unique": record["unique"], "dedup_s": dedup_s, "koleo_s": koleo_s,
            "monitor_update_s": record_s, "ratio_to_head_step": record_s / step_s,
            "overhead_every_1000_steps": record_s / (1000 * step_s),
            "sampled_update_s": sampled_s, "sampled_ratio_to_head_step": sampled_s / step_s}
        if not args.json:
            print(f"{name:9s} unique={r['unique']:6d}  dedup {r['dedup_s']:.2f} s  koleo {r['koleo_s']:.2f} s  "
                  f"monitor.update {r['monitor_update_s']:.2f} s = {r['ratio_to_head_step']:.0f} head steps "
                  f"({r['overhead_every_1000_steps']:.1%} overhead at every=1000); with koleo_anchors="
                  f"{args.koleo_anchors}: {sampled_s:.2f} s = {r['sampled_ratio_to_head_step']:.0f} head steps",
                  flush=True)
    results["load_average_end"] = load_average()
    if args.json:
        print(json.dumps(results))
    else:
        print(f"load average at the end {load_average()}")


if __name__ == "__main__":
    main()
