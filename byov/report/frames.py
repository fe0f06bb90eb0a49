"""Video frames for the report's thumbnails, read through the project's data layer.

Frames come from each video's h5 frame cache (uint8 BGR 256x256, docs/data.md#frame-cache), found
(and built when missing) exactly as training and evaluation find it, from the run config's
`dataset_root`, `dataset` and `frame_cache_dir`; they are turned to RGB for display and shrunk
with `INTER_AREA`.
"""
from __future__ import annotations


import cv2
import numpy as np

from byov.data.frame_cache import ensure_frame_cache, frame_cache_path, read_frames
from byov.data.layout import list_videos


class FrameReader:
    """RGB thumbnails of the videos of one split, by (view, name) and frame index.

    Args:
        data: the run's `byov.spec.DataSpec` (dataset root, name, frame cache folder).
        split: "train", "val" or "test".
        size: thumbnail side in pixels.
    Raises:
        DataError: the dataset or split cannot be listed (the message names the path and fix).
    """

    def __init__(self, data, split: str, size: int = 112):
        self.root, self.dataset, self.cache_dir = data.root, data.dataset, data.frame_cache_dir
        self.size = int(size)
        self.videos = {(v.view, v.name): v for v in list_videos(self.root, self.dataset, split)}
        self._paths: dict[tuple[str, str], str] = {}

    def _cache(self, view: str, name: str) -> str:
        key = (view, name)
        if key not in self._paths:
            video = self.videos[key]
            path = frame_cache_path(video, self.root, self.dataset, self.cache_dir)
            self._paths[key] = ensure_frame_cache(video, path)
        return self._paths[key]

    def thumbnails(self, view: str, name: str, indices) -> np.ndarray:
        """(n, size, size, 3) uint8 RGB frames `indices` of the video (view, name)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bgr = read_frames(self._cache(view, name), idx)
        out = np.empty((len(idx), self.size, self.size, 3), dtype=np.uint8)
        for i, frame in enumerate(bgr):
            out[i] = cv2.resize(frame, (self.size, self.size),
                                interpolation=cv2.INTER_AREA)[..., ::-1]  # BGR -> RGB
        return out
