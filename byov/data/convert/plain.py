"""`segments`: the plain csv any user can write, and the format the other converters reduce to.

Columns (a header row, any order; extra columns are ignored):

    video,view,split,start_s,end_s,phase
    kitchen1/ego.mp4,ego,train,0.0,4.2,crack egg
    kitchen1/ego.mp4,ego,train,4.2,9.0,stir

- `video`: the source video, relative to `--videos` (or absolute); one row per segment. A video
  with no labelled stretch can be listed once with start_s, end_s and phase empty.
- `view`: ego or exo; `split`: train, val or test (the same on every row of a video).
- `start_s`, `end_s`: seconds on that video's timeline, end exclusive; `phase`: the phase name.
- optional `name`: the output video name (default: the video's path without its extension,
  folders joined with "_").
The rules that turn these into frame labels are in `segments.py`.
"""
from __future__ import annotations

import csv
import os

from byov.data.convert.segments import ConvertError, Segment, VideoEntry

REQUIRED = ("video", "view", "split", "start_s", "end_s", "phase")


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True, help="the segments csv")
    parser.add_argument("--videos", required=True, help="folder the csv's video paths are under")


def output_name(video: str) -> str:
    """Default output name of a source path: no extension, folders joined with "_"."""
    stem = os.path.splitext(os.path.normpath(video))[0]
    return stem.replace(os.sep, "_").replace("/", "_").replace("\\", "_").lstrip("._")


def _float(value: str, column: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConvertError(f"{where}: {column} {value!r} is not a number of seconds; fix the "
                           f"row") from None


def read(args, log=print) -> tuple[list[VideoEntry], list[dict]]:
    """The csv's videos and segments (module docstring); raises ConvertError naming the row."""
    path = args.annotations
    if not os.path.isfile(path):
        raise ConvertError(f"segments csv {path} does not exist")
    entries: dict[str, VideoEntry] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ConvertError(f"{path}: the header lacks column(s) {', '.join(missing)}; the "
                               f"first row must name {','.join(REQUIRED)}")
        for lineno, row in enumerate(reader, start=2):
            where = f"{path}, line {lineno}"
            video = (row["video"] or "").strip()
            if not video:
                raise ConvertError(f"{where}: the video column is empty")
            source = video if os.path.isabs(video) else os.path.join(args.videos, video)
            name = (row.get("name") or "").strip() or output_name(video)
            view, split = row["view"].strip(), row["split"].strip()
            entry = entries.setdefault(source, VideoEntry(name, view, split, source, where=where))
            if (entry.view, entry.split, entry.name) != (view, split, name):
                raise ConvertError(f"{where}: video {video!r} has view/split/name "
                                   f"{view}/{split}/{name} here but {entry.view}/{entry.split}/"
                                   f"{entry.name} at {entry.where}; one video has one of each")
            fields = [(row[c] or "").strip() for c in ("start_s", "end_s", "phase")]
            if not any(fields):
                continue  # a video listed without a labelled stretch
            if not all(fields):
                raise ConvertError(f"{where}: start_s, end_s and phase must all be given (or "
                                   f"all left empty for a video without labels)")
            entry.segments.append(Segment(_float(fields[0], "start_s", where),
                                          _float(fields[1], "end_s", where), fields[2], where))
    return list(entries.values()), []
