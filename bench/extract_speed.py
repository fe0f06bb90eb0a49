"""Feature extraction speed: the full pipeline vs the bare backbone forward
(docs/design.md#feature-cache).

    python bench/extract_speed.py        # ~3-4 minutes on 2 CPU cores

Fixed set: a synthetic dataset of 4 train videos x 32 frames (128x128), generated into a temp
folder, with its h5 frame caches built up front (untimed: they are the shared frame cache that
training on the fly uses too). Backbone: a random-init CLIP ViT-B/16 at 224 (196 x 768 tokens),
fp32 on the CPU, batches of --batch_size (32) frames.

- bare: the backbone alone on all frames pre-loaded as one preprocessed tensor (no I/O at all);
- pipeline: `byov.features.extract_videos` into an empty cache, both kinds (fp16 tokens and
  merged features): DataLoader workers (--num_workers, 2) read and preprocess frames from the h5
  caches while the backbone runs; batches span videos; STM, fp16 conversion, writes and renames.

One untimed warm-up batch first. The machine may be shared, so the runs alternate: bare, pipeline,
bare, pipeline, bare (--repeats 2), each pipeline run into an empty cache, and the medians are
compared. Last line: `extraction_overhead: X`,
X = pipeline time / bare forward time - 1 (target <= 0.25).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from byov.data.datasets import FrameSource  # noqa: E402
from byov.data.frame_cache import ensure_frame_cache, frame_cache_path  # noqa: E402
from byov.data.layout import list_videos  # noqa: E402
from byov.data.synthetic import generate  # noqa: E402
from byov.features.extract import extract_videos  # noqa: E402
from byov.models.backbones import build_frame_encoder  # noqa: E402
from byov.models.stm import num_selected_tokens  # noqa: E402


def bare_forward(encoder, images: torch.Tensor, batch_size: int) -> float:
    """Seconds for the backbone alone on pre-loaded images (n, 3, S, S)."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            encoder(images[i:i + batch_size])
    return time.perf_counter() - t0


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--num_workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="pipeline runs (bare runs: one more)")
    args = p.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.videos} videos x "
          f"{args.frames} frames; batch {args.batch_size}, {args.num_workers} workers, fp32 CPU")
    with tempfile.TemporaryDirectory(prefix="byov_extract_speed_") as tmp:
        root = os.path.join(tmp, "data")
        generate(os.path.join(root, "synthetic"), layout="csv", seed=0,
                 videos_per_split=(args.videos, 2, 2), min_frames=args.frames,
                 max_frames=args.frames, size=128)
        videos = list_videos(root, "synthetic", "train")
        for v in videos:
            ensure_frame_cache(v, frame_cache_path(v, root, "synthetic"))
        torch.manual_seed(0)
        encoder = build_frame_encoder("clip", pretrained=False, input_size=224)
        source = FrameSource(root, "synthetic", "clip", 224)
        images = torch.cat([source.load(v, np.arange(v.num_frames)) for v in videos])
        n = len(images)
        with torch.no_grad():
            encoder(images[:args.batch_size])  # warm-up
        k = num_selected_tokens(encoder.num_patches, 0.3)
        bare_t, pipe_t = [bare_forward(encoder, images, args.batch_size)], []
        for rep in range(args.repeats):  # alternate, so load from other processes hits both
            t0 = time.perf_counter()  # the whole call: manifest, weights hash, worker start-up
            stats = extract_videos(videos, source, encoder, os.path.join(tmp, f"cache{rep}"),
                                   ("tokens", "merged"), "fp16", k, batch_size=args.batch_size,
                                   num_workers=args.num_workers, progress=False)
            pipe_t.append(time.perf_counter() - t0)
            bare_t.append(bare_forward(encoder, images, args.batch_size))
    bare, pipe = float(np.median(bare_t)), float(np.median(pipe_t))
    print(f"bare backbone forward: {n} frames, runs {', '.join(f'{t:.1f}' for t in bare_t)} s; "
          f"median {bare:.1f}s = {n / bare:.2f} frames/s")
    print(f"extraction pipeline:   {stats['frames']} frames, runs "
          f"{', '.join(f'{t:.1f}' for t in pipe_t)} s; median {pipe:.1f}s = "
          f"{stats['frames'] / pipe:.2f} frames/s")
    print(f"extraction_overhead: {pipe / bare - 1:.3f}")
    return pipe / bare - 1


if __name__ == "__main__":
    main()
