"""Tiny sources for the converter tests: mp4s at a chosen frame rate (PyAV, as the converter
writes), frame-image folders, and an official-schema annotation file per format."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import cv2
import numpy as np

NTSC = Fraction(30000, 1001)  # 29.97 fps


def frames(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8 RGB frames that differ from one another."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 3 * t, axis=1) for t in range(n)])


def write_video(path, n: int, fps=30, seed: int = 0, size: int = 32, codec: str = "libx264"
                ) -> str:
    """A video of n frames at `fps` (an int or a Fraction such as NTSC): H.264 in the
    container the file name says (mp4), or `codec` (e.g. mpeg4 for an .avi)."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for rgb in frames(n, seed, size):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def write_frame_folder(folder, n: int, seed: int = 0, size: int = 32) -> str:
    """n png frame images 000000.png ... as H2O ships them."""
    os.makedirs(str(folder), exist_ok=True)
    for i, rgb in enumerate(frames(n, seed, size)):
        cv2.imwrite(os.path.join(str(folder), f"{i:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(folder)


def tree_state(root) -> dict:
    """{relative path: (size, mtime_ns)} of every file under root: to prove sources unchanged."""
    out = {}
    for folder, _, files in os.walk(str(root)):
        for f in files:
            p = os.path.join(folder, f)
            st = os.stat(p)
            out[os.path.relpath(p, str(root))] = (st.st_size, st.st_mtime_ns)
    return out
