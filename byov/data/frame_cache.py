"""The h5 frame cache in the released format, written atomically, validated, kept current.

One file per video with one dataset `images`: uint8, shape (n, 256, 256, 3), BGR, contiguous,
uncompressed, as the released AE2/BYOV code writes it, so released caches are reused as they are.
Caches written here hold n = L frames (the video's frame count; the released code stores every
decoded frame, and no reader uses those beyond L), decoded and written `WRITE_CHUNK` frames at a
time so a long video is never held whole in memory, and carry the root attribute
`byov_source_fingerprint`: the `file_fingerprint` of the video they were decoded from (released
readers ignore attributes).

When a cache is used (`is_valid_cache`):
- it must open and hold `images` of uint8 (n, 256, 256, 3) with n >= L, the video's frame count;
- the stored bytes must exist: a contiguous dataset must have all its storage allocated and inside
  the file (a file cut short by a killed writer fails), a chunked one (a foreign extractor's) must
  have every chunk that covers frames 0..L-1 allocated, because unwritten chunks read back as
  zeros;
- when it carries `byov_source_fingerprint`, that must equal the video's current fingerprint, so a
  re-encoded or replaced video (even with the same frame count) gets its cache rebuilt;
- a cache without the attribute (released, or another tool's) cannot be tied to a video version
  and is reused when the checks above pass: delete it after changing its video.
Anything else is rebuilt atomically (temp file, then rename).
"""
from __future__ import annotations

import math
import os
import uuid

import h5py
import numpy as np

from byov.atomic import remove_orphan_temps
from byov.data.fingerprint import file_fingerprint
from byov.data.layout import DataError, Video, dataset_path
from byov.data.video import iter_frames

CACHE_SIZE = 256
DATASET_KEY = "images"
FINGERPRINT_ATTR = "byov_source_fingerprint"


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


def _chunks_cover(ds: h5py.Dataset, num_frames: int) -> bool:
    """True when every chunk of the chunked dataset `ds` that holds one of frames 0..L-1 is
    allocated in the file (unallocated chunks read back as the fill value, zeros)."""
    grid = [math.ceil(s / c) for s, c in zip(ds.shape, ds.chunks)]
    rows = math.ceil(num_frames / ds.chunks[0])
    needed = rows * math.prod(grid[1:])
    allocated = ds.id.get_num_chunks()
    if allocated == math.prod(grid):
        return True
    if allocated < needed:
        return False
    present: set[tuple] = set()
    if hasattr(ds.id, "chunk_iter"):  # one pass over the chunk index (HDF5 >= 1.12.3)
        ds.id.chunk_iter(lambda info: present.add(tuple(info.chunk_offset)))
    else:
        for i in range(allocated):
            present.add(tuple(ds.id.get_chunk_info(i).chunk_offset))
    for index in np.ndindex(rows, *grid[1:]):
        if tuple(int(k) * c for k, c in zip(index, ds.chunks)) not in present:
            return False
    return True


def _storage_complete(ds: h5py.Dataset, num_frames: int, file_size: int) -> bool:
    if ds.chunks is not None:
        return _chunks_cover(ds, num_frames)
    offset = ds.id.get_offset()  # None: never written, or stored outside this file
    return (offset is not None and ds.id.get_storage_size() >= ds.size
            and offset + ds.size <= file_size)


def is_valid_cache(path: str, num_frames: int, source_fingerprint: str | None = None) -> bool:
    """True iff the h5 at `path` can serve the L = `num_frames` frames of its video.

    Checks (module docstring): `images` uint8 (n, 256, 256, 3) with n >= L, its storage fully
    allocated for frames 0..L-1 and inside the file, and, when both `source_fingerprint` (the
    video's `file_fingerprint`) and the file's `byov_source_fingerprint` attribute are present,
    that they are equal. Never raises for a bad file: it returns False.
    """
    if not os.path.isfile(path):
        return False
    try:
        file_size = os.path.getsize(path)
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
            if not _storage_complete(ds, num_frames, file_size):
                return False
            stamp = f.attrs.get(FINGERPRINT_ATTR)
            if source_fingerprint is not None and stamp is not None:
                if isinstance(stamp, bytes):
                    stamp = stamp.decode("utf-8", "replace")
                if str(stamp) != source_fingerprint:
                    return False
    except (OSError, KeyError, ValueError, RuntimeError, TypeError):
        return False  # unreadable or truncated h5: not a cache we can use
    return True


def ensure_frame_cache(video: Video, cache_path: str) -> str:
    """Return `cache_path`, decoding `video` into it first unless a valid, current cache is there.

    "Valid" is `is_valid_cache` with the video's current `file_fingerprint`. Anything else
    (missing, truncated, partly written, or decoded from an older version of the video) is
    replaced atomically: decoded into a temp file in the same folder, stamped with the video's
    fingerprint, then renamed, so an interrupted run never leaves a half-written cache behind.
    The video is only read.

    Raises:
        DataError: the folder is not writable, or the video decodes to fewer than L frames.
    """
    fingerprint = file_fingerprint(video.path)
    if is_valid_cache(cache_path, video.num_frames, fingerprint):
        return cache_path
    cache_dir = os.path.dirname(os.path.abspath(cache_path))
    hint = ("make it writable or pass --frame_cache_dir DIR to keep the frame caches in a "
            "writable folder")
    try:
        os.makedirs(cache_dir, exist_ok=True)
        # created here (umask permissions, unlike mkstemp's 0600) so an unwritable folder fails
        # before the decode
        remove_orphan_temps(cache_path)  # what a killed decode left behind for this video
        tmp = f"{cache_path}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        open(tmp, "xb").close()
    except OSError as e:
        raise DataError(f"cannot write the frame cache of {video.path} into {cache_dir} "
                        f"({e.strerror or e}); {hint}") from e
    try:
        try:
            with h5py.File(tmp, "w") as f:
                decoded = _write_frames(f, video)
                if decoded >= video.num_frames:
                    f.attrs[FINGERPRINT_ATTR] = fingerprint
        except OSError as e:
            raise DataError(f"cannot write the frame cache {cache_path} ({e}); {hint}") from e
        if decoded < video.num_frames:
            raise DataError(f"video {video.path} decodes to {decoded} frames but its "
                            f"container reports {video.num_frames} (CAP_PROP_FRAME_COUNT); "
                            f"re-encode the video (e.g. with ffmpeg) so the two agree")
        if file_fingerprint(video.path) != fingerprint:
            raise DataError(f"video {video.path} changed while its frame cache was being "
                            f"written; rerun once nothing writes to it")
        try:
            os.replace(tmp, cache_path)
        except OSError as e:
            raise DataError(f"cannot write the frame cache {cache_path} ({e}); {hint}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return cache_path


WRITE_CHUNK = 64  # frames decoded and written at a time: memory stays bounded for long videos


def _write_frames(f: h5py.File, video: Video) -> int:
    """Decode `video` into a contiguous uncompressed (L, 256, 256, 3) uint8 dataset of `f`
    (L = num_frames), WRITE_CHUNK frames at a time, so a long video never sits whole in memory.
    Frames decoded beyond L are counted, not stored (no reader uses them). Returns the number
    of frames decoded."""
    L = video.num_frames
    ds = f.create_dataset(DATASET_KEY, shape=(L, CACHE_SIZE, CACHE_SIZE, 3), dtype=np.uint8)
    buf = np.empty((WRITE_CHUNK, CACHE_SIZE, CACHE_SIZE, 3), np.uint8)
    decoded, filled = 0, 0
    for frame in iter_frames(video.path, CACHE_SIZE):
        if decoded < L:
            buf[filled] = frame
            filled += 1
            if filled == WRITE_CHUNK or decoded + 1 == L:
                ds[decoded + 1 - filled:decoded + 1] = buf[:filled]
                filled = 0
        decoded += 1
    if decoded == 0:
        raise DataError(f"video {video.path} decodes to no frames: it is empty or corrupt; "
                        f"replace it")
    return decoded


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
