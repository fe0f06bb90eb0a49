"""Speed of byov's AE2 objectives (forward + backward) against the released code's timings.

    python bench/loss_speed.py [--device cpu|cuda] [--repeats 3]

B = 4 pairs, T = 32 steps, D = 128, embeddings N(0, 0.3^2), one CPU thread
(torch.set_num_threads(1)); the median of `--repeats` timed runs after one warm-up run. One line
per objective, `<name>_seconds: X` (wall), then the released code's time for the same setting
(measured the same way, torch 2.14.1 on one thread of a shared AMD EPYC core; its soft-DTW
clones the whole table once per cell), the speedup, and the calling thread's CPU time (on a busy
machine, wall time also counts the time spent waiting for a core). dtw_contrastive runs with
break_eggs' settings (S = 30, not cyclic); dtw_contrastive_pour_liquid with pour_liquid's
(S = 16, cyclic, ratio 2). vava runs at global_step 12345.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from byov.ae2.losses import alignment_loss  # noqa: E402

B, T, D = 4, 32, 128
RELEASED_SECONDS = {"tcc": 0.005, "dtw": 1.56, "dtw_consistency": 4.17, "dtw_contrastive": 5.13,
                    "dtw_contrastive_pour_liquid": 2.01, "vava": 1.19}
SETTINGS = {
    "tcc": ("tcc", {}),
    "dtw": ("dtw", {}),
    "dtw_consistency": ("dtw_consistency", {}),
    "dtw_contrastive": ("dtw_contrastive", {"S": 30, "cyclic": False, "dtw_ratio": 1.0}),
    "dtw_contrastive_pour_liquid": ("dtw_contrastive", {"S": 16, "cyclic": True, "dtw_ratio": 2.0}),
    "vava": ("vava", {"global_step": 12345}),
}


def inputs(S: int, device: str, g: torch.Generator) -> dict:
    emb = torch.randn(B, 2, T, D, generator=g) * 0.3
    seq_lens = torch.randint(40, 400, (B, 2), generator=g)
    steps = torch.stack([torch.sort(torch.randperm(int(n) - 1, generator=g)[:T] + 1)[0]
                         for n in seq_lens.reshape(-1)]).view(B, 2, T)
    pos = torch.stack([torch.sort(torch.randperm(T, generator=g)[:S])[0]
                       for _ in range(2 * B)]).view(B, 2, S)
    return {"embeddings": emb.to(device), "steps": steps.to(device),
            "seq_lens": seq_lens.to(device), "pos_steps": pos.to(device)}


def time_objective(name: str, device: str, repeats: int) -> float:
    objective, cfg = SETTINGS[name]
    g = torch.Generator().manual_seed(0)
    x = inputs(cfg.get("S", 4), device, g)
    kw = {k: v for k, v in cfg.items() if k not in ("S", "global_step")}
    if cfg.get("cyclic"):
        kw["generator"] = torch.Generator().manual_seed(1)
    wall, cpu = [], []
    for r in range(repeats + 1):  # the first run warms up (caches, allocator) and is not timed
        emb = x["embeddings"].clone().requires_grad_(True)
        if device == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.thread_time()
        loss, _ = alignment_loss(objective, emb, x["steps"], x["seq_lens"], x["pos_steps"],
                                 cfg.get("global_step", 0), **kw)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if r:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name in SETTINGS:
        sec, cpu = time_objective(name, args.device, args.repeats)
        ref = RELEASED_SECONDS[name]
        print(f"{name}_seconds: {sec:.4f}  (released {ref:g} s, speedup {ref / sec:.1f}x; "
              f"this thread's CPU time {cpu:.4f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
