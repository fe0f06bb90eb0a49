"""Per-frame embeddings of whole videos for the downstream tasks, from any training method.

`embed_split` runs a video -> (L, D) function (a method's `embed_video`, or a baseline's) over the
videos of one split, in the data layer's (released, sorted) order, and pairs the rows with the
phase labels: a `byov.eval.SplitData`, the only thing `byov.eval` needs. `embed_to_folder` writes
the embedding-folder layout and reuses a folder only when it was made from the same checkpoint
bytes, the same data (labels, split lists, video content) and the same settings (`embedding_key`).
Embedding runs in float32 (no autocast), as the released evaluation does.
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

EMBED_INFO = "embed_info.json"


@contextlib.contextmanager
def eval_mode(module):
    """Every part of `module` in eval mode (an unfrozen CNN's BatchNorm must not use or update
    batch statistics while whole videos are embedded), each part's own mode restored after."""
    modes = {name: m.training for name, m in module.named_modules()}
    module.eval()
    try:
        yield module
    finally:
        for name, m in module.named_modules():
            m.training = modes[name]


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


FRAME_PARTS = ("embeds.npy", "label.npy", "videos.json")


def recorded_key(out_dir: str) -> dict | None:
    """The content key an evaluation folder's embeddings were made under (None: no folder, or
    no readable record)."""
    try:
        with open(os.path.join(out_dir, EMBED_INFO), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def forget_key(out_dir: str, parts: Sequence[str] = FRAME_PARTS) -> None:
    """Clear out_dir before its embeddings are rewritten: the key record, the metrics and every
    split's files (`{train,val,test}_{part}`). A write that is then interrupted (Ctrl-C, a full
    disk) leaves only new files under no key: never reused, and never a mix of two models'
    splits for `evaluate.py --embeddings` to score. The record is written last, once every
    split is whole."""
    from byov.data.layout import SPLITS

    names = [EMBED_INFO, "metrics.json", "metrics.md"]
    names += [f"{s}_{p}" for s in SPLITS for p in parts]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out_dir, name))


def reusable(out_dir: str, key: dict, splits: Sequence[str],
             parts: Sequence[str] = FRAME_PARTS) -> bool:
    """True when out_dir holds these splits embedded under the same key. When it holds
    embeddings of something else, says what differs: they are about to be replaced (two models
    evaluated into one folder, e.g. two export folders of the same name, never overwrite each
    other silently)."""
    saved = recorded_key(out_dir)
    if saved is None:
        return False
    if (saved.get("key") == key and all(s in saved.get("splits", []) for s in splits)
            and all(os.path.isfile(os.path.join(out_dir, f"{s}_{part}"))
                    for s in splits for part in parts)):
        return True
    old = saved.get("key") or {}
    changed = [name for name in ("kind", "checkpoint", "weights", "data", "config", "seed",
                                 "pooling") if old.get(name) != key.get(name)]
    if changed:
        what = {"kind": "model or baseline", "checkpoint": "checkpoint", "weights": "weights",
                "data": "data version", "config": "settings", "seed": "seed", "pooling": "pooling"}
        print(f"{out_dir} holds embeddings made with a different "
              f"{' / '.join(what[c] for c in changed)}: they are replaced (evaluate into "
              f"another --embed_dir to keep both)")
    return False


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

    if reusable(out_dir, key, splits):
        return False
    embed = make_embed()
    forget_key(out_dir)
    for split in splits:
        save_split(out_dir, split, embed_split(embed, videos[split], labels, split, progress))
    atomic_write_json(os.path.join(out_dir, EMBED_INFO), {"key": key, "splits": list(splits)})
    return True


def embedding_key(settings: Mapping, kind: str, data: str, checkpoint: str | None = None,
                  weights: str | None = None, seed: int | None = None) -> dict:
    """What an evaluation folder's embeddings derive from (see `embed_to_folder`).

    Args:
        settings: `byov.spec.embedding_settings(config)` (backbone, STM, features, ...).
        kind: "checkpoint" or a baseline name; data: the data fingerprint; checkpoint: the
            checkpoint's content hash; weights: online | ema; seed: random_init's seed.
    """
    key = {"kind": kind, "data": data, "checkpoint": checkpoint, "weights": weights}
    if kind != "time":
        key["config"] = dict(settings)
    if kind == "random_init":
        key["seed"] = seed
    return key

