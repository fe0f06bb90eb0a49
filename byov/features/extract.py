"""One pass of the frozen backbone over every frame of every video -> the feature cache (docs/design.md#feature-cache).

DataLoader workers read and preprocess frames from the h5 frame caches (decoding an mp4 first when
its frame cache is missing), each worker taking whole videos in frame order, while the main process
runs the backbone on fixed-size batches of frames that span video boundaries. A video's arrays go
to temp files renamed into place once it is complete, then its done marker is written: a rerun
skips finished videos and redoes unfinished ones, and those whose video changed since (content
fingerprint). `ensure_feature_cache` is the same pass for the entries a training run lacks.

To keep a GPU busy (byov.features.pipeline, docs/gpu.md): loader batches are pinned and uploaded
without blocking, a writer thread does STM, conversion and file writes while the next batch runs,
and under torchrun each rank extracts its share of the videos into the one cache.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from byov.features.cache import (ArrayWriter, cache_kind, check_writable, entry_paths,
                                 entry_state, expected_for_spec, require_frozen, video_stamp)
from byov.features.manifest import (DTYPES, KINDS, FeatureCacheError, check_manifest,
                                    expected_manifest, found_compute, manifest_path,
                                    open_manifest, read_manifest)
from byov.models.stm import selective_token_merge


class _VideoPieces(IterableDataset):
    """Worker w of W yields videos w, w+W, ... as (video index, first frame, pixels (n, 3, S, S)),
    `piece` frames at a time and in frame order (the DataLoader keeps each worker's order)."""

    def __init__(self, videos: Sequence, source, piece: int):
        self.videos, self.source, self.piece = list(videos), source, piece

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        for vi in range(wid, len(self.videos), nw):
            video = self.videos[vi]
            for start in range(0, video.num_frames, self.piece):
                stop = min(start + self.piece, video.num_frames)
                yield vi, start, self.source.load(video, np.arange(start, stop, dtype=np.int64))


class StreamMerge:
    """STM over the adjacent frames of one video fed in pieces; the result equals
    `merge_video_tokens` (each frame is merged once its successor has arrived)."""

    def __init__(self, k: int):
        self.k = k
        self.held: torch.Tensor | None = None  # (1, N, d): newest frame, successor unknown
        self.pair: torch.Tensor | None = None  # (2, N, d): the last two frames seen

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (n, N, d) -> merged (m, d) for the frames now complete."""
        seq = tokens if self.held is None else torch.cat([self.held, tokens])
        self.held = seq[-1:]
        if seq.shape[0] < 2:
            return tokens.new_zeros((0, tokens.shape[-1]))
        self.pair = seq[-2:]
        return selective_token_merge(seq[None], self.k)[0, :-1]

    def finish(self) -> torch.Tensor:
        """(1, d): the last frame, which reuses the previous frame's score."""
        if self.pair is None:
            raise FeatureCacheError("a merged feature needs a video of at least 2 frames (STM "
                                    "compares neighbouring frames)")
        return selective_token_merge(self.pair[None], self.k)[0, -1:]


def _device(device: str | torch.device) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device; CUDA that is absent is refused here,
    before any file is written (byov.distributed.resolve_device)."""
    from byov.distributed import resolve_device

    return resolve_device(str(device))


class _Job:
    """Open writers (and the STM stream) of one video being extracted."""

    def __init__(self, video, kinds, cache_dir, shapes, dtype, k):
        self.video, self.filled, self.stamp = video, 0, video_stamp(video)
        self.writers: dict[str, ArrayWriter] = {}
        self.merge = StreamMerge(k) if "merged" in kinds else None
        try:
            for kind in kinds:
                self.writers[kind] = ArrayWriter(entry_paths(cache_dir, kind, video)[0],
                                                 shapes[kind], dtype)
        except BaseException:
            self.abort()
            raise

    def add(self, start: int, tokens: torch.Tensor) -> bool:
        """tokens (n, N, d) float32 of frames start..start+n-1; True when the video is done."""
        if start != self.filled:
            raise RuntimeError(f"{self.video.path}: frames arrived out of order ({start} after "
                               f"{self.filled})")
        if "tokens" in self.writers:
            self.writers["tokens"].append(tokens.numpy())
        if self.merge is not None:
            self.writers["merged"].append(self.merge.push(tokens).numpy())
        self.filled += tokens.shape[0]
        return self.filled == self.video.num_frames

    def commit(self, cache_dir: str) -> None:
        if self.merge is not None:
            try:
                last = self.merge.finish()
            except FeatureCacheError as e:
                raise FeatureCacheError(f"video {self.video.path}: {e}") from None
            self.writers["merged"].append(last.numpy())
        for kind, writer in self.writers.items():
            marker = {"video": self.video.path, **self.stamp, "shape": list(writer.shape),
                      "dtype": writer.dtype.name}
            writer.commit(entry_paths(cache_dir, kind, self.video)[1], marker)
        self.writers = {}

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def extract_videos(videos: Sequence, source, frame_encoder, cache_dir: str,
                   kinds: Sequence[str] = KINDS, dtype: str = "fp16", k: int | None = None,
                   batch_size: int = 64, num_workers: int = 2,
                   device: str | torch.device = "cpu", progress: bool = True, *,
                   precision: str = "fp32", channels_last: bool = False, compile: bool = False,
                   shard: tuple[int, int] = (0, 1)) -> dict:
    """Cache the features of `videos` (Video records) under `cache_dir`.

    Args:
        source: gives pixels, `.load(video, indices) -> (n, 3, S, S)` (a `data.FrameSource`).
        frame_encoder: the frozen FrameEncoder (moved to `device`).
        kinds: "tokens" and/or "merged". dtype: fp16 | fp32 on disk.
        k: tokens kept per frame by STM (needed for "merged").
        batch_size: frames per backbone forward (batches span video boundaries).
        num_workers: DataLoader processes that read and preprocess frames (pinned on CUDA).
        precision: backbone compute, "fp32" (released numerics) or "bf16" (autocast); recorded
            in the manifest as `compute`, so one cache never mixes the two.
        channels_last, compile: see `pipeline.BackendForward`.
        shard: (rank, world_size): this process extracts `pipeline.shard_videos`' share of
            `videos`. With world_size > 1 a torch.distributed group must be initialised: rank 0
            writes the manifests, the others check them after a barrier; every rank writes its
            own entries (temp file + rename, then the done marker), so they never collide.
    Returns:
        {"videos", "skipped", "frames", "seconds", "frames_per_s", "cache_dir"} of this rank.
    Raises:
        FeatureCacheError: manifest mismatch, damaged entry, unwritable folder or full disk.
    """
    from byov import distributed as D
    from byov.features.pipeline import BackendForward, BackgroundWriter, shard_videos

    kinds = tuple(dict.fromkeys(kinds))
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}; got {kinds}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rank, world_size = shard
    device = _device(device)
    check_writable(cache_dir)
    expected = {kind: expected_manifest(frame_encoder, kind, dtype, k, compute=precision)
                for kind in kinds}
    if rank == 0:
        for kind in kinds:
            open_manifest(cache_dir, expected[kind], create=True)
    if world_size > 1:
        D.barrier()  # the manifests exist before any rank reads them or writes an entry
        for kind in kinds:
            open_manifest(cache_dir, expected[kind])
    videos = shard_videos(videos, rank, world_size)
    n, d, dt = frame_encoder.num_patches, frame_encoder.dim, DTYPES[dtype]
    layout = {"tokens": (n, d), "merged": (d,)}
    todo = []
    for video in videos:
        need = [kind for kind in kinds if entry_state(  # stale entries are recomputed
            cache_dir, kind, video, (video.num_frames, *layout[kind]), dt, stale="todo") == "todo"]
        if need:
            todo.append((video, need))
    total = sum(v.num_frames for v, _ in todo)
    stats = {"videos": len(todo), "skipped": len(videos) - len(todo), "frames": total,
             "cache_dir": cache_dir}
    frame_encoder = frame_encoder.to(device).eval()
    forward = BackendForward(frame_encoder, device, precision, channels_last, compile)
    loader = DataLoader(_VideoPieces([v for v, _ in todo], source, batch_size), batch_size=None,
                        num_workers=min(num_workers, len(todo)),
                        pin_memory=device.type == "cuda")
    jobs: dict[int, _Job] = {}  # touched by the writer thread only
    pending: deque = deque()  # (video index, start, pixels) not yet through the backbone
    bar = tqdm(total=total, unit="frame", desc="extract features", disable=not progress,
               smoothing=0.1)

    def write(segs: list, tokens: torch.Tensor, ready) -> None:
        ready()  # the device -> host copy has landed
        offset = 0
        for vi, start, m in segs:
            if vi not in jobs:
                video, need = todo[vi]
                jobs[vi] = _Job(video, need, cache_dir,
                                {kd: (video.num_frames, *layout[kd]) for kd in need}, dt, k)
            if jobs[vi].add(start, tokens[offset:offset + m]):
                jobs.pop(vi).commit(cache_dir)
            offset += m
        bar.update(offset)

    def run_batch(size: int, writer: BackgroundWriter) -> None:
        parts, segs = [], []
        while size:
            vi, start, x = pending.popleft()
            if len(x) > size:  # split the piece: the rest waits for the next batch
                pending.appendleft((vi, start + size, x[size:]))
                x = x[:size]
            parts.append(x)
            segs.append((vi, start, len(x)))
            size -= len(x)
        tokens, ready = forward(parts)
        writer.submit(lambda: write(segs, tokens, ready))

    t0 = time.perf_counter()
    try:
        with BackgroundWriter(depth=2) as writer:  # writes overlap the next forward
            buffered = 0
            for vi, start, x in loader:
                pending.append((vi, start, x))
                buffered += len(x)
                while buffered >= batch_size:
                    run_batch(batch_size, writer)
                    buffered -= batch_size
            if buffered:
                run_batch(buffered, writer)
    finally:
        bar.close()
        for job in jobs.values():
            job.abort()
    stats["seconds"] = time.perf_counter() - t0
    stats["frames_per_s"] = total / stats["seconds"] if total else 0.0
    return stats


def _pixel_source(spec, frame_encoder):
    from byov.data.datasets import FrameSource
    from byov.models.frame_encoders import input_pipeline
    return FrameSource(spec.data.root, spec.data.dataset,
                       input_pipeline(spec.encoder.backbone, frame_encoder),
                       spec.encoder.input_size, spec.data.frame_cache_dir)


def extract_splits(spec, splits: Sequence[str] = ("train", "val", "test"),
                   kinds: Sequence[str] = KINDS, frame_encoder=None,
                   progress: bool = True, *, precision: str = "fp32",
                   channels_last: bool = False, shard: tuple[int, int] = (0, 1)) -> dict:
    """`extract_videos` for the videos of `splits`, with the settings of `byov.spec.
    FeatureCacheSpec` `spec` (cache folder, dtype, backbone, K, chunk_size frames per batch,
    num_workers, device, compile); precision, channels_last and shard as in
    `extract_videos`."""
    from byov.data.layout import list_videos
    from byov.models.backbones import frame_encoder_from_spec

    require_frozen(spec, "pass --freeze_base")
    _device(spec.device)  # a missing GPU fails before the backbone is loaded
    check_writable(spec.cache_dir)  # before the backbone is loaded
    videos = [v for split in splits for v in list_videos(spec.data.root, spec.data.dataset, split)]
    if frame_encoder is None:
        frame_encoder = frame_encoder_from_spec(spec.encoder)
    k = spec.merge.tokens_to_keep(frame_encoder.num_patches) if "merged" in kinds else None
    return extract_videos(videos, _pixel_source(spec, frame_encoder), frame_encoder,
                          spec.cache_dir, kinds, spec.dtype, k, spec.chunk_size,
                          spec.num_workers, spec.device, progress, precision=precision,
                          channels_last=channels_last, compile=spec.compile, shard=shard)


def missing_entries(spec, videos: Sequence, frame_encoder=None) -> list:
    """The videos whose `spec.kind` (tokens | merged) entry is absent, unfinished or stale
    (their video changed since extraction), in the order given.

    Raises:
        FeatureCacheError: the cache folder holds a cache of another backbone, weights, input
            size, preprocessing, dtype or STM setting (manifest mismatch), or a damaged entry.
    """
    kind = cache_kind(spec)
    expected = expected_for_spec(spec, kind, frame_encoder)
    found = read_manifest(spec.cache_dir, kind)
    if found is not None:
        check_manifest(found, expected, manifest_path(spec.cache_dir, kind))
    shape = tuple(expected["token_layout"])
    dtype = np.dtype(expected["dtype"])
    return [v for v in videos if entry_state(spec.cache_dir, kind, v, (v.num_frames, *shape),
                                             dtype, stale="todo") == "todo"]


def ensure_feature_cache(spec, videos: Sequence, frame_encoder=None,
                         progress: bool = True) -> dict:
    """Make the `spec.kind` (tokens | merged) cache hold every video of `videos`, current.

    What training calls instead of stopping with "extract first": entries that are missing,
    unfinished or stale (the video's content fingerprint changed) are computed now, with a tqdm
    progress bar, exactly as `python -m byov.features extract` would (same folder, manifest and
    files); complete entries are left untouched, and nothing is built when all are there. A
    folder holding a cache made with another backbone, weights, input size, preprocessing, dtype
    or STM setting is refused, never rebuilt over: the default folder is keyed by backbone and
    input size only, so two caches differing in weights or dtype would share it.

    Args:
        spec: the `byov.spec.FeatureCacheSpec` (kind, cache folder, dtype, backbone, STM, data,
            chunk size, workers, device).
        videos: Video records (every split the run reads).
        frame_encoder: the run's frozen backbone; None builds it from the spec (only when
            something is missing).
    Returns:
        `extract_videos`' stats ({"videos": built, "skipped", "frames", ...}); "videos" is 0
        when the cache was already complete.
    Raises:
        FeatureCacheError: manifest mismatch (the message names each field), a damaged entry, an
            unwritable folder or a full disk.
        DataError: a video that cannot be decoded into its frame cache.
    """
    from byov.models.backbones import frame_encoder_from_spec

    kind = cache_kind(spec)
    require_frozen(spec, "pass --freeze_base or use --features fly")
    todo = missing_entries(spec, videos, frame_encoder)
    if not todo:
        return {"videos": 0, "skipped": len(videos), "frames": 0, "seconds": 0.0,
                "frames_per_s": 0.0, "cache_dir": spec.cache_dir}
    check_writable(spec.cache_dir)  # before the backbone is loaded
    # the pixels come from the h5 frame caches, built in the loader's workers: fail here, clearly
    from byov.data.validate import check_frame_cache_folders
    check_frame_cache_folders(todo, spec.data.root, spec.data.dataset, spec.data.frame_cache_dir)
    if frame_encoder is None:
        with torch.random.fork_rng(devices=[]):  # seeded runs do not shift
            frame_encoder = frame_encoder_from_spec(spec.encoder)
    k = spec.merge.tokens_to_keep(frame_encoder.num_patches) if kind == "merged" else None
    found = read_manifest(spec.cache_dir, kind)  # entries added keep the cache's own precision
    stats = extract_videos(todo, _pixel_source(spec, frame_encoder), frame_encoder,
                           spec.cache_dir, (kind,), spec.dtype, k, spec.chunk_size,
                           spec.num_workers, spec.device, progress,
                           precision=found_compute(found) if found else "fp32")
    stats["skipped"] += len(videos) - len(todo)
    return stats
