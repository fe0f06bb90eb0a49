"""The video-level protocol (Charades-Ego; BYOV §7.5): a model -> mean-pooled per-video
embeddings -> a linear multi-label probe -> mAP in the Regular / Ego2Exo / Exo2Ego settings.

`evaluate_video_model` is what `byov.downstream.pipeline.evaluate_model` runs for a dataset of
the video-level protocol (`EvalSpec.protocol == "video"`), so `evaluate.py`, training's val
evaluation and the report reach it through the same one call. The per-frame embeddings come from
the same whole-video path as the AE2 tasks (the video -> (L, D) function the pipeline builds for
a checkpoint or a baseline, or a method's `embed_video`), one video at a time, mean-pooled at
once, so only (N, D) is kept. An evaluation folder holds `{split}_video_embeds.npy` (N, D)
float32, `{split}_targets.npy` (N, K) float32 multi-hot, `{split}_videos.json`
([{"name", "view", "num_frames"}]), `classes.json` ([[id, name]]) and `embed_info.json` (the
content key it was made under; reused only when equal, as for the AE2 folders). Metrics:
`byov.eval.video_level` (docs/charades_ego.md).
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from byov.atomic import atomic_write_json, atomic_write_text
from byov.downstream.embed import (EMBED_INFO, embedding_key, eval_mode, forget_key,
                                   reusable)
from byov.eval.video_level import VideoSet, format_table, mean_pool

BASELINES = ("frozen", "random_init", "prior")  # "time" (t/L) mean-pools to a constant
_PARTS = ("video_embeds.npy", "targets.npy", "videos.json")


def pooled_embeddings(embed: Callable[[object], object], videos: Sequence,
                      progress: bool = False, desc: str = "embed") -> np.ndarray:
    """(N, D) float32: `embed(video)` -> (L, D) per-frame embeddings, mean-pooled per video."""
    rows = [mean_pool(np.asarray(embed(v), dtype=np.float32))
            for v in tqdm(videos, desc=desc, unit="video", disable=not progress, leave=False)]
    return np.stack(rows) if rows else np.zeros((0, 1), np.float32)


def video_set(embeds: np.ndarray, videos: Sequence, targets: Mapping) -> VideoSet:
    return VideoSet(np.asarray(embeds, np.float32),
                    np.stack([targets[v.name] for v in videos]).astype(np.float32),
                    [v.view for v in videos], [v.name for v in videos])


def save_video_split(out_dir: str, split: str, data: VideoSet, videos: Sequence) -> None:
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, f"{split}_video_embeds.npy"), data.embeds)
    np.save(os.path.join(out_dir, f"{split}_targets.npy"), data.targets)
    atomic_write_json(os.path.join(out_dir, f"{split}_videos.json"),
                      [{"name": v.name, "view": v.view, "num_frames": int(v.num_frames)}
                       for v in videos])


def load_video_split(directory: str, split: str) -> VideoSet:
    """A split written by `save_video_split`, validated. Raises FileNotFoundError naming the
    missing file."""
    paths = [os.path.join(directory, f"{split}_{p}") for p in _PARTS]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} is missing: {directory} is not a video-level "
                                    f"embedding folder (evaluate.py --ckpt writes one)")
    with open(paths[2], encoding="utf-8") as f:
        meta = json.load(f)
    return VideoSet(np.load(paths[0]), np.load(paths[1]), [m["view"] for m in meta],
                    [m["name"] for m in meta]).validate(f"{directory} ({split})")


def read_classes_json(directory: str) -> list[tuple[str, str]]:
    path = os.path.join(directory, "classes.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: {directory} is not a video-level embedding "
                                f"folder")
    with open(path, encoding="utf-8") as f:
        return [tuple(c) for c in json.load(f)]


def score_folder(directory: str, spec, probe: str = "logistic") -> dict:
    """`evaluate_video_level` of the folder's train split against `spec.split` (a
    `byov.spec.EvalSpec`: probe C and iterations)."""
    from byov.eval.video_level import evaluate_video_level

    classes = read_classes_json(directory)
    return evaluate_video_level(load_video_split(directory, "train"),
                                load_video_split(directory, spec.split),
                                [c_id for c_id, _ in classes], probe=probe, c=spec.probe_c,
                                max_iter=spec.probe_max_iter)


def row_name(meta: Mapping) -> str:
    """The table row of one evaluation: "baseline: frozen" or "<method> (<checkpoint stem>)"."""
    if meta.get("baseline"):
        return f"baseline: {meta['baseline']}"
    ckpt = meta.get("checkpoint")
    stem = os.path.splitext(os.path.basename(ckpt))[0] if ckpt else "embeddings"
    return f"{meta.get('method') or 'ours'} ({stem})"


def write_video_metrics(directory: str, metrics: dict, meta: dict) -> tuple[str, str]:
    """metrics.json ({"meta", "metrics"}) and metrics.md (meta + table with the published
    numbers) in `directory`, atomically."""
    from byov.eval.tables import to_json

    os.makedirs(directory, exist_ok=True)
    json_path, md_path = (os.path.join(directory, n) for n in ("metrics.json", "metrics.md"))
    atomic_write_text(json_path, to_json({"meta": meta, "metrics": metrics}))
    head = ["# Video-level evaluation (Charades-Ego protocol)", ""]
    head += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    atomic_write_text(md_path, "\n".join(head) + "\n" + format_table({row_name(meta): metrics})
                      + "\n")
    return json_path, md_path


def evaluate_video_model(spec, out_dir: str, *, checkpoint=None, baseline: str | None = None,
                         method=None, data=None, meta: Mapping | None = None,
                         progress: bool = False, embed_function=None):
    """Embed, mean-pool and probe (see module doc); `byov.downstream.pipeline.evaluate_model`'s
    arguments, plus `embed_function(spec, splits, videos, checkpoint, baseline, progress)`, the
    pipeline's builder of a checkpoint's or baseline's video -> (L, D) function.

    Returns a `DownstreamResult` whose train/evl are `VideoSet`s. Raises DataError before any
    model is built when the data do not validate; ValueError for a baseline without meaning here.
    """
    from byov.data.charades_ego import CLASSES_FILE, data_path, load_charades_ego, read_classes
    from byov.data.fingerprint import data_fingerprint
    from byov.downstream.result import DownstreamResult, default_meta

    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"--baseline {baseline} has no meaning for the video-level protocol "
                         f"(t/L mean-pools to the same vector for every video); valid: "
                         f"{', '.join(BASELINES)}")
    data_spec, ev = spec.method.data, spec.eval
    splits = ("train", ev.split)
    if data is None:
        release = load_charades_ego(data_spec.root, splits)  # validated, before any model
        data = (release.videos, release.targets())
    videos, targets = data
    classes = read_classes(os.path.join(data_path(data_spec.root), CLASSES_FILE))
    made = True
    if method is not None:  # training: the current weights, every part in eval mode
        with eval_mode(method):
            sets = {s: video_set(pooled_embeddings(method.embed_video, videos[s]), videos[s],
                                 targets) for s in splits}
        forget_key(out_dir, _PARTS)  # these embeddings have no key: never reused later
        for s in splits:
            save_video_split(out_dir, s, sets[s], videos[s])
    else:
        fingerprint = data_fingerprint(data_spec.root, data_spec.dataset, splits, videos)
        key = embedding_key(spec.settings, baseline or "checkpoint", fingerprint,
                            checkpoint.content_hash if checkpoint else None,
                            ev.weights if checkpoint else None,
                            spec.seed if baseline == "random_init" else None)
        key["pooling"] = "mean"
        made = not reusable(out_dir, key, splits, _PARTS)
        if made:
            embed = (None if baseline == "prior"
                     else embed_function(spec, splits, videos, checkpoint, baseline, progress))
            forget_key(out_dir, _PARTS)
            for s in splits:
                x = (np.zeros((len(videos[s]), 1), np.float32) if embed is None
                     else pooled_embeddings(embed, videos[s], progress, f"embed {s}"))
                save_video_split(out_dir, s, video_set(x, videos[s], targets), videos[s])
            atomic_write_json(os.path.join(out_dir, EMBED_INFO),
                              {"key": key, "splits": list(splits)})
    atomic_write_json(os.path.join(out_dir, "classes.json"), [list(c) for c in classes])
    metrics = score_folder(out_dir, ev, probe="prior" if baseline == "prior" else "logistic")
    meta = {**default_meta(spec, out_dir), "pooling": "mean over all frames",
            "probe": metrics["probe"]["kind"], **(meta or {})}
    write_video_metrics(out_dir, metrics, meta)
    return DownstreamResult(metrics, out_dir, made, load_video_split(out_dir, "train"),
                            load_video_split(out_dir, ev.split))


__all__ = ["BASELINES", "evaluate_video_model", "load_video_split", "pooled_embeddings",
           "read_classes_json", "row_name", "save_video_split", "score_folder",
           "write_video_metrics"]
