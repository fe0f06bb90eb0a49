"""`assembly101`: Assembly101 coarse segments -> one AE2 dataset for assembly or disassembly.

Reads (assembly-101/assembly101-annotations, coarse-annotations/README.md):
- `coarse_labels/{assembly|disassembly}_<sequence>.txt`: rows `start_frame end_frame
  action_cls` on the 30 fps timeline ("Frame numbers in all the annotations are provided after
  extracting them from the raw video at 30fps"); the end frame is taken as exclusive, so
  segments that meet at a frame do not overlap (the README does not say);
- `coarse_splits/{train,val}_coarse_{assembly|disassembly}.txt`: column 0 names the label file,
  then is_shared, toy_id, toy_name (the test labels are withheld, so test is carved from train,
  seeded);
- `coarse_seq_views.txt`: `{assembly|disassembly}_<sequence>/<view>.mp4` per available video.
Videos: `<videos>/<sequence>/<view>.mp4` (the download's recordings folder). Views whose name
starts with HMC_ (head-mounted) are ego, the others (C1...) exo. Frame f becomes f / 30 s on
every view: the per-view sync offsets of the released synchronization files are not applied
(not documented; see docs/datasets/assembly101.md).
"""
from __future__ import annotations

import fnmatch
import os

from byov.data.convert.segments import (ConvertError, Segment, VideoEntry,
                                        skip_or_raise)
from byov.data.convert.splits import add_carve_arguments, carve

ANNOTATION_FPS = 30


def add_arguments(parser) -> None:
    parser.add_argument("--annotations", required=True,
                        help="the coarse-annotations folder (coarse_labels/, coarse_splits/, "
                             "coarse_seq_views.txt)")
    parser.add_argument("--videos", required=True,
                        help="the recordings folder holding <sequence>/<view>.mp4")
    parser.add_argument("--task", choices=("assembly", "disassembly"), default="assembly")
    parser.add_argument("--toy", default="", help="keep one toy_name (e.g. excavator); "
                                                  "default every toy")
    parser.add_argument("--ego_views", default="HMC_*",
                        help="glob of ego view names (default HMC_*: all four)")
    parser.add_argument("--exo_views", default="C*",
                        help="glob of exo view names (default C*: all eight fixed)")
    add_carve_arguments(parser)


def read_labels(path: str) -> list[Segment]:
    segments = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split(None, 2)
            if not parts:
                continue
            where = f"{path}, line {lineno}"
            if len(parts) < 3:
                raise ConvertError(f"{where}: expected start_frame end_frame action_cls, got "
                                   f"{line.strip()!r}")
            try:
                a, b = int(parts[0]), int(parts[1])
            except ValueError:
                raise ConvertError(f"{where}: {parts[0]!r} {parts[1]!r} are not frame "
                                   f"numbers") from None
            segments.append(Segment(a / ANNOTATION_FPS, b / ANNOTATION_FPS, parts[2].strip(),
                                    where))
    return segments


def _split_file(path: str, toy: str) -> list[str]:
    if not os.path.isfile(path):
        raise ConvertError(f"split file {path} does not exist; download coarse-annotations")
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            parts = line.split()
            if parts and (not toy or (len(parts) > 3 and parts[3] == toy)):
                out.append(parts[0])
    return out


def read(args, log=print) -> tuple[list[VideoEntry], list[dict]]:
    root = args.annotations
    views_path = os.path.join(root, "coarse_seq_views.txt")
    if not os.path.isfile(views_path):
        raise ConvertError(f"{views_path} does not exist; download coarse-annotations")
    views: dict[str, list[str]] = {}
    with open(views_path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.strip()
            if "/" in line:
                seq, view = line.split("/", 1)
                views.setdefault(seq, []).append(os.path.splitext(view)[0])
    chosen = {}
    for split in ("train", "val"):
        for label_file in _split_file(os.path.join(root, "coarse_splits",
                                                   f"{split}_coarse_{args.task}.txt"), args.toy):
            chosen[os.path.splitext(label_file)[0]] = split
    if not chosen:
        raise ConvertError(f"no {args.task} sequence{' of toy ' + args.toy if args.toy else ''}"
                           f" in {os.path.join(root, 'coarse_splits')}")
    test = carve([k for k, s in chosen.items() if s == "train"], args.test_fraction, args.seed,
                 "test")
    entries, skipped = [], []
    for key, split in sorted(chosen.items()):
        label_path = os.path.join(root, "coarse_labels", key + ".txt")
        sequence = key[len(args.task) + 1:]
        if not os.path.isfile(label_path) or key not in views:
            what = (f"no {label_path}" if not os.path.isfile(label_path)
                    else f"no views in {views_path}")
            msg = (f"sequence {key}: {what}; download the complete coarse-annotations or pass "
                   f"--skip_bad")
            skip_or_raise(ConvertError(msg), args.skip_bad, skipped, key, label_path, log)
            continue
        segments = read_labels(label_path)
        for view in sorted(views[key]):
            kind = ("ego" if fnmatch.fnmatch(view, args.ego_views) else
                    "exo" if fnmatch.fnmatch(view, args.exo_views) else None)
            if kind is None:
                continue
            entries.append(VideoEntry(
                name=f"{sequence}_{view}", view=kind, split="test" if key in test else split,
                source=os.path.join(args.videos, sequence, view + ".mp4"),
                segments=list(segments), where=label_path))
    return entries, skipped
