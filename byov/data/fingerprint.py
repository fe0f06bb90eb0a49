"""Content fingerprints of videos and datasets, for cache keys that survive `cp -r` but not edits.

A copy (`cp -r`, a new machine, a new absolute path) gets new mtimes but the same bytes, and a
re-encoded or repaired video can keep its size and its frame count. A fingerprint therefore
hashes the whole content:

- `file_fingerprint(path)`: the size plus a BLAKE2b hash of every byte, streamed in 1 MiB blocks.
  It is computed once per file version and remembered in a persistent memo
  (`byov.data.hash_memo`) keyed by real path, inode, size, mtime and ctime, so later runs read
  nothing; any of those changing (an edit in place, a replaced file, a copy) hashes it again.
  Two files have the same fingerprint iff they have the same bytes (up to BLAKE2b collisions),
  so a same-size edit anywhere in the file changes it and a copy keeps it.
- `data_fingerprint(dataset_root, dataset, splits)`: label.pickle (whole content), the split
  lists (csv bytes, or the folder listing) and each listed video's file fingerprint, keyed by
  paths relative to the dataset folder, so it identifies the data a run used.
"""
from __future__ import annotations

import hashlib
import os
from typing import Iterable, Sequence

from byov.data.hash_memo import memoized
from byov.data.layout import (LABEL_FILE, VIEWS, DataError, Video, dataset_path, detect_layout,
                              list_videos)

BLOCK = 1 << 20  # bytes read at a time while hashing
DIGEST_SIZE = 16  # bytes of BLAKE2b output (128 bits)


def _stream(f, h) -> None:
    for block in iter(lambda: f.read(BLOCK), b""):
        h.update(block)


def _fingerprint_of(f) -> str:
    size = os.fstat(f.fileno()).st_size
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    h.update(size.to_bytes(8, "little"))
    _stream(f, h)
    return f"{size}:{h.hexdigest()}"


def _hash_of(f) -> str:
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    _stream(f, h)
    return h.hexdigest()


def file_fingerprint(path: str) -> str:
    """'<size>:<blake2b hex>' of the file at `path`: its size and a hash of all its bytes.

    Independent of the path, the mtime and the permissions. Computed once per file version and
    remembered (`byov.data.hash_memo`, keyed by real path, inode, size, mtime and ctime).

    Raises:
        DataError: the file does not exist or cannot be read.
    """
    try:
        return memoized(path, "file_fingerprint", _fingerprint_of)
    except OSError as e:
        raise DataError(f"cannot read {path} to fingerprint it ({e.strerror or e}); check that "
                        f"the file exists and is readable") from e


def content_hash(path: str) -> str:
    """BLAKE2b hex digest of the whole file at `path` (label.pickle, split lists), memoized as
    `file_fingerprint` is.

    Raises:
        DataError: the file does not exist or cannot be read.
    """
    try:
        return memoized(path, "content_hash", _hash_of)
    except OSError as e:
        raise DataError(f"cannot read {path} to fingerprint it ({e.strerror or e}); check that "
                        f"the file exists and is readable") from e


def _relative(path: str, data_path: str) -> str:
    rel = os.path.relpath(os.path.abspath(path), data_path)
    return rel.replace(os.sep, "/")


def split_list_files(data_path: str, layout: str, splits: Iterable[str]) -> list[str]:
    """The csv files that define `splits` (csv layout); [] for the folder layout."""
    if layout != "csv":
        return []
    return [os.path.join(data_path, view, f"{split}.csv") for split in splits for view in VIEWS]


def data_fingerprint(dataset_root: str, dataset: str, splits: Sequence[str],
                     videos: dict[str, Sequence[Video]] | None = None) -> str:
    """'blake2b:<hex>' identifying the data of `splits` of `dataset` under `dataset_root`.

    Covers the dataset name and layout, label.pickle's full content, the split lists (each csv
    file's bytes in the csv layout; the listed videos' relative paths in both layouts) and every
    listed video's `file_fingerprint`. Paths enter relative to `<dataset_root>/<dataset>`, so a
    copy of the dataset anywhere gives the same value; a changed label, split line or video
    changes it.

    Args:
        videos: {split: videos} already listed by `list_videos` (e.g. from `validate_dataset`),
            to avoid listing them again; None lists them here.
    Raises:
        DataError: a missing dataset, split list, label file or video (as `list_videos`).
    """
    data_path = dataset_path(dataset_root, dataset)
    layout = detect_layout(data_path, dataset)
    listed = {split: (videos[split] if videos is not None
                      else list_videos(dataset_root, dataset, split)) for split in splits}
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)

    def add(*parts: str) -> None:
        for part in parts:
            h.update(part.encode("utf-8") + b"\0")

    if dataset == "charades_ego":  # the class file and csv files instead of label.pickle
        from byov.data.charades_ego import split_files
        add("dataset", dataset, "layout", layout)
        for path in split_files(dataset_root, splits):
            add(_relative(path, data_path), content_hash(path))
        _add_videos(add, listed, splits, data_path)
        return "blake2b:" + h.hexdigest()
    label_path = os.path.join(data_path, LABEL_FILE)
    if not os.path.isfile(label_path):
        raise DataError(f"label file {label_path} is missing; it must be the dataset's "
                        f"label.pickle")
    add("dataset", dataset, "layout", layout, LABEL_FILE, content_hash(label_path))
    for csv_path in split_list_files(data_path, layout, splits):
        add("split list", _relative(csv_path, data_path), content_hash(csv_path))
    _add_videos(add, listed, splits, data_path)
    return "blake2b:" + h.hexdigest()


def _add_videos(add, listed: dict, splits: Sequence[str], data_path: str) -> None:
    for split in splits:
        add("split", split, str(len(listed[split])))
        for video in listed[split]:
            add(_relative(video.path, data_path), str(video.num_frames),
                file_fingerprint(video.path))
