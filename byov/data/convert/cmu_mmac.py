"""`cmu-mmac`: CMU-MMAC kitchen videos with EgoProceL's key-step csv files -> one AE2 dataset
per recipe.

Reads (Sid2697/EgoProceL-egocentric-procedure-learning, EgoProceL-download-README.md):
`annotations/CMU-MMAC/<Recipe>/<Subject>_<Recipe>_Video/<Subject>_<Recipe>_<camera>-<n>.csv`,
three columns and no header: key-step start second, end second, key-step name; the file name is
the video's file name. Cameras (EgoProceL's CMU_Kitchens/misc.py): 7150991 = ego (head-mounted);
6510211 back, 7151020 top, 7151062 right, 8421130 left-top = exo. Each camera has its own csv,
so each video keeps its own labels. There is no official split: subjects are split, by
`--val_subjects/--test_subjects` or a seeded draw (`--val_fraction/--test_fraction/--seed`).
"""
from __future__ import annotations

import csv
import os
import re

from byov.data.convert.segments import (ConvertError, Segment, VideoEntry,
                                        skip_or_raise)
from byov.data.convert.splits import carve

EGO_CAMERA = "7150991"
EXO_CAMERAS = ("6510211", "7151020", "7151062", "8421130")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv")
_NAME = re.compile(r"^(?P<subject>S\d+)_(?P<recipe>[^_]+)_(?P<camera>\d+)(?:-\d+)?$")


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True,
                        help="EgoProceL's annotations/CMU-MMAC folder (or one recipe folder)")
    parser.add_argument("--videos", required=True,
                        help="folder holding the CMU-MMAC videos, named like the csv files "
                             "(searched recursively; .mp4/.avi/.mov/.mkv)")
    parser.add_argument("--recipe", required=True, help="e.g. Brownie, Eggs, Pizza, Salad, "
                                                        "Sandwich")
    parser.add_argument("--exo_cameras", default=",".join(EXO_CAMERAS),
                        help=f"exo camera ids (default all: {','.join(EXO_CAMERAS)})")
    parser.add_argument("--val_subjects", default="", help="comma list, e.g. S09")
    parser.add_argument("--test_subjects", default="", help="comma list, e.g. S10,S12")
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--test_fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)


def _videos(root: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder, _, files in os.walk(root):
        for f in sorted(files):
            stem, ext = os.path.splitext(f)
            if ext.lower() in VIDEO_EXTS:
                found.setdefault(stem, os.path.join(folder, f))
    return found


def read_csv(path: str) -> list[Segment]:
    """The segments of one EgoProceL csv (start second, end second, key-step name)."""
    segments = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            where = f"{path}, line {lineno}"
            if len(row) < 3:
                raise ConvertError(f"{where}: expected 3 columns (start second, end second, "
                                   f"key-step name), got {row!r}")
            try:
                start, end = float(row[0]), float(row[1])
            except ValueError:
                raise ConvertError(f"{where}: {row[0]!r}, {row[1]!r} are not seconds (the file "
                                   f"has no header row in EgoProceL's format)") from None
            segments.append(Segment(start, end, ",".join(row[2:]).strip(), where))
    return segments


def read(args, log=print) -> tuple[list[VideoEntry], list[dict]]:
    root = args.annotations
    if os.path.isdir(os.path.join(root, args.recipe)):
        root = os.path.join(root, args.recipe)
    exo = [c.strip() for c in args.exo_cameras.split(",") if c.strip()]
    unknown = [c for c in exo if c not in EXO_CAMERAS]
    if unknown:
        raise ConvertError(f"--exo_cameras {unknown} are not CMU-MMAC exo cameras "
                           f"({', '.join(EXO_CAMERAS)}; {EGO_CAMERA} is the ego camera)")
    csvs = []
    for folder, _, files in os.walk(root):
        csvs += [os.path.join(folder, f) for f in files if f.lower().endswith(".csv")]
    videos = _videos(args.videos)
    found = []
    for path in sorted(csvs):
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _NAME.match(stem)
        if not m or m["recipe"].lower() != args.recipe.lower():
            continue
        if m["camera"] != EGO_CAMERA and m["camera"] not in exo:
            continue
        found.append((path, stem, m["subject"], "ego" if m["camera"] == EGO_CAMERA else "exo"))
    if not found:
        raise ConvertError(f"no <Subject>_{args.recipe}_<camera>-<n>.csv under {root}; check "
                           f"--annotations and --recipe")
    subjects = sorted({s for _, _, s, _ in found})
    val = {s for s in args.val_subjects.split(",") if s}
    test = {s for s in args.test_subjects.split(",") if s}
    for s in sorted(val | test):
        if s not in subjects:
            raise ConvertError(f"subject {s} has no {args.recipe} csv; subjects: "
                               f"{', '.join(subjects)}")
    if not test:
        test = carve([s for s in subjects if s not in val], args.test_fraction, args.seed, "test")
    if not val:
        val = carve([s for s in subjects if s not in test], args.val_fraction, args.seed, "val")
    entries, skipped = [], []
    for path, stem, subject, view in found:
        split = "test" if subject in test else "val" if subject in val else "train"
        source = videos.get(stem)
        if source is None:
            msg = (f"{path}: no video {stem}.* (mp4/avi/mov/mkv) under --videos {args.videos}; "
                   f"download it from kitchen.cs.cmu.edu or pass --skip_bad")
            skip_or_raise(ConvertError(msg), args.skip_bad, skipped, stem, path, log)
            continue
        entries.append(VideoEntry(stem, view, split, source, read_csv(path), where=path))
    return entries, skipped
