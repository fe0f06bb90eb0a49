"""Per-split embedding folders: `{split}_embeds.npy`, `{split}_label.npy`, `{split}_videos.json`.

The first two files are the released layout (docs/evaluation.md), named by split (test_embeds.npy, never test-as-val). The json
holds the per-video metadata every metric needs (name, view, frame count, in row order), so a
folder can be evaluated without the videos. AE2's released folders lack it; `evaluate.py` then
takes the metadata from the dataset (`--dataset_root/--dataset`; AE2's released folders with `--val_files_are_test`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from byov.atomic import atomic_write, atomic_write_json
from byov.errors import ByovError

VIEWS = ("ego", "exo")


class EvalInputError(ByovError, ValueError):
    """Embeddings, labels or metadata that the evaluation cannot use; the message says why."""


@dataclass
class SplitData:
    """The embeddings of one split, with their labels and per-video metadata.

    Attributes:
        embeds: (N, D) float array, the rows of all videos concatenated in `videos` order.
        labels: (N,) int64 phase ids in 0..K-1, or -1 for background frames.
        videos: one dict per video, in row order: {"name": str, "view": "ego"|"exo",
            "num_frames": int}; the num_frames sum to N. A video is identified by (view, name):
            an ego and an exo video may share a name (they share label.pickle's entry).
        split: the split's name, used in error messages only.
    """

    embeds: np.ndarray
    labels: np.ndarray
    videos: list[dict] = field(default_factory=list)
    split: str = "eval"

    @property
    def lengths(self) -> np.ndarray:
        """(V,) int64 frames per video."""
        return np.asarray([int(v["num_frames"]) for v in self.videos], dtype=np.int64)

    @property
    def offsets(self) -> np.ndarray:
        """(V + 1,) int64 first row of each video, then N."""
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def video_ids(self) -> np.ndarray:
        """(N,) int64 index of each row's video in `videos`."""
        return np.repeat(np.arange(len(self.videos), dtype=np.int64), self.lengths)

    @property
    def video_is_ego(self) -> np.ndarray:
        """(V,) bool, one flag per video."""
        return np.asarray([v["view"] == "ego" for v in self.videos], dtype=bool)

    @property
    def is_ego(self) -> np.ndarray:
        """(N,) bool, True for the rows of ego videos."""
        return np.repeat(self.video_is_ego, self.lengths)

    @property
    def frame_idx(self) -> np.ndarray:
        """(N,) int64 frame index within its video (0..L-1)."""
        lengths = self.lengths
        return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(self.offsets[:-1], lengths)

    def validate(self) -> "SplitData":
        """Raise EvalInputError on anything the metrics cannot use; returns self."""
        name = f"split '{self.split}'"
        x, y = np.asarray(self.embeds), np.asarray(self.labels)
        if x.ndim != 2 or x.shape[1] < 1:
            raise EvalInputError(f"{name}: embeddings must be a 2-D (frames, dim) array, got "
                                 f"shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise EvalInputError(f"{name}: embeddings must be floating point, got {x.dtype}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise EvalInputError(f"{name}: labels must be a 1-D integer array of phase ids, got "
                                 f"shape {y.shape} dtype {y.dtype}")
        if not self.videos:
            raise EvalInputError(f"{name}: no per-video metadata (videos list is empty)")
        seen = set()
        for i, v in enumerate(self.videos):
            if not isinstance(v, dict) or not {"name", "view", "num_frames"} <= set(v):
                raise EvalInputError(f"{name}: video #{i} must be a dict with keys name, view, "
                                     f"num_frames; got {v!r}")
            if v["view"] not in VIEWS:
                raise EvalInputError(f"{name}: video {v['name']!r} has view {v['view']!r}; the "
                                     f"view must be 'ego' or 'exo' (its parent folder name)")
            n = v["num_frames"]
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise EvalInputError(f"{name}: video {v['name']!r} has num_frames {n!r}; it must "
                                     f"be a positive integer")
            # a video is (view, name): an ego and an exo video may share a file name, as the
            # data layer accepts (byov.data.validate); the same video twice is an error
            key = (v["view"], v["name"])
            if key in seen:
                raise EvalInputError(f"{name}: the {v['view']} video {v['name']!r} appears twice; "
                                     f"each (view, name) must be listed once (the embeddings, "
                                     f"labels and video list must come from one split)")
            seen.add(key)
        total = int(self.lengths.sum())
        if not len(x) == len(y) == total:
            raise EvalInputError(
                f"{name}: row counts disagree: {len(x)} embedding rows, {len(y)} labels, "
                f"{total} frames in the per-video metadata ({len(self.videos)} videos). The "
                f"embeddings, labels and video list must come from the same split and order")
        bad = int(np.count_nonzero(~np.isfinite(x).all(axis=1)))
        if bad:
            raise EvalInputError(f"{name}: {bad} of {len(x)} embedding rows contain NaN or inf; "
                                 f"re-extract the embeddings (a diverged model or a failed cast)")
        if y.min() < -1:
            raise EvalInputError(f"{name}: labels must be phase ids >= 0 or -1 (background), "
                                 f"found {int(y.min())}")
        return self


def _paths(directory: str, split: str) -> tuple[str, str, str]:
    return (os.path.join(directory, f"{split}_embeds.npy"),
            os.path.join(directory, f"{split}_label.npy"),
            os.path.join(directory, f"{split}_videos.json"))


def save_split(directory: str, split: str, data: SplitData) -> None:
    """Write `{split}_embeds.npy`, `{split}_label.npy` and `{split}_videos.json` (atomically)."""
    data.validate()
    os.makedirs(directory, exist_ok=True)
    embeds_path, label_path, videos_path = _paths(directory, split)
    videos = [{"name": str(v["name"]), "view": str(v["view"]), "num_frames": int(v["num_frames"])}
              for v in data.videos]
    atomic_write(embeds_path, lambda f: np.save(f, np.asarray(data.embeds)))
    atomic_write(label_path, lambda f: np.save(f, np.asarray(data.labels, dtype=np.int64)))
    atomic_write_json(videos_path, videos)


def videos_json_path(directory: str, split: str) -> str:
    return _paths(directory, split)[2]


def load_split(directory: str, split: str, videos: list[dict] | None = None,
               name: str | None = None) -> SplitData:
    """Read a split written by `save_split` (or the released `{split}_*.npy` pair plus `videos`).

    Args:
        directory: the embedding folder.
        split: the file prefix (`train`, `val`, `test`).
        videos: per-video metadata; when None it is read from `{split}_videos.json`.
        name: the split's name for messages (default: `split`).
    Returns:
        a validated SplitData.
    """
    embeds_path, label_path, videos_path = _paths(directory, split)
    for path in (embeds_path, label_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: the embedding folder must hold "
                                    f"{split}_embeds.npy and {split}_label.npy")
    if videos is None:
        if not os.path.isfile(videos_path):
            raise EvalInputError(
                f"{videos_path} does not exist, so the per-video metadata (names, views, frame "
                f"counts) is unknown. For AE2's released embedding folders pass "
                f"--dataset_root/--dataset so it is read from the dataset (and "
                f"--val_files_are_test if val_* holds the test split)")
        with open(videos_path, encoding="utf-8") as f:
            videos = json.load(f)
        if not isinstance(videos, list):
            raise EvalInputError(f"{videos_path}: expected a json list of per-video dicts")
    data = SplitData(np.load(embeds_path), np.load(label_path), list(videos), name or split)
    return data.validate()
