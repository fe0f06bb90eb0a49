"""Reading a source's frame rate and length, and writing an output video (docs/datasets/README.md).

Sources are only ever read. An output video is written to `<name>.mp4.partial` in its view
folder and renamed onto `<name>.mp4` once complete and checked, so a killed conversion never
leaves a video that looks finished (`convert.writer` removes stale `.partial` files on resume).

- A whole source mp4 is hard-linked (same bytes, no space used; a copy when the output is on
  another file system, or with `--copy`): its frames and labels are exactly the source's.
- A trimmed video, a non-mp4 source (.avi, .mov ...) and a folder of frame images are encoded
  with PyAV (FFmpeg's libx264, yuv420p, CRF 18, the source's own frame rate or the stated rate
  of an image folder). That is a re-encode, not a lossless cut: a stream copy can only cut at
  keyframes, which would move the labels. Odd widths/heights lose their last pixel row/column
  (yuv420p needs even sizes).
"""
from __future__ import annotations

import os
import shutil
from fractions import Fraction
from typing import Iterator

import cv2
import numpy as np

from byov.data.convert.segments import ConvertError
from byov.data.layout import frame_count

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
CRF = "18"
PARTIAL = ".partial"


def image_files(folder: str) -> list[str]:
    """The frame images of `folder` (png/jpg/bmp, any letter case) in file-name order."""
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTS))


def probe(source: str, frames_fps: Fraction | None = None) -> tuple[Fraction, int]:
    """(fps, L) of a source: a video's container rate and OpenCV frame count, or an image
    folder's stated rate and image count.

    Raises:
        ConvertError: the source is missing, unreadable, or has no readable frame rate.
    """
    if os.path.isdir(source):
        if frames_fps is None:
            raise ConvertError(f"{source} is a folder of frame images, which have no frame "
                               f"rate; pass --fps (the rate they were recorded at)")
        n = len(image_files(source))
        if n == 0:
            raise ConvertError(f"frame folder {source} holds no {'/'.join(IMAGE_EXTS)} images")
        return Fraction(frames_fps), n
    if not os.path.isfile(source):
        raise ConvertError(f"source video {source} does not exist; check --videos and that the "
                           f"download finished")
    import av

    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise ConvertError(f"source {source} has no video stream; replace it")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except av.FFmpegError as e:
        raise ConvertError(f"cannot open source video {source} ({e}); replace it or re-download "
                           f"it") from None
    if not rate or rate <= 0:
        raise ConvertError(f"cannot read the frame rate of {source} (its container states none)"
                           f"; re-encode it at its true rate, e.g. `ffmpeg -i IN -r 30 OUT.mp4`")
    return Fraction(rate), frame_count(source)


def _video_frames(source: str, start: int, stop: int) -> Iterator[np.ndarray]:
    """RGB (H, W, 3) uint8 frames start..stop-1 of a video, in decode order (OpenCV's index)."""
    import av

    with av.open(source) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= stop:
                break
            if i >= start:
                yield frame.to_ndarray(format="rgb24")


def _image_frames(folder: str, start: int, stop: int) -> Iterator[np.ndarray]:
    for path in image_files(folder)[start:stop]:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConvertError(f"frame image {path} cannot be read; replace it")
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode(source: str, dest: str, fps: Fraction, start: int, stop: int) -> int:
    """Encode frames start..stop-1 of `source` (video or image folder) into the mp4 `dest`
    (via `dest`.partial, renamed when complete); returns the frame count written, checked
    against OpenCV's count of the result.

    Raises:
        ConvertError: the source yields fewer frames than expected, or OpenCV counts the result
            differently.
    """
    import av

    tmp = dest + PARTIAL
    try:
        written = _encode(source, tmp, fps, start, stop)
    except av.FFmpegError as e:  # a damaged source found only when decoded
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ConvertError(f"{source} failed to decode or encode between frames {start} and "
                           f"{stop} ({e}); replace or re-encode the source") from None
    if written != stop - start:
        os.remove(tmp)
        raise ConvertError(f"{source} decodes to {start + written} frames, but {stop} were "
                           f"expected (its frame count); the file is damaged or its container "
                           f"overstates its length: re-encode it, then convert again")
    counted = frame_count(tmp)
    if counted != written:
        os.remove(tmp)
        raise ConvertError(f"wrote {written} frames to {dest} but OpenCV counts {counted}; this "
                           f"FFmpeg/OpenCV pair disagrees on the mp4 frame count")
    os.replace(tmp, dest)
    return written


def _encode(source: str, tmp: str, fps: Fraction, start: int, stop: int) -> int:
    """Encode frames start..stop-1 of `source` into `tmp`; returns how many were written."""
    import av

    frames = (_image_frames if os.path.isdir(source) else _video_frames)(source, start, stop)
    written = 0
    with av.open(tmp, mode="w", format="mp4") as container:
        stream = None
        for rgb in frames:
            if stream is None:
                h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.options = {"crf": CRF}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            written += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return written


def link_or_copy(source: str, dest: str, copy: bool = False) -> str:
    """Hard-link `source` to `dest` (a copy when linking fails or `copy`), via a .partial name;
    returns "linked" or "copied"."""
    tmp = dest + PARTIAL
    if os.path.lexists(tmp):
        os.remove(tmp)
    how = "copied"
    if not copy:
        try:
            os.link(source, tmp)
            how = "linked"
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    if how == "copied":
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)
    return how
