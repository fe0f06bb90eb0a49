"""Torch datasets: random ego/exo clip pairs for training, whole videos for evaluation.

Both read frames through a pluggable `source` (anything with `.load(video, indices) -> Tensor`):
`FrameSource` gives preprocessed pixels from the h5 frame cache; a feature cache can give tokens.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from byov.data.frame_cache import ensure_frame_cache, frame_cache_path, read_frames
from byov.data.layout import Video, check_labels, dataset_path
from byov.data.preprocess import check_backbone, preprocess_frames
from byov.data.sampling import PAIRINGS, draw_pair, sample_frames


class FrameSource:
    """Preprocessed frames of a video from its h5 frame cache (built on first use).

    Holds only plain settings (no open h5 handle), so it pickles into DataLoader workers.
    """

    def __init__(self, dataset_root: str, dataset: str, backbone: str, input_size: int,
                 frame_cache_dir: str = ""):
        check_backbone(backbone)
        dataset_path(dataset_root, dataset)  # unknown dataset name: fail here, not in a worker
        if input_size <= 0:
            raise ValueError(f"input_size must be positive, got {input_size}")
        self.dataset_root = dataset_root
        self.dataset = dataset
        self.backbone = backbone
        self.input_size = int(input_size)
        self.frame_cache_dir = frame_cache_dir
        self._ready: set[str] = set()  # caches validated by this process

    def cache_path(self, video: Video) -> str:
        path = frame_cache_path(video, self.dataset_root, self.dataset, self.frame_cache_dir)
        if path not in self._ready:
            ensure_frame_cache(video, path)
            self._ready.add(path)
        return path

    def load(self, video: Video, indices: np.ndarray) -> torch.Tensor:
        """Frames `indices` of `video` -> (len(indices), 3, S, S) float32."""
        frames = read_frames(self.cache_path(video), indices)
        return preprocess_frames(frames, self.backbone, self.input_size)


class PairDataset(Dataset):
    """Training pairs of clips, T frames each, drawn as released (docs/released_code.md#training-sampler, docs/design.md#pairing).

    Item i of epoch e is a pure function of (seed, e, i): the pair and the frame indices come from
    `np.random.default_rng([seed, e, i])`, so results do not depend on workers or their order.
    An epoch has `length` items, by default one per video (released: V draws per epoch).
    """

    def __init__(self, videos: Sequence[Video], num_frames: int, source, pairing: str = "merged",
                 seed: int = 0, length: int | None = None):
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}; valid: {', '.join(PAIRINGS)}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if length is not None and length < 1:
            raise ValueError(f"length must be positive or None, got {length}")
        self.videos = list(videos)
        self.num_frames = int(num_frames)
        self.source = source
        self.pairing = pairing
        self.seed = int(seed)
        self.length = int(length) if length is not None else len(self.videos)
        self.epoch = 0
        if pairing == "ego_exo":  # fail now, not inside a worker
            draw_pair(self.videos, pairing, np.random.default_rng(0))

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """-> inputs (2, T, ...) from the source ((2, T, 3, S, S) for pixels), indices (2, T)
        int64, video_idx (2,) int64, is_ego (2,) bool."""
        if not 0 <= i < self.length:
            raise IndexError(f"item {i} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        pair = draw_pair(self.videos, self.pairing, rng)
        indices = [sample_frames(self.videos[k].num_frames, self.num_frames, rng) for k in pair]
        inputs = torch.stack([self.source.load(self.videos[k], idx)
                              for k, idx in zip(pair, indices)])
        return {
            "inputs": inputs,
            "indices": torch.from_numpy(np.stack(indices)),
            "video_idx": torch.tensor(pair, dtype=torch.int64),
            "is_ego": torch.tensor([self.videos[k].is_ego for k in pair], dtype=torch.bool),
        }


class VideoFrames:
    """Whole videos of a split, in the given (released sorted) order, for embedding extraction.

    Labels, when given, are checked against the frame counts up front (docs/released_code.md#labelpickle).
    """

    def __init__(self, videos: Sequence[Video], labels: dict[str, np.ndarray] | None, source):
        self.videos = list(videos)
        self.source = source
        self.labels = None
        if labels is not None:
            check_labels(self.videos, labels)
            self.labels = {v.name: np.asarray(labels[v.name], dtype=np.int64)
                           for v in self.videos}

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, k: int) -> dict:
        """-> name, view, is_ego, path, num_frames L, labels (L,) int64 or None."""
        video = self.videos[k]
        return {
            "name": video.name,
            "view": video.view,
            "is_ego": video.is_ego,
            "path": video.path,
            "num_frames": video.num_frames,
            "labels": None if self.labels is None else self.labels[video.name],
        }

    def iter_chunks(self, k: int, chunk_size: int) -> Iterator[torch.Tensor]:
        """All L frames of video k in decode order, as tensors of at most `chunk_size` frames
        (source output per chunk, e.g. (<=chunk_size, 3, S, S)); memory stays bounded."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        video = self.videos[k]
        for start in range(0, video.num_frames, chunk_size):
            stop = min(start + chunk_size, video.num_frames)
            yield self.source.load(video, np.arange(start, stop, dtype=np.int64))
