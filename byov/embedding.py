"""Per-frame embeddings of whole videos for the downstream tasks, from any training method.

`embed_split` runs a method's `embed_video` over the videos of one split, in the data layer's
(released, sorted) order, and pairs the rows with the phase labels: a `byov.eval.SplitData`, the
only thing `byov.eval` needs. `embed_to_folder` is what `evaluate.py --ckpt` and the baselines use:
it writes the embedding-folder layout and reuses a folder only when it was made from the same
checkpoint bytes, the same data (labels, split lists, video content) and the same settings.
Embedding runs in float32 (no autocast), as the released evaluation does.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from byov.atomic import atomic_write_json
from byov.eval.baselines import BASELINES  # the one list, where evaluate.py reads it torch-free
from byov.eval.io import SplitData

EMBED_INFO = "embed_info.json"


def split_videos(videos: Sequence) -> list[dict]:
    """Evaluation metadata of `videos`: [{"name", "view", "num_frames"}] in row order."""
    return [{"name": v.name, "view": v.view, "num_frames": int(v.num_frames)} for v in videos]


@torch.no_grad()
def embed_split(embed: Callable[[object], torch.Tensor], videos: Sequence,
                labels: Mapping[str, np.ndarray], split: str = "eval",
                progress: bool = True) -> SplitData:
    """Embed every frame of every video of a split.

    Args:
        embed: video -> (L, D) embeddings (e.g. `method.embed_video`, or a baseline's).
        videos: the split's `Video`s in the data layer's order (ego first, then exo, sorted).
        labels: {video name: (L,) int phase ids} (label.pickle, already checked).
    Returns:
        SplitData: embeds (N, D) float32 (N = sum of L), labels (N,) int64, per-video metadata.
    Raises:
        EvalInputError: an embedding has the wrong number of rows or is not finite.
    """
    rows, frame_labels = [], []
    for video in tqdm(videos, desc=f"embed {split}", unit="video", disable=not progress,
                      leave=False):
        x = embed(video)
        rows.append(np.asarray(x, dtype=np.float32))
        frame_labels.append(np.asarray(labels[video.name], dtype=np.int64))
    embeds = np.concatenate(rows, axis=0) if rows else np.zeros((0, 1), np.float32)
    labels_all = np.concatenate(frame_labels) if frame_labels else np.zeros(0, np.int64)
    return SplitData(embeds, labels_all, split_videos(videos), split).validate()


def _cached(out_dir: str, key: dict, splits: Sequence[str]) -> bool:
    """True when out_dir holds these splits embedded under the same key."""
    path = os.path.join(out_dir, EMBED_INFO)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return (saved.get("key") == key and all(s in saved.get("splits", []) for s in splits)
            and all(os.path.isfile(os.path.join(out_dir, f"{s}_{part}"))
                    for s in splits for part in ("embeds.npy", "label.npy", "videos.json")))


def embed_to_folder(out_dir: str, splits: Sequence[str], key: dict,
                    make_embed: Callable[[], Callable[[object], torch.Tensor]],
                    videos: Mapping[str, Sequence], labels: Mapping[str, np.ndarray],
                    progress: bool = True) -> bool:
    """Embed `splits` into out_dir ({split}_embeds.npy, _label.npy, _videos.json), or reuse it.

    Args:
        key: what the embeddings are derived from (checkpoint fingerprint, data fingerprint,
            weights, settings): the folder is reused only when its recorded key is equal, so
            edited labels, split lists, videos or a new checkpoint at the same path re-embed.
        make_embed: builds the video -> (L, D) function (called only when embedding is needed,
            so a reused folder costs no model construction).
        videos: {split: [Video]}; labels: {name: (L,) phase ids}.
    Returns:
        True when it embedded, False when it reused the folder.
    """
    from byov.eval.io import save_split

    if _cached(out_dir, key, splits):
        return False
    embed = make_embed()
    for split in splits:
        save_split(out_dir, split, embed_split(embed, videos[split], labels, split, progress))
    atomic_write_json(os.path.join(out_dir, EMBED_INFO), {"key": key, "splits": list(splits)})
    return True


# Config keys that decide what an embedding is, besides the checkpoint and the data.
_EMBED_KEYS = ("method", "backbone", "vision_encoder_path", "input_size", "resnet_stage",
               "topk_ratio", "num_tokens", "features", "feature_dtype", "frame_stride",
               "context_grouping", "embedding_size", "hidden_dim")


def embedding_key(config: Mapping, kind: str, data: str, checkpoint: str | None = None,
                  weights: str | None = None) -> dict:
    """What an evaluation folder's embeddings derive from (see `embed_to_folder`)."""
    key = {"kind": kind, "data": data, "checkpoint": checkpoint, "weights": weights}
    if kind != "time":
        key["config"] = {k: config.get(k) for k in _EMBED_KEYS}
    if kind == "random_init":
        key["seed"] = config["seed"]
    return key


def embed_config_to_folder(config: Mapping, out_dir: str, splits: Sequence[str],
                           ckpt_path: str | None = None, weights: str = "online",
                           baseline: str | None = None, progress: bool = True) -> bool:
    """Embed `splits` of the config's dataset into out_dir with a checkpoint or a baseline.

    Args:
        config: the resolved flat config (a checkpoint's own, with location overrides).
        ckpt_path: a train.py checkpoint (its method and weights embed), or None with `baseline`:
            "time" (t/L per frame, `byov.eval.baselines`), "frozen" (the frozen backbone's
            merged features), "random_init" (the config's method, untrained, seeded by `seed`).
    Returns:
        True when it embedded, False when it reused the folder (same key, see `embedding_key`).
    Raises:
        DataError: the splits' data do not validate (before any model is built).
    """
    from byov import distributed as D
    from byov.data.fingerprint import content_hash, data_fingerprint
    from byov.data.validate import load_validated

    if (ckpt_path is None) == (baseline is None):
        raise ValueError("give exactly one of ckpt_path and baseline")
    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}")
    root, dataset = config["dataset_root"], config["dataset"]
    reads_frames = baseline != "time" and (config["method"] != "byov"
                                           or config["features"] == "fly")
    videos, labels = load_validated(root, dataset, splits,
                                    config["frame_cache_dir"] if reads_frames else None)
    data = data_fingerprint(root, dataset, splits, videos)
    key = embedding_key(config, baseline or "checkpoint", data,
                        content_hash(ckpt_path) if ckpt_path else None,
                        weights if ckpt_path else None)

    def make_embed():
        if reads_frames is False and baseline != "time":
            # a checkpoint trained from the feature cache evaluates from it too: build the
            # entries of splits training never read (test), as training builds its own
            from byov.features import ensure_feature_cache
            ensure_feature_cache(config, [v for s in splits for v in videos[s]],
                                 progress=progress)
        if baseline == "time":
            from byov.eval.baselines import time_embeddings
            return lambda v: time_embeddings([{"name": v.name, "view": v.view,
                                               "num_frames": v.num_frames}])
        from byov.methods import build_method
        device = D.init_distributed(config["device"]).device
        if ckpt_path:
            from byov.checkpoint import load_checkpoint
            ckpt = load_checkpoint(ckpt_path)
            # pretrained weights only where the checkpoint lacks them (BYOV's frozen backbone)
            method = build_method(config, pretrained=config["method"] == "byov"
                                  and ckpt.get("backbone") is None)
            method.load_state_entries(ckpt, where=ckpt_path)
        elif baseline == "frozen":
            from byov.build import build_byov_method
            method = build_byov_method({**config, "method": "byov"})
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config["seed"])
                method = build_method(config)
        method.to(device).eval()
        if baseline == "frozen":
            return method.merged_video
        return lambda v: method.embed_video(v, weights)

    return embed_to_folder(out_dir, splits, key, make_embed, videos, labels, progress)


def embed_splits(method, config: Mapping, splits: Sequence[str], weights: str = "online",
                 progress: bool = True) -> dict:
    """{split: SplitData} of the config's dataset embedded by `method` (validated data)."""
    from byov.data.validate import load_validated

    videos, labels = load_validated(config["dataset_root"], config["dataset"], splits,
                                    config["frame_cache_dir"])
    return {s: embed_split(lambda v: method.embed_video(v, weights), videos[s], labels, s,
                           progress) for s in splits}
