"""One vector per video for the video-level protocol (Charades-Ego): checkpoint or baseline ->
mean-pooled embeddings -> `byov.eval.video_level` metrics.

The per-frame embeddings come from the same whole-video path as the AE2 tasks (`method.
embed_video`, or the frozen backbone's merged features for `--baseline frozen`), one video at a
time, and are mean-pooled at once, so only (N, D) is kept. An evaluation folder holds
`{split}_video_embeds.npy` (N, D) float32, `{split}_targets.npy` (N, K) float32 multi-hot,
`{split}_videos.json` ([{"name", "view", "num_frames"}]), `classes.json` ([[id, name]]) and
`embed_info.json` (the key it was made under; reused only when equal, as `byov.embedding`).
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from byov.atomic import atomic_write_json
from byov.eval.video_level import VideoSet, mean_pool

EMBED_INFO = "embed_info.json"
BASELINES = ("frozen", "random_init", "prior")  # "time" (t/L) mean-pools to a constant


def pooled_embeddings(embed: Callable[[object], torch.Tensor], videos: Sequence,
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
    paths = [os.path.join(directory, f"{split}_{p}") for p in
             ("video_embeds.npy", "targets.npy", "videos.json")]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} is missing: {directory} is not a video-level "
                                    f"embedding folder (evaluate.py --ckpt writes one)")
    with open(paths[2], encoding="utf-8") as f:
        meta = json.load(f)
    return VideoSet(np.load(paths[0]), np.load(paths[1]), [m["view"] for m in meta],
                    [m["name"] for m in meta]).validate(f"{directory} ({split})")


def _cached(out_dir: str, key: dict, splits: Sequence[str]) -> bool:
    try:
        with open(os.path.join(out_dir, EMBED_INFO), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    return saved.get("key") == key and all(
        os.path.isfile(os.path.join(out_dir, f"{s}_{p}")) for s in splits
        for p in ("video_embeds.npy", "targets.npy", "videos.json"))


def make_embed_fn(config: Mapping, videos: Sequence, ckpt_path: str | None, weights: str,
                  baseline: str | None, progress: bool):
    """video -> (L, D) per-frame embeddings of a checkpoint or a baseline (as `byov.embedding.
    embed_config_to_folder` builds them; the feature cache is completed first when the method
    reads it)."""
    from byov import distributed as D
    from byov.methods import build_method

    if config["method"] == "byov" and config["features"] != "fly":
        from byov.features import ensure_feature_cache
        ensure_feature_cache(config, list(videos), progress=progress)
    device = D.init_distributed(config["device"]).device
    if ckpt_path:
        from byov.checkpoint import load_checkpoint
        ckpt = load_checkpoint(ckpt_path)
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


def embed_videos_to_folder(config: Mapping, out_dir: str, splits: Sequence[str],
                           ckpt_path: str | None = None, weights: str = "online",
                           baseline: str | None = None, progress: bool = True) -> bool:
    """Embed and mean-pool `splits` of the config's video-level dataset into out_dir, or reuse it
    (same checkpoint bytes, data and settings: `byov.embedding.embedding_key`). The "prior"
    baseline needs no embeddings: it writes the targets with 1-d zero features.

    Returns True when it embedded. Raises DataError before any model is built when the data do
    not validate.
    """
    from byov.data.charades_ego import load_charades_ego
    from byov.data.fingerprint import content_hash, data_fingerprint
    from byov.embedding import embedding_key

    if (ckpt_path is None) == (baseline is None):
        raise ValueError("give exactly one of ckpt_path and baseline")
    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"unknown video-level baseline {baseline!r}; valid: "
                         f"{', '.join(BASELINES)}")
    root = config["dataset_root"]
    data = load_charades_ego(root, splits)
    fingerprint = data_fingerprint(root, config["dataset"], splits, data.videos)
    key = embedding_key(config, baseline or "checkpoint", fingerprint,
                        content_hash(ckpt_path) if ckpt_path else None,
                        weights if ckpt_path else None)
    key["pooling"] = "mean"
    targets = data.targets()
    if _cached(out_dir, key, splits):
        return False
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(os.path.join(out_dir, "classes.json"), [list(c) for c in data.classes])
    every = [v for s in splits for v in data.videos[s]]
    if baseline != "prior" and (config["method"] != "byov" or config["features"] == "fly"):
        # frames are decoded into h5 caches on first use: an unwritable folder fails now (a
        # feature-cache run: ensure_feature_cache checks them for the entries it must build)
        from byov.data.validate import check_frame_cache_folders
        check_frame_cache_folders(every, root, config["dataset"], config["frame_cache_dir"])
    embed = None if baseline == "prior" else make_embed_fn(config, every, ckpt_path, weights,
                                                           baseline, progress)
    for split in splits:
        vids = data.videos[split]
        x = (np.zeros((len(vids), 1), np.float32) if embed is None
             else pooled_embeddings(embed, vids, progress, f"embed {split}"))
        save_video_split(out_dir, split, video_set(x, vids, targets), vids)
    atomic_write_json(os.path.join(out_dir, EMBED_INFO), {"key": key, "splits": list(splits)})
    return True


def read_classes_json(directory: str) -> list[tuple[str, str]]:
    path = os.path.join(directory, "classes.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: {directory} is not a video-level embedding "
                                f"folder")
    with open(path, encoding="utf-8") as f:
        return [tuple(c) for c in json.load(f)]


def evaluate_folder(directory: str, eval_split: str, probe: str, c: float,
                    max_iter: int) -> dict:
    """`evaluate_video_level` of the folder's train split against `eval_split`."""
    from byov.eval.video_level import evaluate_video_level

    classes = read_classes_json(directory)
    return evaluate_video_level(load_video_split(directory, "train"),
                                load_video_split(directory, eval_split),
                                [c_id for c_id, _ in classes], probe=probe, c=c,
                                max_iter=max_iter)


def downstream_video_level(config: Mapping, method, videos: Mapping, targets: Mapping,
                           out_dir: str) -> dict:
    """During training: embed train + val with the current weights (eval mode, fp32), probe on
    train (config probe_c, probe_max_iter), mAP on val; the pooled embeddings, classes.json and
    metrics.json/md go to out_dir."""
    from byov.data.charades_ego import CLASSES_FILE, data_path, read_classes
    from byov.eval.video_level import evaluate_video_level

    classes = read_classes(os.path.join(data_path(config["dataset_root"]), CLASSES_FILE))

    modes = {name: m.training for name, m in method.named_modules()}
    method.eval()
    sets = {}
    try:
        for split in ("train", "val"):
            x = pooled_embeddings(method.embed_video, videos[split])
            sets[split] = video_set(x, videos[split], targets)
            save_video_split(out_dir, split, sets[split], videos[split])
    finally:
        for name, m in method.named_modules():
            m.training = modes[name]
    metrics = evaluate_video_level(sets["train"], sets["val"], [c for c, _ in classes],
                                   c=config["probe_c"], max_iter=config["probe_max_iter"])
    atomic_write_json(os.path.join(out_dir, "classes.json"), [list(c) for c in classes])
    write_video_metrics(out_dir, metrics, {"dataset": config["dataset"], "eval_split": "val",
                                           "method": config["method"], "weights": "online"})
    return metrics


def write_video_metrics(directory: str, metrics: dict, meta: dict) -> tuple[str, str]:
    """metrics.json ({"meta", "metrics"}) and metrics.md (meta + table with the published
    numbers) in `directory`, atomically."""
    from byov.atomic import atomic_write_text
    from byov.eval.report import to_json
    from byov.eval.video_level import format_table

    os.makedirs(directory, exist_ok=True)
    json_path, md_path = (os.path.join(directory, n) for n in ("metrics.json", "metrics.md"))
    atomic_write_text(json_path, to_json({"meta": meta, "metrics": metrics}))
    head = ["# Video-level evaluation (Charades-Ego protocol)", ""]
    head += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    atomic_write_text(md_path, "\n".join(head) + "\n" + format_table({row_name(meta): metrics})
                      + "\n")
    return json_path, md_path


def row_name(meta: Mapping) -> str:
    """The table row of one evaluation: "baseline: frozen" or "<method> (<checkpoint stem>)"."""
    if meta.get("baseline"):
        return f"baseline: {meta['baseline']}"
    ckpt = meta.get("checkpoint")
    stem = os.path.splitext(os.path.basename(ckpt))[0] if ckpt else "embeddings"
    return f"{meta.get('method') or 'ours'} ({stem})"


def run_evaluation(config: Mapping, ckpt_path: str | None = None, baseline: str | None = None,
                   embeddings: str | None = None, embed_dir: str | None = None,
                   progress: bool = False) -> tuple[dict, dict, str]:
    """What `evaluate.py` does for a video-level dataset: embed (a checkpoint or a baseline, into
    embed_dir, default <run>/eval/<ckpt stem>/ or <output_dir>/eval/baseline_<name>/) or read an
    embedding folder, probe on train, score config["eval_mode"]; write metrics.json/md there.

    Returns (metrics, meta, folder).
    """
    import datetime

    split = config["eval_mode"]
    if embeddings:
        directory = embeddings
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"embedding folder {directory} does not exist")
    else:
        directory = embed_dir or (_default_ckpt_dir(ckpt_path) if ckpt_path else os.path.join(
            config["output_dir"], "eval", f"baseline_{baseline}"))
        embedded = embed_videos_to_folder(config, directory, ("train", split), ckpt_path,
                                          config["weights"], baseline, progress)
        print(f"{'embedded into' if embedded else 'reusing the embeddings in'} {directory}")
    probe = "prior" if baseline == "prior" else "logistic"
    metrics = evaluate_folder(directory, split, probe, config["probe_c"],
                              config["probe_max_iter"])
    meta = {"dataset": config["dataset"], "eval_split": split,
            "embeddings": os.path.abspath(directory), "pooling": "mean over all frames",
            "checkpoint": ckpt_path or None, "weights": config["weights"] if ckpt_path else None,
            "method": config["method"] if (ckpt_path or baseline == "random_init") else None,
            "baseline": baseline, "probe": metrics["probe"]["kind"],
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    write_video_metrics(embed_dir or directory, metrics, meta)
    return metrics, meta, directory


def _default_ckpt_dir(ckpt_path: str) -> str:
    folder = os.path.dirname(os.path.abspath(ckpt_path))
    run = os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder
    return os.path.join(run, "eval", os.path.splitext(os.path.basename(ckpt_path))[0])
