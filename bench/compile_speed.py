"""Training-step speed with and without `--compile` (docs/gpu.md#compile).

    python bench/compile_speed.py [--device cpu|cuda] [--steps 10]

Fixed set: the BYOV method with the default sizes of utils/config.py (3 encoder / 1 decoder
layers, 768 -> 256, 16 heads) on T = 32 clips of merged features (random, batch 4 pairs), i.e. a
step from the merged feature cache: what `--compile` compiles (the trainable `model`) is all the
step runs. Both paths build the same seeded model; `byov.compiling.compile_trainable` (inductor)
compiles one of them. One step's forward/backward/Adam per timing; the first --warmup (3) steps
of each path are untimed (compilation happens there, its seconds are printed), then --steps
steps of each path, interleaved. Medians are compared. Last line: `compile_speedup: X`,
X = eager median step time / compiled median step time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from byov.compiling import compile_trainable  # noqa: E402
from byov.training.engine import optimizer_step  # noqa: E402
from byov.methods.byov_method import ByovMethod  # noqa: E402
from byov.models.byov import BYOV  # noqa: E402


def make(device, compiled: bool):
    torch.manual_seed(0)
    model = BYOV(in_dim=768, embed_dim=256, dec_dim=256, depth=3, depth_dec=1, n_heads=16,
                 num_frames=32)
    method = ByovMethod(torch.nn.Identity(), model, 59, None, num_frames=32).to(device).train()
    if compiled:
        compile_trainable(method)
    return method, torch.optim.Adam(method.trainable_parameters(), lr=1e-5)


def step(method, opt, batch, i, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = method(batch, (0, 0, i, 0))
    optimizer_step(out["loss"], opt)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads; BYOV 3+1 "
          f"layers, T 32, batch 4, merged features, fp32")
    batch = {"inputs": torch.randn(4, 2, 32, 768, generator=torch.Generator().manual_seed(0))
             .to(device)}
    paths = {name: make(device, name == "compiled") for name in ("eager", "compiled")}
    for name, (method, opt) in paths.items():
        t0 = time.perf_counter()
        for i in range(args.warmup):
            step(method, opt, batch, i, device)
        print(f"{name}: warm-up ({args.warmup} steps, compilation included) "
              f"{time.perf_counter() - t0:.1f} s")
    times = {name: [] for name in paths}
    for i in range(args.steps):
        for name, (method, opt) in paths.items():
            times[name].append(step(method, opt, batch, args.warmup + i, device))
    med = {name: float(np.median(t)) for name, t in times.items()}
    for name, t in med.items():
        print(f"{name}: median step {t * 1000:.1f} ms over {args.steps} steps")
    print(f"compile_speedup: {med['eager'] / med['compiled']:.3f}")
    return med["eager"] / med["compiled"]


if __name__ == "__main__":
    main()
