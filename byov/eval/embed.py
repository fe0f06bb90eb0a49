"""Per-frame embeddings of whole videos, for the downstream tasks (REFERENCE §3.8, §6.1).

A video of L frames goes through the frame encoder in chunks, selective token merging over
ADJACENT frames, then the BYOV encoder on the full sequence (its position table interpolated from
T0 to L): (L, embed_dim) rows. With `model=None` the merged frozen features themselves are the
embedding (the "untrained frozen features" baseline, BYOV Table 1's CLIP row).
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from byov.atomic import atomic_write_json
from byov.eval.io import SplitData
from byov.models.stm import merge_video_tokens


@torch.no_grad()
def merged_video_features(frames, k_video: int, frame_encoder, k: int, chunk_size: int,
                          device: torch.device) -> torch.Tensor:
    """Frozen STM features of one whole video: (L, d) float32 on the CPU.

    frames: a `VideoFrames` (or anything with `iter_chunks(k, chunk_size)` yielding pixel tensors
    (n, 3, S, S)); tokens are computed chunk by chunk, so memory stays bounded for long videos.
    """
    chunks = (frame_encoder(x.to(device, non_blocking=True)) for x in
              frames.iter_chunks(k_video, chunk_size))
    return merge_video_tokens(chunks, k).float().cpu()


@torch.no_grad()
def embed_videos(frames, frame_encoder, k: int, model=None, weights: str = "online",
                 chunk_size: int = 64, device: torch.device | str = "cpu",
                 feature_store: dict | None = None,
                 merged_features: Callable[[int], torch.Tensor] | None = None,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 progress: bool = True, split: str = "eval") -> SplitData:
    """Embed every frame of every video of `frames` (a `VideoFrames`, labels required).

    Args:
        frame_encoder: a FrameEncoder; only its output is used, so it is skipped for videos whose
            merged features are found in `feature_store` / given by `merged_features`.
        k: tokens kept per frame by selective token merging.
        model: a BYOV model (its `embed(x, weights)` is used), or None for the frozen features.
        feature_store: optional dict video name -> (L, d) merged features; filled on a miss and
            reused on a hit (valid only while the frame encoder is frozen).
        merged_features: optional callable video index -> (L, d) merged features (a feature
            cache); takes precedence over the frame encoder.
    Returns:
        SplitData with embeds (N, D) float32, labels (N,), one metadata dict per video.
    """
    device = torch.device(device)
    if frames.labels is None:
        raise ValueError("embed_videos needs labels: build VideoFrames(videos, labels, source)")
    rows, labels, videos = [], [], []
    for i in tqdm(range(len(frames)), desc=f"embed {split}", unit="video", disable=not progress,
                  leave=False):
        meta = frames[i]
        x = feature_store.get(meta["name"]) if feature_store is not None else None
        if x is None:
            if merged_features is not None:
                x = merged_features(i)
            else:
                with autocast():
                    x = merged_video_features(frames, i, frame_encoder, k, chunk_size, device)
            x = x.float()
            if feature_store is not None:
                feature_store[meta["name"]] = x
        if model is not None:
            with autocast():
                x = model.embed(x[None].to(device), weights)[0]
        rows.append(x.float().cpu().numpy())
        labels.append(meta["labels"])
        videos.append({"name": meta["name"], "view": meta["view"],
                       "num_frames": int(meta["num_frames"])})
    embeds = np.concatenate(rows, axis=0).astype(np.float32, copy=False)
    return SplitData(embeds, np.concatenate(labels).astype(np.int64), videos, split).validate()


def split_frames(config: Mapping, split: str):
    """VideoFrames (with labels) of one split, read as the config says."""
    from byov.data.datasets import FrameSource, VideoFrames
    from byov.data.layout import list_videos, load_labels

    videos = list_videos(config["dataset_root"], config["dataset"], split)
    labels = load_labels(config["dataset_root"], config["dataset"])
    source = FrameSource(config["dataset_root"], config["dataset"], config["backbone"],
                         config["input_size"], config["frame_cache_dir"])
    return VideoFrames(videos, labels, source)


def embed_splits(config: Mapping, splits: Sequence[str], frame_encoder, model=None,
                 weights: str = "online", device: torch.device | str = "cpu",
                 feature_store: dict | None = None, autocast=contextlib.nullcontext,
                 progress: bool = True) -> dict[str, SplitData]:
    """{split: SplitData} for each split, embedding with `model` (None = frozen features)."""
    from byov.build import tokens_to_keep

    k = tokens_to_keep(config, frame_encoder.num_patches)
    out = {}
    for split in splits:
        store = None if feature_store is None else feature_store.setdefault(split, {})
        frames = split_frames(config, split)
        cached = None
        if config["features"] != "fly":  # the feature cache replaces the backbone (README)
            from byov.features.cache import merged_features
            cached = merged_features(config, split, frame_encoder, frames.videos)
        out[split] = embed_videos(frames, frame_encoder, k, model, weights,
                                  config["encode_chunk_size"], device, store,
                                  merged_features=cached, autocast=autocast,
                                  progress=progress, split=split)
    return out


def _fingerprint(path: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cached(out_dir: str, info: dict, splits: Sequence[str]) -> bool:
    """True when out_dir already holds these splits embedded from the same source."""
    path = os.path.join(out_dir, EMBED_INFO)
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    return (saved.get("source") == info["source"] and
            all(s in saved.get("splits", []) for s in splits) and
            all(os.path.isfile(os.path.join(out_dir, f"{s}_embeds.npy")) for s in splits))


EMBED_INFO = "embed_info.json"


def embed_to_folder(config: Mapping, out_dir: str, splits: Sequence[str],
                    ckpt_path: str | None = None, weights: str = "online",
                    progress: bool = True) -> bool:
    """Embed `splits` into out_dir ({split}_embeds.npy, _label.npy, _videos.json).

    With `ckpt_path`, the checkpoint's model (rebuilt from `config`, its own config plus location
    overrides, and loaded strictly) embeds; without, the frozen backbone's merged features are the
    embedding. Embeddings already there from the same source (file, size, mtime, weights, data)
    are reused. Returns True when it embedded, False when it reused.
    """
    from byov import distributed as D
    from byov.build import build_frame_encoder_from_config, model_from_checkpoint
    from byov.checkpoint import load_checkpoint
    from byov.eval.io import save_split

    source = {"data": [config["dataset_root"], config["dataset"]], "weights": weights,
              "backbone": [config["backbone"], config["vision_encoder_path"],
                           config["input_size"]],
              "checkpoint": _fingerprint(ckpt_path) if ckpt_path else None}
    info = {"source": source, "splits": list(splits)}
    if _cached(out_dir, info, splits):
        return False
    device = D.init_distributed(config["device"]).device
    model = None
    if ckpt_path:
        frame_encoder, model = model_from_checkpoint(load_checkpoint(ckpt_path), config)
        model.to(device).eval()
    else:
        frame_encoder = build_frame_encoder_from_config(config)
    frame_encoder.to(device).eval()
    autocast = lambda: D.autocast_context(device, config["precision"])  # noqa: E731
    data = embed_splits(config, splits, frame_encoder, model, weights, device,
                        autocast=autocast, progress=progress)
    for split, d in data.items():
        save_split(out_dir, split, d)
    atomic_write_json(os.path.join(out_dir, EMBED_INFO), info)
    return True
