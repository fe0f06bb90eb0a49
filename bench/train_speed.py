"""Training-step speed: on the fly (released) vs token cache vs merged cache
(docs/design.md#feature-cache).

    python bench/train_speed.py          # ~5 minutes on 2 CPU cores

Fixed set: a synthetic dataset of 4 train videos x 64 frames (128x128), generated into a temp
folder, h5 frame caches built up front (untimed, as `train.py` does). Backbone: a full-size
random-init CLIP ViT-B/16 (224x224, 196 tokens of 768-d), K = 59; BYOV with the released sizes (12
encoder / 4 decoder layers, 256-d, 16 heads). Clips of T = 32 frames and batch 1 pair (the released
ViT-B/16 runs, docs/released_code.md#training-configuration), fp32, num_workers 0, so every timed
step includes loading its batch, forward, backward and the Adam step. One untimed warm-up step per
path, then --fly_steps (3) steps on the fly and --cache_steps (20) steps from each cache,
interleaved in rounds, and each path's median step time (robust to bursts of load from other
processes on a shared machine: small ops suffer most when the cores are oversubscribed). The caches
(fp16, both kinds) are extracted once from the train split with the same backbone. Also printed:
cache bytes per frame, extraction frames/s and the fp16 token cache's deviation from on the fly on
one ego and one exo clip. Last line: `token_cache_speedup: X`, X = on-the-fly median step time /
token-cache median step time, both measured in this run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from byov.data.datasets import FrameSource, PairDataset  # noqa: E402
from byov.data.frame_cache import ensure_frame_cache, frame_cache_path  # noqa: E402
from byov.data.layout import list_videos  # noqa: E402
from byov.data.synthetic import generate  # noqa: E402
from byov.methods.byov_method import ByovMethod  # noqa: E402
from byov.features.cache import FeatureSource  # noqa: E402
from byov.features.extract import extract_videos  # noqa: E402
from byov.features.manifest import read_manifest  # noqa: E402
from byov.models.byov import BYOV  # noqa: E402
from byov.models.backbones import build_frame_encoder  # noqa: E402
from byov.models.stm import num_selected_tokens, selective_token_merge  # noqa: E402


def make_dataset(folder: str, videos: int, frames: int) -> tuple[str, list]:
    root = os.path.join(folder, "data")
    generate(os.path.join(root, "synthetic"), layout="csv", seed=0,
             videos_per_split=(videos, 2, 2), min_frames=frames, max_frames=frames, size=128)
    train = list_videos(root, "synthetic", "train")
    for v in train:
        ensure_frame_cache(v, frame_cache_path(v, root, "synthetic"))
    return root, train


class StepRunner:
    """One training path: its own BYOV, Adam and batches. `step()` -> seconds of one full step
    (loading its batch, forward, backward, Adam). With a cache `source` (tokens or merged
    features) the frame encoder is never run. One untimed warm-up step on creation."""

    def __init__(self, frame_encoder, k: int, source, videos, args, steps: int):
        torch.manual_seed(0)
        self.model = BYOV(768, 256, 256, depth=12, depth_dec=4, n_heads=16,
                          num_frames=args.num_frames)
        self.method = ByovMethod(frame_encoder, self.model, k, source,
                                 num_frames=args.num_frames).train()
        self.opt = torch.optim.Adam(self.method.trainable_parameters(), lr=1e-5)
        data = self.method.pair_dataset(videos, seed=0, length=(steps + 1) * args.batch_size)
        self.batches = iter(DataLoader(data, batch_size=args.batch_size, num_workers=0))
        self.args, self.i, self.times = args, 0, []
        self.step()
        self.times.clear()

    def step(self) -> None:
        t0 = time.perf_counter()
        batch = next(self.batches)
        loss = self.method(batch, (0, 0, self.i, 0))["loss"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.i += 1
        self.times.append(time.perf_counter() - t0)


def interleaved_times(runners: dict, steps: dict) -> dict:
    """Step the paths in turns (one round = 1/fly_steps of each path's steps), so a burst of load
    from other processes hits all paths alike; -> {name: [seconds per step]}."""
    rounds = steps["on the fly"]
    for r in range(rounds):
        for name, runner in runners.items():
            for _ in range(steps[name] * (r + 1) // rounds - steps[name] * r // rounds):
                runner.step()
    return {name: runner.times for name, runner in runners.items()}


def fp16_deviation(encoder, k, pixels, tokens, videos, args, items: int = 1) -> str:
    """How far the fp16 token cache is from on-the-fly tokens, on the same training clips."""
    a = PairDataset(videos, args.num_frames, pixels, pairing="ego_exo", seed=0, length=items)
    b = PairDataset(videos, args.num_frames, tokens, pairing="ego_exo", seed=0, length=items)
    lines = []
    for i in range(items):
        with torch.no_grad():
            t32 = encoder(a[i]["inputs"].flatten(0, 1)).view(2, args.num_frames, 196, 768)
        t16 = b[i]["inputs"]
        m32, m16 = selective_token_merge(t32, k), selective_token_merge(t16, k)
        for view in range(2):  # slot 0 holds the ego clip, slot 1 the exo clip
            tok = ((t16[view] - t32[view]).abs().max() / t32[view].abs().max()).item()
            per_frame = (m16[view] - m32[view]).abs().amax(-1) / m32[view].abs().max()
            lines.append(f"  {('ego', 'exo')[view]} clip: tokens max {tok:.1e} of scale; merged "
                         f"features median {per_frame.median():.1e}, max {per_frame.max():.1e} "
                         f"of scale; frames with a swapped top-K token "
                         f"{int((per_frame > 1e-2).sum())}/{len(per_frame)}")
    return "fp16 token cache vs on the fly (fp32), ViT-B/16:\n" + "\n".join(lines)


def cache_bytes_per_frame(cache_dir: str, kind: str, frames: int) -> float:
    folder = os.path.join(cache_dir, kind)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder)
                for f in fs if f.endswith(".npy"))
    return total / frames


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--num_frames", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--fly_steps", type=int, default=3)
    p.add_argument("--cache_steps", type=int, default=20)
    p.add_argument("--num_workers", type=int, default=2, help="extraction decode workers")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.videos} videos x "
          f"{args.frames} frames; T={args.num_frames}, batch {args.batch_size} pair(s), fp32 CPU")
    with tempfile.TemporaryDirectory(prefix="byov_train_speed_") as tmp:
        root, videos = make_dataset(tmp, args.videos, args.frames)
        torch.manual_seed(0)
        encoder = build_frame_encoder("clip", pretrained=False, input_size=224)
        k = num_selected_tokens(encoder.num_patches, 0.3)
        pixels = FrameSource(root, "synthetic", "clip", 224)
        cache = os.path.join(tmp, "cache")
        stats = extract_videos(videos, pixels, encoder, cache, ("tokens", "merged"), "fp16", k,
                               batch_size=32, num_workers=args.num_workers, progress=False)
        n_frames = sum(v.num_frames for v in videos)
        sources = {kind: FeatureSource(cache, read_manifest(cache, kind))
                   for kind in ("tokens", "merged")}
        print(f"extraction: {stats['frames']} frames in {stats['seconds']:.1f}s = "
              f"{stats['frames_per_s']:.2f} frames/s (tokens + merged, fp16)")
        for kind in ("tokens", "merged"):
            print(f"cache bytes per frame ({kind}, fp16): "
                  f"{cache_bytes_per_frame(cache, kind, n_frames):,.0f}")
        print(fp16_deviation(encoder, k, pixels, sources["tokens"], videos, args))
        steps = {"on the fly": args.fly_steps, "token cache": args.cache_steps,
                 "merged cache": args.cache_steps}
        runners = {"on the fly": StepRunner(encoder, k, pixels, videos, args, args.fly_steps),
                   "token cache": StepRunner(encoder, k, sources["tokens"], videos, args,
                                             args.cache_steps),
                   "merged cache": StepRunner(encoder, k, sources["merged"], videos, args,
                                              args.cache_steps)}
        rows = interleaved_times(runners, steps)
    print(f"{'path':<14}{'steps':>6}{'median s/step':>15}{'min':>9}{'max':>9}{'steps/s':>9}"
          f"{'vs fly':>9}")
    fly, tok, mrg = (float(np.median(t)) for t in rows.values())
    for (name, times), sec in zip(rows.items(), (fly, tok, mrg)):
        print(f"{name:<14}{len(times):>6}{sec:>15.4f}{min(times):>9.4f}{max(times):>9.4f}"
              f"{1 / sec:>9.3f}{fly / sec:>8.1f}x")
    print(f"merged_cache_speedup: {fly / mrg:.1f}")
    print(f"token_cache_speedup: {fly / tok:.1f}")
    return fly / tok


if __name__ == "__main__":
    main()
