"""`h2o`: H2O (two hands and objects) sequences -> one AE2 dataset of action phases.

Reads (taeinkwon/h2odataset README.md and action_labels/):
- `action_labels/action_{train,val,test}.txt`: a header `id path action_label start_act end_act
  start_frame end_frame`, then rows such as `1 subject1/h1/0 16 0 61 0 449`: in sequence
  `path`, action `action_label` (1..36) spans frames start_act..end_act, both included (rows
  of one sequence follow on at end_act + 1), and the sequence spans start_frame..end_frame;
- frames as images: `<root>/<path>/cam{0..4}/rgb/` (1280x720) or `rgb256/`; cam4 is the
  head-mounted (ego) camera, cam0-cam3 are fixed (exo) and synchronized with it.
Frames become mp4s at `--fps` (a frame folder has no rate of its own). Labels exist for cam4
only; the synchronized fixed cameras get the same frame ranges. Phase = the action's name;
frames of no listed action (H2O's background, 0) are -1. Splits are the official ones.
"""
from __future__ import annotations

import os
from fractions import Fraction

from byov.data.convert.segments import ConvertError, Segment, VideoEntry

ACTIONS = ("background", "grab book", "grab espresso", "grab lotion", "grab spray", "grab milk",
           "grab cocoa", "grab chips", "grab cappuccino", "place book", "place espresso",
           "place lotion", "place spray", "place milk", "place cocoa", "place chips",
           "place cappuccino", "open lotion", "open milk", "open chips", "close lotion",
           "close milk", "close chips", "pour milk", "take out espresso", "take out cocoa",
           "take out chips", "take out cappuccino", "put in espresso", "put in cocoa",
           "put in cappuccino", "apply lotion", "apply spray", "read book", "read espresso",
           "spray spray", "squeeze lotion")
EGO_CAMERA = 4
HEADER = ("id", "path", "action_label", "start_act", "end_act", "start_frame", "end_frame")


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True,
                        help="the action_labels folder holding action_{train,val,test}.txt")
    parser.add_argument("--videos", required=True,
                        help="the H2O root holding subjectN/<scene>/<seq>/cam*/rgb/")
    parser.add_argument("--fps", type=Fraction, required=True,
                        help="the frames' recording rate, used to encode them (the H2O README "
                             "states none; 30 is usual)")
    parser.add_argument("--frames", choices=("rgb", "rgb256"), default="rgb",
                        help="frame folder to encode (rgb: 1280x720; rgb256: 455x256, cam4 "
                             "only)")
    parser.add_argument("--exo_cameras", default="0,1,2,3", help="fixed cameras to use")
    parser.add_argument("--actions", default="",
                        help="comma list of action ids 1..36 to label (others become -1 "
                             "and sequences without any are left out); default all")


def read_list(path: str) -> list[tuple[str, int, int, int, int, int, str]]:
    """(sequence path, action id, start_act, end_act, start_frame, end_frame, where) rows."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path} does not exist; it is in the H2O repository's "
                           f"action_labels/ folder")
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts or tuple(parts) == HEADER:
                continue
            where = f"{path}, line {lineno}"
            if len(parts) != 7:
                raise ConvertError(f"{where}: expected 7 fields ({' '.join(HEADER)}), got "
                                   f"{len(parts)}")
            try:
                nums = [int(x) for x in parts[2:]]
            except ValueError:
                raise ConvertError(f"{where}: fields 3-7 must be integers, got "
                                   f"{parts[2:]}") from None
            if not 1 <= nums[0] < len(ACTIONS):
                raise ConvertError(f"{where}: action {nums[0]} is not one of H2O's 1..36")
            rows.append((parts[1], *nums, where))
    return rows


def read(args, log=print) -> tuple[list[VideoEntry], list[dict]]:
    fps = Fraction(args.fps)
    keep = {int(a) for a in args.actions.split(",") if a.strip()} or set(range(1, len(ACTIONS)))
    cams = [int(c) for c in args.exo_cameras.split(",") if c.strip()]
    if any(c not in (0, 1, 2, 3) for c in cams):
        raise ConvertError(f"--exo_cameras {args.exo_cameras}: H2O's fixed cameras are 0-3 "
                           f"(cam4 is the ego camera)")
    sequences: dict[str, dict] = {}
    for split in ("train", "val", "test"):
        for seq, action, a, b, f0, f1, where in read_list(
                os.path.join(args.annotations, f"action_{split}.txt")):
            s = sequences.setdefault(seq, {"split": split, "segments": [], "span": (f0, f1),
                                           "where": where})
            if s["split"] != split:
                raise ConvertError(f"{where}: sequence {seq} is listed in action_{split}.txt "
                                   f"and in action_{s['split']}.txt ({s['where']})")
            if action in keep:
                s["segments"].append(Segment(a / fps, (b + 1) / fps, ACTIONS[action], where))
    entries, without = [], [seq for seq, s in sequences.items() if not s["segments"]]
    if without:
        log(f"{len(without)} of {len(sequences)} sequences have none of the --actions and are "
            f"left out (e.g. {sorted(without)[0]})")
    for seq, s in sorted(sequences.items()):
        if not s["segments"]:
            continue
        base = seq.replace("/", "_")
        span = (s["span"][0] / fps, (s["span"][1] + 1) / fps)
        for view, cam in [("ego", EGO_CAMERA)] + [("exo", c) for c in cams]:
            entries.append(VideoEntry(
                name=f"{base}_cam{cam}", view=view, split=s["split"],
                source=os.path.join(args.videos, seq, f"cam{cam}", args.frames),
                segments=list(s["segments"]), where=s["where"], span_s=span, frames_fps=fps))
    return entries, []
