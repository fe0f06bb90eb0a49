"""Check all the data a run will read before its first step, in seconds.

`validate_dataset` lists every split the run touches, reads each video's frame count (container
metadata, no decoding), loads label.pickle and checks them against each other. Whatever the
released loader accepts is accepted; what would give silently wrong results later (or crash after
hours) is refused now with a `DataError` naming the file or video and the fix.

Accepted, as by the released code (BYOV dataset/video_align_dataset.py):
- an ego and an exo video with the same file name: they share one label.pickle entry, so their
  frame counts must be equal;
- label -1 on background frames, kept: the released evaluation treats it as one more class id;
- phase ids stored as whole-number floats (1.0), read as integers;
- `.MP4` / `.Mp4` files, split csv files with a UTF-8 or UTF-16 byte-order mark, CRLF line ends,
  stray whitespace and blank lines (see `byov.data.layout.read_split_csv`).
Refused:
- phase ids that are not 0..K-1 with every id used (e.g. 1-based ids 1..K), ignoring -1, or ids
  below -1; the message lists what was found and what is expected;
- a label count that differs from the frame count (the message gives both and which is which);
- a damaged label.pickle: unreadable or truncated, not a dict, or values that are not 1-D
  sequences of integer ids;
- a video with fewer than 2 frames (BYOV and AE2 sample frames 1..L-1 and merge tokens of
  neighbouring frames);
- a frame-cache folder that cannot be written when a video's cache must still be built.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from byov.data.layout import (LABEL_FILE, DataError, Video, check_labels, dataset_path,
                              list_videos, load_labels)

MIN_FRAMES = 2


def check_label_ids(labels: Mapping[str, np.ndarray], path: str = LABEL_FILE) -> list[int]:
    """The phase ids 0..K-1 of a whole label.pickle (background -1 excluded), checked.

    Args:
        labels: label.pickle as `load_labels` returns it (name -> (L,) int64).
        path: the label file, for messages.
    Returns:
        [0, 1, ..., K-1].
    Raises:
        DataError: ids below -1; no ids at all; ids that are not exactly 0..K-1 (1-based ids
            1..K, or gaps), naming what was found, what is expected and the fix.
    """
    values = [np.unique(v) for v in labels.values() if len(v)]
    found = np.unique(np.concatenate(values)) if values else np.zeros(0, np.int64)
    below = found[found < -1]
    if below.size:
        names = [n for n, v in labels.items() if np.any(v < -1)]
        raise DataError(f"label file {path}: phase ids {below.tolist()} are below -1 (in "
                        f"{_names(names)}); ids must be 0..K-1, with -1 only for background "
                        f"frames")
    ids = found[found >= 0]
    if ids.size == 0:
        raise DataError(f"label file {path} has no phase ids >= 0 (every frame is -1 or there are "
                        f"no labels); label each frame with its phase 0..K-1")
    k = int(ids.max()) + 1
    if ids.size == k:
        return ids.tolist()
    shown = _ids(ids)
    if ids[0] == 1 and int(ids.max()) == ids.size:
        raise DataError(f"label file {path}: phase ids are 1-based ({shown}); byov, like the "
                        f"released evaluation, needs 0-based ids 0..{ids.size - 1} (K = "
                        f"{ids.size} phases; it uses K = max id + 1). Subtract 1 from every id "
                        f"(leave -1 background labels as they are)")
    missing = sorted(set(range(k)) - set(ids.tolist()))
    raise DataError(f"label file {path}: phase ids are {shown}, but they must be 0..K-1 with "
                    f"every id used (K = max id + 1 = {k} here; ids {_ids(missing)} are never "
                    f"used). Renumber the phases to 0..{ids.size - 1}")


def _ids(ids: Iterable[int]) -> str:
    ids = [int(i) for i in ids]
    return ", ".join(map(str, ids)) if len(ids) <= 12 else \
        ", ".join(map(str, ids[:12])) + f", ... ({len(ids)} ids)"


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more"
                                                     if len(names) > 5 else "")


def check_shared_names(videos: Iterable[Video]) -> None:
    """Videos sharing a file name share one label.pickle entry, so they must have equal frame
    counts (an ego and an exo video named alike are fine, as released).

    Raises:
        DataError: naming both videos and their frame counts.
    """
    first: dict[str, Video] = {}
    for video in videos:
        other = first.setdefault(video.name, video)
        if other.num_frames != video.num_frames and other.path != video.path:
            raise DataError(f"videos {other.path} ({other.num_frames} frames) and {video.path} "
                            f"({video.num_frames} frames) share the name {video.name!r}, so "
                            f"label.pickle gives them one entry, but their frame counts "
                            f"differ; rename one of them and give it its own labels")


def check_min_frames(videos: Iterable[Video], min_frames: int = MIN_FRAMES) -> None:
    """Raise DataError naming the first video with fewer than `min_frames` frames."""
    for video in videos:
        if video.num_frames < min_frames:
            raise DataError(f"video {video.path} has {video.num_frames} frame"
                            f"{'s' if video.num_frames != 1 else ''} (CAP_PROP_FRAME_COUNT); "
                            f"BYOV and AE2 need at least {min_frames} per video (training "
                            f"samples frames 1..L-1 and token merging compares neighbouring "
                            f"frames). Remove it from the split or replace it")


def _writable(folder: str) -> bool:
    """True when files can be created in `folder`, or it can be created: its nearest existing
    ancestor is a writable folder (a file in the way makes it False)."""
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def check_frame_cache_folders(videos: Iterable[Video], dataset_root: str, dataset: str,
                              frame_cache_dir: str = "") -> int:
    """Raise DataError when a video without a usable frame cache cannot have one written.

    Opens the existing caches (metadata only, `is_valid_cache`, with the videos' fingerprints);
    decodes nothing. Returns the number of caches still to build.
    """
    from byov.data.fingerprint import file_fingerprint
    from byov.data.frame_cache import frame_cache_path, is_valid_cache

    todo, checked = 0, set()
    for video in videos:
        path = frame_cache_path(video, dataset_root, dataset, frame_cache_dir)
        if is_valid_cache(path, video.num_frames, file_fingerprint(video.path)):
            continue
        todo += 1
        folder = os.path.dirname(path)
        if folder in checked:
            continue
        checked.add(folder)
        if not _writable(folder):
            where = ("next to the videos, as released" if not frame_cache_dir
                     else f"under --frame_cache_dir {frame_cache_dir}")
            raise DataError(f"the frame cache of {video.path} must be written to {path} "
                            f"({where}), but {folder} is not writable; make it writable or pass "
                            f"--frame_cache_dir DIR (a writable folder; the dataset's folder "
                            f"structure is mirrored there)")
    return todo


def validate_dataset(dataset_root: str, dataset: str, splits: Sequence[str],
                     frame_cache_dir: str | None = "") -> dict[str, list[Video]]:
    """Check every split the run reads and return its videos (`load_validated` without the
    labels); see there."""
    return load_validated(dataset_root, dataset, splits, frame_cache_dir)[0]


def load_validated(dataset_root: str, dataset: str, splits: Sequence[str],
                   frame_cache_dir: str | None = "") -> tuple[dict[str, list[Video]], dict]:
    """Check every split the run reads, before anything is decoded; return its videos and the
    labels that were checked (label.pickle is read once).

    Args:
        dataset_root, dataset: where the data is (`<dataset_root>/<dataset>`).
        splits: the splits the run touches (e.g. ("train", "val") for training with validation).
        frame_cache_dir: where h5 frame caches go ("" = next to the videos, as released); None
            skips the frame-cache check (runs that read a feature cache instead).
    Returns:
        ({split: videos in the released order (`list_videos`)}, the same records `list_videos`
        gives, so callers need not list again; {video name: (L,) int64 phase ids}).
    Raises:
        DataError: the first problem found (module docstring), naming the file or video and
            the fix. The order of checks: split lists and videos (with their frame counts),
            label.pickle, phase ids, videos sharing a name, frames per video, labels per video,
            frame-cache folders.
    """
    splits = tuple(dict.fromkeys(splits))
    if not splits:
        raise ValueError("load_validated needs at least one split")
    if dataset == "charades_ego":  # labels: {video id: (K,) multi-hot video-level target}
        from byov.data.charades_ego import load_charades_ego
        data = load_charades_ego(dataset_root, splits)
        if frame_cache_dir is not None:
            check_frame_cache_folders([v for s in splits for v in data.videos[s]], dataset_root,
                                      dataset, frame_cache_dir)
        return data.videos, data.targets()
    videos = {split: list_videos(dataset_root, dataset, split) for split in splits}
    labels = load_labels(dataset_root, dataset)
    label_path = os.path.join(dataset_path(dataset_root, dataset), LABEL_FILE)
    check_label_ids(labels, label_path)
    every = [v for split in splits for v in videos[split]]
    check_shared_names(every)
    check_min_frames(every)
    check_labels(every, labels)
    if frame_cache_dir is not None:
        check_frame_cache_folders(every, dataset_root, dataset, frame_cache_dir)
    return videos, labels
