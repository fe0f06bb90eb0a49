"""The h5 frame cache in the released format, written atomically and validated [DEC 10, 24].

One file per video with one dataset `images`: uint8, shape (n, 256, 256, 3), BGR, contiguous,
uncompressed. Caches written by the released AE2/BYOV code are therefore reused as they are.
"""
from __future__ import annotations

import os
import uuid

import h5py
import numpy as np

from byov.data.layout import DataError, Video, dataset_path
from byov.data.video import decode_frames

CACHE_SIZE = 256
DATASET_KEY = "images"


def frame_cache_path(video: Video, dataset_root: str, dataset: str,
                     frame_cache_dir: str = "") -> str:
    """Where the h5 cache of `video` lives.

    "" puts it next to the mp4 (`<video dir>/<name>.h5`, as released). Otherwise the video's path
    relative to the dataset folder is mirrored under `<frame_cache_dir>/<dataset>/`, so the data
    root may be read-only and one cache folder serves every dataset.
    """
    if not frame_cache_dir:
        return os.path.join(os.path.dirname(video.path), video.name + ".h5")
    data_path = dataset_path(dataset_root, dataset)
    rel = os.path.relpath(os.path.abspath(video.path), data_path)
    if rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        raise DataError(f"video {video.path} is not inside the dataset folder {data_path}; "
                        f"cannot mirror it under frame_cache_dir {frame_cache_dir}")
    return os.path.join(os.path.abspath(frame_cache_dir), dataset, os.path.splitext(rel)[0] + ".h5")


def is_valid_cache(path: str, num_frames: int) -> bool:
    """True iff `path` opens as h5 with `images` uint8 (n, 256, 256, 3), n >= num_frames [DEC 24].

    A contiguous dataset must also have all its bytes stored, which catches a file whose data was
    never (fully) written.
    """
    if not os.path.isfile(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            ds = f.get(DATASET_KEY)
            if not isinstance(ds, h5py.Dataset):
                return False
            if ds.dtype.kind != "u" or ds.dtype.itemsize != 1:
                return False
            if len(ds.shape) != 4 or ds.shape[1:] != (CACHE_SIZE, CACHE_SIZE, 3):
                return False
            if ds.shape[0] < num_frames:
                return False
            if ds.chunks is None and ds.id.get_storage_size() < ds.size:
                return False
    except (OSError, KeyError, ValueError, RuntimeError):
        return False  # unreadable or truncated h5: not a cache we can use
    return True


def ensure_frame_cache(video: Video, cache_path: str) -> str:
    """Return `cache_path`, decoding `video` into it first unless a valid cache is there.

    An invalid file at `cache_path` is replaced atomically (temp file in the same folder, then
    os.replace), so an interrupted run never leaves a half-written cache behind. The video is only
    read.
    """
    if is_valid_cache(cache_path, video.num_frames):
        return cache_path
    cache_dir = os.path.dirname(os.path.abspath(cache_path))
    hint = ("make it writable or pass --frame_cache_dir DIR to keep the frame caches in a "
            "writable folder")
    try:
        os.makedirs(cache_dir, exist_ok=True)
        # created here (umask permissions, unlike mkstemp's 0600) so an unwritable folder fails
        # before the decode
        tmp = f"{cache_path}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        open(tmp, "xb").close()
    except OSError as e:
        raise DataError(f"cannot write the frame cache of {video.path} into {cache_dir} "
                        f"({e.strerror or e}); {hint}") from e
    try:
        frames = decode_frames(video.path, CACHE_SIZE)
        if len(frames) < video.num_frames:
            raise DataError(f"video {video.path} decodes to {len(frames)} frames but its "
                            f"container reports {video.num_frames} (CAP_PROP_FRAME_COUNT); "
                            f"re-encode the video (e.g. with ffmpeg) so the two agree")
        try:
            with h5py.File(tmp, "w") as f:
                f.create_dataset(DATASET_KEY, data=frames)  # contiguous, uncompressed, as released
            os.replace(tmp, cache_path)
        except OSError as e:
            raise DataError(f"cannot write the frame cache {cache_path} ({e}); {hint}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return cache_path


def read_frames(cache_path: str, indices: np.ndarray) -> np.ndarray:
    """Frames `indices` of a cache -> (len(indices), 256, 256, 3) uint8 BGR, in the given order.

    Indices may repeat and come in any order (h5py itself needs increasing unique indices).
    """
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"indices must be a 1-D integer array, got dtype {idx.dtype} "
                         f"shape {idx.shape}")
    with h5py.File(cache_path, "r") as f:
        ds = f[DATASET_KEY]
        n = ds.shape[0]
        if idx.size == 0:
            return np.empty((0,) + ds.shape[1:], dtype=np.uint8)
        if idx.min() < 0 or idx.max() >= n:
            raise IndexError(f"frame indices {idx.min()}..{idx.max()} out of range for "
                             f"{cache_path} with {n} frames")
        uniq, inverse = np.unique(idx, return_inverse=True)
        if uniq[-1] - uniq[0] + 1 == len(uniq):  # a contiguous run: one slice read
            data = ds[int(uniq[0]):int(uniq[-1]) + 1]
        else:
            data = ds[uniq.tolist()]
    return np.ascontiguousarray(data[inverse.reshape(-1)], dtype=np.uint8)
