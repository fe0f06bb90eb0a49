"""`egoexolearn`: EgoExoLearn's fine annotations -> one AE2 dataset per scene (unpaired ego/exo).

Reads `annotations/fine_annotation_trainval_en.csv` (OpenGVLab/EgoExoLearn annotations/README.md)
with columns video_uid, annotation_uid, subset (train|val), view (ego|exo), scene (kitchen|lab),
start_sec, end_sec, narration_en, narration_en_hand_prompt, narration_en_no_hand_prompt.
Videos: `<videos>/**/<video_uid>.mp4`. The ego and exo videos are different recordings (the
unpaired setting of AE2's pour_liquid and tennis_forehand); each keeps its own segments.
Phase = the `--phase_column` value (default narration_en: free text, so consider mapping it to
the verb/noun taxonomy first and passing a column of your own). Splits: subset train -> train
minus a seeded `--test_fraction` of its videos -> test (the test annotations are not released);
val -> val.
"""
from __future__ import annotations

import csv
import os

from byov.data.convert.segments import (ConvertError, Segment, VideoEntry,
                                        skip_or_raise)
from byov.data.convert.splits import add_carve_arguments, carve

COLUMNS = ("video_uid", "subset", "view", "scene", "start_sec", "end_sec")


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True,
                        help="fine_annotation_trainval_en.csv (or the annotations folder)")
    parser.add_argument("--videos", required=True, help="folder holding <video_uid>.mp4 "
                                                        "(searched recursively)")
    parser.add_argument("--scene", required=True, help="kitchen or lab")
    parser.add_argument("--phase_column", default="narration_en",
                        help="the csv column that names the phase")
    add_carve_arguments(parser)


def read(args, log=print) -> tuple[list[VideoEntry], list[dict]]:
    path = args.annotations
    if os.path.isdir(path):
        path = os.path.join(path, "fine_annotation_trainval_en.csv")
    if not os.path.isfile(path):
        raise ConvertError(f"{path} does not exist; it is EgoExoLearn's "
                           f"annotations/fine_annotation_trainval_en.csv")
    videos: dict[str, str] = {}
    for folder, _, files in os.walk(args.videos):
        for f in sorted(files):
            if f.lower().endswith(".mp4"):
                videos.setdefault(f[:-4], os.path.join(folder, f))
    by_video: dict[str, VideoEntry] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS + (args.phase_column,) if c not in (reader.fieldnames or [])]
        if missing:
            raise ConvertError(f"{path}: the header lacks column(s) {', '.join(missing)}")
        for lineno, row in enumerate(reader, start=2):
            if row["scene"].strip() != args.scene:
                continue
            where = f"{path}, line {lineno}"
            uid, view, subset = row["video_uid"].strip(), row["view"].strip(), row["subset"].strip()
            if subset not in ("train", "val") or view not in ("ego", "exo"):
                raise ConvertError(f"{where}: subset {subset!r} / view {view!r}; expected "
                                   f"train|val and ego|exo")
            e = by_video.setdefault(uid, VideoEntry(uid, view, subset, videos.get(uid, ""),
                                                    where=where))
            if (e.view, e.split) != (view, subset):
                raise ConvertError(f"{where}: video {uid} is {view}/{subset} here but "
                                   f"{e.view}/{e.split} at {e.where}")
            try:
                start, end = float(row["start_sec"]), float(row["end_sec"])
            except ValueError:
                raise ConvertError(f"{where}: start_sec/end_sec {row['start_sec']!r}, "
                                   f"{row['end_sec']!r} are not numbers") from None
            e.segments.append(Segment(start, end, row[args.phase_column].strip(), where))
    if not by_video:
        raise ConvertError(f"{path} has no row of scene {args.scene!r} (scenes: kitchen, lab)")
    test = set()  # carved per view: ego and exo are separate recordings
    for view in ("ego", "exo"):
        test |= carve([u for u, e in by_video.items() if e.split == "train" and e.view == view],
                      args.test_fraction, args.seed, f"{view} test")
    entries, skipped = [], []
    for uid, e in sorted(by_video.items()):
        if not e.source:
            msg = (f"{e.where}: no {uid}.mp4 under --videos {args.videos}; download the videos "
                   f"or pass --skip_bad")
            skip_or_raise(ConvertError(msg), args.skip_bad, skipped, uid, path, log)
            continue
        if uid in test:
            e.split = "test"
        entries.append(e)
    return entries, skipped
