"""`egoexo4d-keystep`: Ego-Exo4D keystep annotations -> one AE2 dataset per scenario or task.

Reads (https://docs.ego-exo4d-data.org/annotations/keystep/, .../data/metadata):
- `annotations/keystep_{train,val}.json`: {"annotations": {take_uid: {"take_uid", "take_name",
  "scenario", "segments": [{"start_time", "end_time", "step_id", "step_unique_id",
  "step_name", ...}]}}, "taxonomy": ..., "vocabulary": ...};
- `takes.json`: a list of takes with "take_uid", "take_name", "root_dir", "best_exo",
  "task_name", "task_start_sec", "task_end_sec" and "frame_aligned_videos" {cam_id: {stream:
  {"relative_path"}}} (relative to root_dir).
Mapping: keystep_train takes -> train, minus a seeded `--test_fraction` of them -> test (the
official test set is unannotated); keystep_val -> val. Ego = the Aria camera's "rgb" stream,
exo = `best_exo` (or `--exo all`: every cam* camera); the frame-aligned videos share one
timeline, so every camera of a take gets the take's segments at its own fps. Phase = step_name.
"""
from __future__ import annotations

import json
import os

from byov.data.convert.segments import (ConvertError, Segment, VideoEntry,
                                        skip_or_raise)
from byov.data.convert.splits import add_carve_arguments, carve


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True,
                        help="the download root holding annotations/keystep_{train,val}.json and "
                             "takes.json (or the annotations folder itself)")
    parser.add_argument("--videos", required=True,
                        help="the download root holding takes/<take_name>/frame_aligned_videos")
    sel = parser.add_mutually_exclusive_group(required=True)
    sel.add_argument("--scenario", help="keep the takes of this keystep scenario, e.g. Cooking")
    sel.add_argument("--task", help="keep the takes of this takes.json task_name")
    parser.add_argument("--exo", choices=("best", "all"), default="best",
                        help="exo = each take's best_exo camera (default) or every cam* camera")
    parser.add_argument("--resolution", choices=("full", "448"), default="full",
                        help="full-resolution videos or the downscaled/448 copies")
    add_carve_arguments(parser)


def _find(root: str, name: str) -> str:
    for path in (os.path.join(root, name), os.path.join(root, "annotations", name),
                 os.path.join(os.path.dirname(os.path.abspath(root)), name)):
        if os.path.isfile(path):
            return path
    raise ConvertError(f"{name} not found in {root} or {os.path.join(root, 'annotations')}; "
                       f"download it with `egoexo -o <dir> --parts annotations metadata`")


def _load(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConvertError(f"{path} cannot be read as JSON ({e}); download it again") from None


def _video_path(args, take: dict, cam: str, stream: str, where: str) -> str:
    try:
        rel = take["frame_aligned_videos"][cam][stream]["relative_path"]
    except (KeyError, TypeError):
        raise ConvertError(f"{where}: takes.json has no frame_aligned_videos[{cam!r}][{stream!r}]"
                           f"['relative_path'] for take {take.get('take_name')!r}") from None
    root = os.path.join(args.videos, take["root_dir"])
    if args.resolution == "448":
        return os.path.join(root, os.path.dirname(rel), "downscaled", "448",
                            os.path.basename(rel))
    return os.path.join(root, rel)


def _segment(s: dict, where: str) -> Segment:
    try:
        return Segment(float(s["start_time"]), float(s["end_time"]), str(s["step_name"]), where)
    except (KeyError, TypeError, ValueError) as e:
        raise ConvertError(f"{where}: a keystep segment needs numeric start_time and end_time "
                           f"and a step_name ({type(e).__name__}: {e}); is this a "
                           f"keystep_*.json file?") from None


def read(args, log=print) -> tuple[list[VideoEntry], list[dict]]:
    """The selected takes' videos and keystep segments (module docstring)."""
    takes_path = _find(args.annotations, "takes.json")
    takes_list = _load(takes_path)
    if not isinstance(takes_list, list) or not all(
            isinstance(t, dict) and "take_uid" in t for t in takes_list):
        raise ConvertError(f"{takes_path} is not a list of takes with a take_uid each; download "
                           f"the metadata again (`egoexo --parts metadata`)")
    takes = {t["take_uid"]: t for t in takes_list}
    chosen: dict[str, tuple[str, dict, str]] = {}  # take_uid -> (split, annotation, where)
    for split, fname in (("train", "keystep_train.json"), ("val", "keystep_val.json")):
        path = _find(args.annotations, fname)
        annotations = _load(path).get("annotations")
        if not isinstance(annotations, dict):
            raise ConvertError(f"{path} has no 'annotations' dict keyed by take_uid; is it a "
                               f"keystep_*.json file?")
        for uid, ann in annotations.items():
            where = f"{path}: annotations[{uid!r}]"
            take = takes.get(uid)
            if args.scenario is not None and ann.get("scenario") != args.scenario:
                continue
            if args.task is not None and (take or {}).get("task_name") != args.task:
                continue
            chosen[uid] = (split, ann, where)
    if not chosen:
        what = f"scenario {args.scenario!r}" if args.scenario else f"task {args.task!r}"
        raise ConvertError(f"no annotated take has {what}; check the spelling (see the "
                           f"'scenario' fields of keystep_train.json or 'task_name' in "
                           f"takes.json)")
    test = carve([u for u, (s, _, _) in chosen.items() if s == "train"], args.test_fraction,
                 args.seed, "test")
    entries, skipped = [], []
    for uid, (split, ann, where) in sorted(chosen.items()):
        take = takes.get(uid)
        if take is None:
            msg = (f"{where}: take {uid} ({ann.get('take_name')}) is not in {takes_path}; "
                   f"download the current metadata (`egoexo --parts metadata`) or pass "
                   f"--skip_bad")
            skip_or_raise(ConvertError(msg), args.skip_bad, skipped, ann.get("take_name", uid),
                          takes_path, log, label=f"take {uid}")
            continue
        segments = [_segment(s, f"{where}.segments[{i}]")
                    for i, s in enumerate(ann.get("segments", []))]
        span = None
        if take.get("task_start_sec") is not None and take.get("task_end_sec") is not None:
            span = (float(take["task_start_sec"]), float(take["task_end_sec"]))
        cams = take.get("frame_aligned_videos") or {}
        ego = sorted(c for c in cams if c.lower().startswith("aria"))
        if args.exo == "best":
            exo = [take["best_exo"]] if take.get("best_exo") else []
        else:
            exo = sorted(c for c in cams if c.lower().startswith("cam"))
        if not ego or not exo:
            msg = (f"{where}: take {take['take_name']!r} has no "
                   f"{'Aria (ego)' if not ego else 'exo (' + args.exo + ')'} camera in "
                   f"takes.json frame_aligned_videos; pass --skip_bad to leave it out")
            skip_or_raise(ConvertError(msg), args.skip_bad, skipped, take["take_name"],
                          takes_path, log, label=f"take {uid}")
            continue
        out_split = "test" if uid in test else split
        for view, cam, stream in ([("ego", c, "rgb") for c in ego[:1]]
                                  + [("exo", c, "0") for c in exo]):
            entries.append(VideoEntry(
                name=f"{take['take_name']}_{cam}", view=view, split=out_split,
                source=_video_path(args, take, cam, stream, where), segments=list(segments),
                where=where, span_s=span))
    return entries, skipped
