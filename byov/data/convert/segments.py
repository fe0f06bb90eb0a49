"""The one set of rules turning timed segments into AE2 per-frame labels (docs/datasets/).

Every format module reduces its official files to `VideoEntry` records: one output video (its
source, view, split and name) with its `Segment`s in seconds on that video's own timeline. This
module alone decides what the segments mean in frames:

- **Frames.** The video's container frame rate `fps` (PyAV's average rate, e.g. 30000/1001) and
  its frame count `L` (OpenCV `CAP_PROP_FRAME_COUNT`, the label length `byov.data.validate`
  checks) are read from the file. Frame i shows time i / fps. A segment [start_s, end_s) covers
  frames round(start_s * fps) .. round(end_s * fps) - 1 (round half up), so two segments that
  meet at a time meet at a frame and never share one.
- **Background.** Frames no segment covers get -1 (AE2's background id).
- **Past the end.** A segment that ends within one frame period after the video's end
  (end_s <= (L + 1) / fps: annotation times rounded up, or a duration taken from a longer
  stream) is clamped to the last frame and counted in the summary; one that ends later, or
  starts at or after the end, is refused. A start up to one frame period before 0 is clamped
  to 0 likewise.
- **Refused.** end_s < start_s; segments that share a frame (overlap) within one video; times
  that are not finite numbers. The error names the file, the entry and the fix; with
  `--skip_bad` the whole video is reported and left out instead (dropping one segment would
  label its frames as background, silently).
- **Reported.** A segment shorter than half a frame covers no frame: it is counted, not refused.
- **Phase ids.** Phase names become ids 0..K-1 ordered by when they typically happen (the mean,
  over the videos that contain a phase, of its first frame / L; ties by name), so that a
  procedure done in its usual order gives increasing ids. Phases that label no frame get no id.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from byov.data.layout import DataError

BACKGROUND = -1


class ConvertError(DataError):
    """Bad conversion input; the message names the file, the entry and the fix."""


def skip_or_raise(error: ConvertError, skip_bad: bool, skipped: list[dict], video: str,
                  source: str, log: Callable[[str], None] = print,
                  label: str | None = None) -> None:
    """The `--skip_bad` rule, one place for every format reader and the writer: without it,
    raise `error`; with it, record {video, source, reason} in `skipped` (the summary lists
    them) and log `skipped <label or video>: <reason>`."""
    if not skip_bad:
        raise error
    skipped.append({"video": video, "source": source, "reason": str(error)})
    log(f"skipped {label or video}: {error}")


@dataclass(frozen=True)
class Segment:
    """One labelled stretch of a video.

    Attributes:
        start_s, end_s: seconds on the video's own timeline, end exclusive.
        phase: the phase name (a key step, an action class ...).
        where: the source of this segment for messages, e.g. "keystep_train.json: annotations
            ['uid'].segments[3]" or "train.csv, line 12".
    """

    start_s: float
    end_s: float
    phase: str
    where: str


@dataclass
class VideoEntry:
    """One output video and its segments.

    Attributes:
        name: output basename without .mp4 (unique in the dataset: the label.pickle key).
        view: "ego" or "exo".
        split: "train", "val" or "test".
        source: the source video file, or a folder of frame images (`frames_fps` then gives
            their rate).
        segments: the segments on this video's timeline.
        where: where the video was named, for messages.
        span_s: (start, end) seconds of the task, for `--trim task`; None when the format gives
            none.
        frames_fps: the rate of a frame-image folder (frames per second); None for a video file.
    """

    name: str
    view: str
    split: str
    source: str
    segments: list[Segment] = field(default_factory=list)
    where: str = ""
    span_s: tuple[float, float] | None = None
    frames_fps: Fraction | None = None


@dataclass
class Framed:
    """A video entry mapped to frames (`frame_labels`).

    Attributes:
        ranges: (first frame, end frame exclusive, phase name) per segment that covers a frame.
        clamped: segments clamped at either end of the video (rule in the module docstring).
        empty: segments that cover no frame.
    """

    ranges: list[tuple[int, int, str]]
    clamped: int = 0
    empty: int = 0


def to_frame(t: float, fps: Fraction) -> int:
    """The frame boundary nearest to time t: t * fps rounded half up, computed exactly on the
    decimal value of t (0.25 s at 30 fps is 7.5 -> 8, never 7.4999... -> 7)."""
    return math.floor(Fraction(repr(float(t))) * Fraction(fps) + Fraction(1, 2))


def _fix(entry: VideoEntry) -> str:
    return (f"fix or remove the entry in the annotations (a copy: never edit the originals), or "
            f"pass --skip_bad to leave video {entry.name!r} out and report it")


def frame_ranges(entry: VideoEntry, fps: Fraction, num_frames: int) -> Framed:
    """Map `entry.segments` to frame ranges on a video of `num_frames` frames at `fps`.

    Raises:
        ConvertError: a time that is not a finite number, end before start, a segment outside
            the video beyond the one-frame clamp, or two segments sharing a frame; the message
            names the source entries and the fix.
    """
    out = Framed([])
    kept: list[Segment] = []
    period = 1.0 / float(fps)
    length_s = num_frames * period
    for seg in entry.segments:
        if not (math.isfinite(seg.start_s) and math.isfinite(seg.end_s)):
            raise ConvertError(f"{seg.where}: segment times {seg.start_s!r}..{seg.end_s!r} are "
                               f"not finite numbers of seconds; {_fix(entry)}")
        if seg.end_s < seg.start_s:
            raise ConvertError(f"{seg.where}: segment {seg.phase!r} ends ({seg.end_s} s) before "
                               f"it starts ({seg.start_s} s); {_fix(entry)}")
        start, end, clamped = to_frame(seg.start_s, fps), to_frame(seg.end_s, fps), False
        if seg.start_s < 0:
            if seg.start_s < -period - 1e-9:
                raise ConvertError(f"{seg.where}: segment {seg.phase!r} starts at {seg.start_s} s,"
                                   f" more than one frame before the video starts; {_fix(entry)}")
            start, clamped = 0, True
        if start >= num_frames:
            raise ConvertError(f"{seg.where}: segment {seg.phase!r} ({seg.start_s}..{seg.end_s} s)"
                               f" starts at or after the end of video {entry.source} ({num_frames}"
                               f" frames at {float(fps):.3f} fps = {length_s:.3f} s); the "
                               f"annotation belongs to another (longer) video or another frame "
                               f"rate; {_fix(entry)}")
        if end > num_frames:
            if seg.end_s > (num_frames + 1) * period + 1e-9:
                raise ConvertError(f"{seg.where}: segment {seg.phase!r} ends at {seg.end_s} s, "
                                   f"{seg.end_s - length_s:.3f} s after the end of video "
                                   f"{entry.source} ({num_frames} frames at {float(fps):.3f} fps "
                                   f"= {length_s:.3f} s; up to one frame period past the end is "
                                   f"clamped); {_fix(entry)}")
            end, clamped = num_frames, True
        out.clamped += clamped
        if end <= start:
            out.empty += 1
            continue
        out.ranges.append((start, end, seg.phase))
        kept.append(seg)
    order = sorted(range(len(kept)), key=lambda i: out.ranges[i][:2])
    for i, j in zip(order, order[1:]):
        (a, sa), (b, sb) = (out.ranges[i], kept[i]), (out.ranges[j], kept[j])
        if b[0] < a[1]:
            raise ConvertError(f"{sb.where}: segment {sb.phase!r} ({sb.start_s}..{sb.end_s} s, "
                               f"frames {b[0]}..{b[1] - 1}) overlaps {sa.where}: segment "
                               f"{sa.phase!r} ({sa.start_s}..{sa.end_s} s, frames {a[0]}.."
                               f"{a[1] - 1}) in video {entry.name!r}, and a frame has one phase; "
                               f"{_fix(entry)}")
    return out


def frame_labels(ranges: list[tuple[int, int, str]], num_frames: int,
                 phase_ids: dict[str, int]) -> np.ndarray:
    """(num_frames,) int64 labels: the phase id of each range's frames, -1 where none is."""
    y = np.full(num_frames, BACKGROUND, dtype=np.int64)
    for a, b, phase in ranges:
        y[a:b] = phase_ids[phase]
    return y


def order_phases(framed: list[tuple[Framed, int]]) -> dict[str, int]:
    """Phase name -> id 0..K-1 by typical position (module docstring).

    Args:
        framed: (frame ranges of a video, its frame count) for every video kept.
    """
    positions: dict[str, list[float]] = {}
    for f, n in framed:
        first: dict[str, int] = {}
        for a, _, phase in f.ranges:
            first[phase] = min(first.get(phase, a), a)
        for phase, a in first.items():
            positions.setdefault(phase, []).append(a / n)
    ordered = sorted(positions, key=lambda p: (float(np.mean(positions[p])), p))
    return {p: i for i, p in enumerate(ordered)}
