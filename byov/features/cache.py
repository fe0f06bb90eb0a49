"""Per-video feature arrays on disk: layout, an atomic writer, lazy memory-mapped readers (docs/design.md#feature-cache).

Layout of a cache folder (default `<dataset_root>/byov_cache/<dataset>/<backbone>_<input_size>/`):

    <kind>/manifest.json                    what the features were computed with (manifest.py)
    <kind>/<split>/<view>/<name>.npy        tokens (L, N, d) or merged (L, d), fp16 or fp32
    <kind>/<split>/<view>/<name>.json       done marker: the video's fingerprint and L

`kind` is `tokens` (the exact cache: patch tokens, merged at training time over the sampled frames
as on the fly) or `merged` (STM over adjacent frames, what evaluation uses). An array reaches its
final name only once complete (temp file + rename) and its marker is written after it, so a video
without a marker is unfinished. The marker records the video's content fingerprint
(`byov.data.fingerprint.file_fingerprint`: size + hashed blocks, no mtime), so a copy of the
dataset and its cache (`cp -r`, new mtimes, new paths) stays valid, while a re-encoded or replaced
video makes its entry stale: reading it is refused, and `ensure_feature_cache` recomputes it.
"""
from __future__ import annotations

import errno
import json
import os
import uuid
from typing import Callable, Sequence

import numpy as np
import torch

from byov.atomic import remove_orphan_temps
from byov.features.manifest import (DTYPES, KINDS, FeatureCacheError, expected_manifest,
                                    open_manifest, write_json_atomic)

_MAX_OPEN = 256  # memory maps kept open per process (each holds a file descriptor)
_EXPECTED: dict[tuple, dict] = {}  # per-process memo of expected manifests (one backbone build)


def entry_paths(cache_dir: str, kind: str, video) -> tuple[str, str]:
    """(array .npy, done marker .json) of one video."""
    stem = os.path.join(cache_dir, kind, video.split, video.view, video.name)
    return stem + ".npy", stem + ".json"


def video_stamp(video) -> dict:
    """What identifies the video a cache entry was computed from: its content fingerprint and L
    (not its path or mtime, so a copied dataset keeps its cache)."""
    from byov.data.fingerprint import file_fingerprint

    return {"fingerprint": file_fingerprint(video.path), "num_frames": int(video.num_frames)}


def _extract_cmd(kind: str, split: str) -> str:
    return (f"`python -m byov.features extract --config <your config> --splits {split} "
            f"--kind {kind}`")


def entry_state(cache_dir: str, kind: str, video, shape: tuple, dtype: np.dtype,
                stale: str = "raise") -> str:
    """'done' when the video's array is complete and current, 'todo' when it is absent/unfinished.

    stale: what a finished entry of an older version of the video (its fingerprint or frame count
    differs from the marker) is: "raise" (a FeatureCacheError naming the video; readers) or
    "todo" (to be recomputed; `ensure_feature_cache`).
    Raises FeatureCacheError when the array is damaged, or stale with stale="raise".
    """
    if stale not in ("raise", "todo"):
        raise ValueError(f"stale must be 'raise' or 'todo', got {stale!r}")
    npy, marker = entry_paths(cache_dir, kind, video)
    if not (os.path.isfile(marker) and os.path.isfile(npy)):
        return "todo"
    try:
        with open(marker, encoding="utf-8") as f:
            done = json.load(f)
    except (OSError, ValueError):
        return "todo"  # markers are written atomically: an unreadable one was never finished
    if not isinstance(done, dict):
        return "todo"
    now = video_stamp(video)
    changed = [f"{key} {done.get(key)} -> {now[key]}" for key in now if done.get(key) != now[key]]
    if changed:
        if stale == "todo":
            return "todo"
        raise FeatureCacheError(
            f"video {video.path} changed since its {kind} features were extracted "
            f"({', '.join(changed)}): the cached features are stale. Re-extract them with "
            f"{_extract_cmd(kind, video.split)} (or delete {npy} and {marker})")
    try:
        arr = np.load(npy, mmap_mode="r")
        ok = arr.shape == tuple(shape) and arr.dtype == dtype
    except (OSError, ValueError) as e:
        ok, why = False, f"unreadable: {e}"
    else:
        why = f"holds {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {tuple(shape)}"
    if not ok:
        raise FeatureCacheError(f"cached {kind} features {npy} are damaged ({why}); delete it and "
                                f"{marker}, then re-extract with {_extract_cmd(kind, video.split)}")
    return "done"


def _write_bytes(f, data) -> None:
    f.write(data)


class ArrayWriter:
    """Write one (L, ...) .npy row block by row block into a temp file; `commit` renames it.

    Sequential file writes (not a memory map), so a full disk raises ENOSPC here instead of
    killing the process. Until `commit` nothing exists at the final name.
    """

    def __init__(self, path: str, shape: tuple, dtype: np.dtype):
        self.path, self.shape, self.dtype = path, tuple(int(s) for s in shape), np.dtype(dtype)
        self.rows = 0
        remove_orphan_temps(path)  # what a killed extraction left behind for this entry
        self.tmp = f"{path}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._f = None
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._f = open(self.tmp, "xb")
            np.lib.format.write_array_header_1_0(self._f, {
                "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                "shape": self.shape})
        except OSError as e:
            self.abort()
            raise write_error(e, self.tmp) from e

    def append(self, rows: np.ndarray) -> None:
        """rows (n, *shape[1:]) in any float dtype, cast to the writer's dtype."""
        if tuple(rows.shape[1:]) != self.shape[1:] or self.rows + len(rows) > self.shape[0]:
            raise ValueError(f"{self.path}: rows {tuple(rows.shape)} do not fit the remaining "
                             f"{self.shape[0] - self.rows} rows of {self.shape}")
        try:
            _write_bytes(self._f, np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        except OSError as e:
            raise write_error(e, self.tmp) from e
        self.rows += len(rows)

    def commit(self, marker_path: str, marker: dict) -> None:
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows} of {self.shape[0]} rows written")
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            os.replace(self.tmp, self.path)
            write_json_atomic(marker_path, marker)
        except OSError as e:
            raise write_error(e, self.path) from e
        finally:
            self.abort()

    def abort(self) -> None:
        """Close and delete the temp file (a no-op after commit)."""
        if self._f is not None and not self._f.closed:
            self._f.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def write_error(e: OSError, path: str) -> FeatureCacheError:
    folder = os.path.dirname(path)
    if e.errno == errno.ENOSPC:
        return FeatureCacheError(
            f"disk full while writing {path} ({e.strerror}); the unfinished file was removed and "
            f"finished videos are kept. Free space on {folder} (or pass --feature_cache_dir on a "
            f"larger disk) and rerun: extraction resumes where it stopped")
    return FeatureCacheError(f"cannot write the feature cache file {path} ({e.strerror or e}); "
                             f"make {folder} writable or pass --feature_cache_dir DIR")


def check_writable(cache_dir: str) -> None:
    """Raise FeatureCacheError unless files can be created in `cache_dir` (created if absent)."""
    probe = os.path.join(cache_dir, f".write_test.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(cache_dir, exist_ok=True)
        open(probe, "xb").close()
        os.remove(probe)
    except OSError as e:
        raise FeatureCacheError(f"cannot write the feature cache into {cache_dir} "
                                f"({e.strerror or e}); make it writable or pass "
                                f"--feature_cache_dir DIR") from e


class FeatureSource:
    """Cached features of videos; the token / merged counterpart of `data.FrameSource`.

    Holds only the folder and the manifest; memory maps are opened lazily in each process (and
    never pickled), so it can go into DataLoader workers.
    """

    def __init__(self, cache_dir: str, manifest: dict):
        self.cache_dir, self.manifest = cache_dir, manifest
        self.kind = manifest["kind"]
        self.layout = tuple(manifest["token_layout"])  # (N, d) tokens or (d,) merged
        self.dtype = np.dtype(manifest["dtype"])
        self._arrays: dict[str, np.ndarray] = {}

    def __getstate__(self):
        return {**self.__dict__, "_arrays": {}}

    def array(self, video) -> np.ndarray:
        """The video's read-only memory map, (L, N, d) or (L, d); checked on first use."""
        arr = self._arrays.get(video.path)
        if arr is None:
            shape = (video.num_frames, *self.layout)
            if entry_state(self.cache_dir, self.kind, video, shape, self.dtype) != "done":
                raise FeatureCacheError(
                    f"no cached {self.kind} features for video {video.path} in {self.cache_dir} "
                    f"(expected {entry_paths(self.cache_dir, self.kind, video)[0]}); extract "
                    f"them with {_extract_cmd(self.kind, video.split)}")
            if len(self._arrays) >= _MAX_OPEN:
                self._arrays.clear()
            arr = self._arrays[video.path] = np.load(
                entry_paths(self.cache_dir, self.kind, video)[0], mmap_mode="r")
        return arr

    def load(self, video, indices: np.ndarray) -> torch.Tensor:
        """Frames `indices` (any order, repeats allowed) -> (T, N, d) or (T, d) float32."""
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.array(self.array(video)[idx], dtype=np.float32))


def _path_stamp(path: str) -> tuple:
    """(name, size, mtime) of a weights file or of a weights folder's files: new weights at the
    same path must not hit the memo."""
    if os.path.isfile(path):
        st = os.stat(path)
        return ((path, st.st_size, st.st_mtime_ns),)
    if path and os.path.isdir(path):
        return tuple((f, os.stat(os.path.join(path, f)).st_size,
                      os.stat(os.path.join(path, f)).st_mtime_ns) for f in sorted(os.listdir(path)))
    return ()


def expected_for_spec(spec, kind: str, frame_encoder=None) -> dict:
    """The manifest a run with `byov.spec.FeatureCacheSpec` `spec` needs for `kind`. Without
    `frame_encoder` the backbone is built once per process (RNG state preserved, so seeded runs
    do not shift) and only its identity kept."""
    from byov.models.backbones import frame_encoder_from_spec

    require_frozen(spec, "pass --freeze_base or use --features fly")
    enc = spec.encoder
    key = (enc.backbone, enc.weights, _path_stamp(enc.weights), enc.input_size, enc.resnet_stage,
           kind, spec.dtype, spec.merge.topk_ratio, spec.merge.num_tokens)
    if frame_encoder is None and key in _EXPECTED:
        return _EXPECTED[key]
    if frame_encoder is None:
        with torch.random.fork_rng(devices=[]):
            frame_encoder = frame_encoder_from_spec(enc)
    k = spec.merge.tokens_to_keep(frame_encoder.num_patches) if kind == "merged" else None
    # compute=None: a reader accepts the cache's own extraction precision (fp32 or bf16)
    _EXPECTED[key] = expected_manifest(frame_encoder, kind, spec.dtype, k, compute=None)
    return _EXPECTED[key]


def require_frozen(spec, fix: str) -> None:
    """Raise FeatureCacheError (ending in `fix`) unless the `FeatureCacheSpec`'s backbone is
    frozen: only frozen features can be cached."""
    if not spec.encoder.freeze:
        raise FeatureCacheError(f"a feature cache needs a frozen backbone, but freeze_base is off; "
                                f"{fix}")


def cache_kind(spec) -> str:
    """The cache kind a `FeatureCacheSpec` reads (tokens | merged); ValueError for `fly`."""
    if spec.kind not in KINDS:
        raise ValueError(f"features is {spec.kind!r}: no feature cache is read; "
                         f"use --features tokens or --features merged")
    if spec.dtype not in DTYPES:
        raise ValueError(f"feature_dtype must be one of {', '.join(DTYPES)}; got {spec.dtype!r}")
    return spec.kind


def feature_source(spec, frame_encoder=None) -> FeatureSource:
    """The training/evaluation source of a `FeatureCacheSpec` (tokens | merged), manifest checked.

    load(video, indices) -> (T, N, d) float32 tokens, or (T, d) merged features.
    """
    kind = cache_kind(spec)
    manifest = open_manifest(spec.cache_dir, expected_for_spec(spec, kind, frame_encoder))
    return FeatureSource(spec.cache_dir, manifest)


def verify_cache(spec, videos: Sequence, frame_encoder=None) -> None:
    """Raise FeatureCacheError unless the cache of `FeatureCacheSpec` `spec` fits the run and
    holds every video, current."""
    source = feature_source(spec, frame_encoder)
    missing = [v for v in videos if entry_state(source.cache_dir, source.kind, v,
                                                (v.num_frames, *source.layout),
                                                source.dtype) != "done"]
    if missing:
        splits = ",".join(sorted({v.split for v in missing}))
        raise FeatureCacheError(
            f"the {source.kind} feature cache {source.cache_dir} lacks {len(missing)} of "
            f"{len(videos)} videos (first: {missing[0].path}); extract them with "
            f"{_extract_cmd(source.kind, splits)}")


class CachedMergedFeatures:
    """callable(video index) -> (L, d) float32 merged features of whole videos, from a cache.

    A merged cache is read as is; a token cache is merged over adjacent frames chunk by chunk
    (`merge_video_tokens`), exactly what the evaluation does on the fly.
    """

    def __init__(self, source: FeatureSource, videos: Sequence, k: int | None = None,
                 chunk_size: int = 64):
        if source.kind == "tokens" and not k:
            raise ValueError("merging cached tokens needs k, the tokens kept per frame")
        self.source, self.videos, self.k, self.chunk_size = source, list(videos), k, chunk_size

    def __call__(self, i: int) -> torch.Tensor:
        from byov.models.stm import merge_video_tokens

        video = self.videos[i]
        arr = self.source.array(video)
        if self.source.kind == "merged":
            return torch.from_numpy(np.array(arr, dtype=np.float32))  # a copy, not the map
        chunks = (torch.from_numpy(np.array(arr[s:s + self.chunk_size], dtype=np.float32))
                  for s in range(0, len(arr), self.chunk_size))
        return merge_video_tokens(chunks, self.k)


def merged_features(spec, split: str, frame_encoder=None,
                    videos: Sequence | None = None) -> Callable[[int], torch.Tensor]:
    """For evaluation: callable(video index of `split`, in list_videos order) -> (L, d) float32,
    from the cache of `FeatureCacheSpec` `spec`."""
    from byov.data.layout import list_videos

    if videos is None:
        videos = list_videos(spec.data.root, spec.data.dataset, split)
    source = feature_source(spec, frame_encoder)
    k = spec.merge.tokens_to_keep(source.layout[0]) if source.kind == "tokens" else None
    return CachedMergedFeatures(source, videos, k, spec.chunk_size)
