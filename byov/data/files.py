"""Video files on disk, whatever the dataset's layout: the `Video` record, `DataError`, a video's
frame count (OpenCV metadata, as released), the .mp4 name rules and a letter-case-tolerant
lookup. `byov.data.layout` (the AE2 layouts) and `byov.data.charades_ego` (the Charades-Ego
release) both build on it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2

from byov.errors import ByovError


class DataError(ByovError):
    """A problem with the data on disk; the message names the path and the fix."""


@dataclass(frozen=True)
class Video:
    """One video of a split.

    Attributes:
        path: absolute path of the mp4.
        name: basename without its `.mp4` extension (any letter case); the key of
            `label.pickle`. An ego and an exo video may share a name (and so one label entry).
        view: "ego" or "exo", the name of the parent folder (a root path containing "ego" is harmless).
        split: "train", "val" or "test".
        num_frames: L = int(CAP_PROP_FRAME_COUNT), container metadata as released (§2.6).
    """

    path: str
    name: str
    view: str
    split: str
    num_frames: int

    @property
    def is_ego(self) -> bool:
        return self.view == "ego"


def check_video_path(path: str) -> str:
    """`path`, checked to be one OpenCV can be handed: valid UTF-8 text.

    A file name that is not valid UTF-8 (a zip made on Windows and unpacked on Linux keeps its
    cp437 bytes; Python lists them as surrogate escapes) makes OpenCV's path conversion crash
    the process (SIGSEGV, no message). Every path goes through here before OpenCV sees it.

    Raises:
        DataError: naming the path (its repr, so the bad byte shows) and the fix (rename).
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = os.fsencode(path)[e.start:e.start + 1] if e.start < len(path) else b""
        raise DataError(
            f"video path {path!r} is not valid UTF-8 (byte {bad!r} at character {e.start}; a zip "
            f"made on Windows and unpacked here keeps such cp437 bytes), and OpenCV cannot open "
            f"it. Rename the file (or folder) to a UTF-8 name, e.g. with "
            f"`convmv -f cp437 -t utf-8 --notest -r DIR`, and its label.pickle key to match"
        ) from None
    return path


def frame_count(path: str) -> int:
    """L = int(cv2 CAP_PROP_FRAME_COUNT) of the video at `path` (metadata, as released §2.6).

    Raises:
        DataError: a missing, unreadable or empty video, or a path that is not valid UTF-8
            (`check_video_path`)."""
    if not os.path.isfile(path):
        raise DataError(f"video {path} does not exist")
    cap = cv2.VideoCapture(check_video_path(path))
    try:
        if not cap.isOpened():
            raise DataError(f"cannot open video {path}: the file is unreadable or not a video; "
                            f"replace it (e.g. re-encode it with ffmpeg to H.264 mp4)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if count <= 0:
        raise DataError(f"video {path} reports {count} frames: it is empty or its container has "
                        f"no frame count; replace it (e.g. re-encode it with ffmpeg)")
    return count


VIDEO_EXT = ".mp4"  # matched case-insensitively: cameras and Windows tools write .MP4


def is_video_file(name: str) -> bool:
    """True for a file name ending in .mp4 in any letter case (x.mp4, x.MP4, x.Mp4)."""
    return name.lower().endswith(VIDEO_EXT)


def video_name(path: str) -> str:
    """The label.pickle key of a video: its basename without the .mp4 extension (any case)."""
    base = os.path.basename(path)
    return base[: -len(VIDEO_EXT)] if is_video_file(base) else base


def find_in_folder(folder: str, name: str, listing: dict) -> str | None:
    """Path of `name` in `folder`, matching the letter case of the file name only when the exact
    name is absent (x.mp4 listed, x.MP4 on disk); None when absent. `listing` memoises the
    folder's lower-cased names."""
    exact = os.path.join(folder, name)
    if os.path.isfile(exact):
        return exact
    if folder not in listing:
        found: dict[str, list[str]] = {}
        for f in sorted(os.listdir(folder)):
            if os.path.isfile(os.path.join(folder, f)):
                found.setdefault(f.lower(), []).append(f)
        listing[folder] = found
    matches = listing[folder].get(name.lower(), [])
    if len(matches) > 1:
        raise DataError(f"{name} is listed, and {folder} holds {', '.join(matches)}, which differ "
                        f"only in letter case; keep one of them")
    return os.path.join(folder, matches[0]) if matches else None
