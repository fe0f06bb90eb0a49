"""Decoding mp4 files into the released 256x256 BGR frames (docs/released_code.md#frame-count-and-the-h5-cache)."""
from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from byov.data.layout import DataError, check_video_path, frame_count

__all__ = ["frame_count", "iter_frames", "decode_frames"]


def iter_frames(path: str, size: int = 256) -> Iterator[np.ndarray]:
    """Yield every decodable frame of `path` as (size, size, 3) uint8 BGR, in decode order.

    Each frame is squashed to size x size with INTER_AREA (aspect ratio not kept), as released.
    """
    cap = cv2.VideoCapture(check_video_path(path))
    try:
        if not cap.isOpened():
            raise DataError(f"cannot open video {path}: the file is unreadable or not a video; "
                            f"replace it (e.g. re-encode it with ffmpeg to H.264 mp4)")
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.ndim == 2:  # some codecs decode to grey
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            yield cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    finally:
        cap.release()


def decode_frames(path: str, size: int = 256) -> np.ndarray:
    """All frames of `path` -> (n, size, size, 3) uint8 BGR, n = the number decoded.

    n can differ from `frame_count(path)` (metadata); callers that need L frames check it.
    """
    frames = list(iter_frames(path, size))
    if not frames:
        raise DataError(f"video {path} decodes to no frames: it is empty or corrupt; replace it")
    return np.stack(frames)
