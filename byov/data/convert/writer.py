"""Write `VideoEntry` records as an AE2 csv-layout dataset, safely and resumably (docs/datasets/).

The output folder `<out>` becomes a dataset `byov.data.validate` accepts with `--dataset_root
<parent of out> --dataset <basename of out>`:

    <out>/label.pickle          {video name: (L,) int64 phase ids, -1 = background}
    <out>/phases.json           phase id -> name (and the conversion's settings)
    <out>/{ego,exo}/{train,val,test}.csv, <out>/{ego,exo}/*.mp4
    <out>/.byov_convert.json    the marker: this tool made the folder, for which plan
    <out>/convert_summary.json  what the summary printed

Safety: sources are only read; an existing non-empty `<out>` without the marker is refused;
with the marker of a different plan (other annotations, sources or options) it is refused too.
Resume: with the same plan, finished videos (renamed from `.partial` only when complete) are kept
and checked by frame count, stale `.partial` files are removed, and the rest is written.
Everything is checked (sources, frame rates, segments, splits) before the first video is written.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from byov.atomic import atomic_write, atomic_write_json
from byov.data.convert import video_io
from byov.data.convert.segments import (ConvertError, Framed, VideoEntry, frame_labels,
                                        frame_ranges, order_phases, skip_or_raise, to_frame)
from byov.data.layout import DATASETS, LABEL_FILE, SPLITS, VIEWS, frame_count
from byov.data.validate import MIN_FRAMES, load_validated

MARKER = ".byov_convert.json"
SUMMARY = "convert_summary.json"
PHASES = "phases.json"
TRIMS = ("none", "labelled", "task")


@dataclass(frozen=True)
class Options:
    """How to write the videos.

    Attributes:
        trim: "none" (whole videos, hard-linked), "labelled" (first to last labelled frame of
            each video) or "task" (the task span the format gives, e.g. Ego-Exo4D's
            task_start_sec..task_end_sec); trimmed videos are re-encoded (`video_io`).
        copy: copy whole videos instead of hard-linking them.
        skip_bad: report and leave out videos with bad input instead of stopping.
    """

    trim: str = "none"
    copy: bool = False
    skip_bad: bool = False


@dataclass
class _Plan:
    entry: VideoEntry
    fps: Fraction
    num_frames: int  # of the source
    framed: Framed
    start: int  # output window of source frames
    stop: int


def _check_entries(entries: Sequence[VideoEntry]) -> None:
    seen: dict[str, VideoEntry] = {}
    for e in entries:
        if e.view not in VIEWS or e.split not in SPLITS:
            raise ConvertError(f"{e.where}: video {e.name!r} has view {e.view!r} and split "
                               f"{e.split!r}; views are {'/'.join(VIEWS)}, splits "
                               f"{'/'.join(SPLITS)}")
        if not e.name or os.path.basename(e.name) != e.name or e.name.startswith("."):
            raise ConvertError(f"{e.where}: {e.name!r} is not a usable video name (a plain file "
                               f"name without folders or a leading dot)")
        other = seen.setdefault(e.name.lower(), e)
        if other is not e:
            raise ConvertError(f"{e.where} and {other.where} both name output video {e.name!r} "
                               f"(names must differ in more than letter case: they are "
                               f"label.pickle keys); rename one")


def plan_digest(fmt: str, entries: Sequence[VideoEntry], options: Options) -> str:
    """sha256 of everything that decides the output: format, options, entries, segments."""
    data = {"format": fmt, "options": asdict(options),
            "entries": [{**asdict(e), "frames_fps": str(e.frames_fps),
                         "source": os.path.abspath(e.source)} for e in entries]}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def check_output(out: str, digest: str) -> bool:
    """Whether `out` may be written: True to resume a folder this tool made for the same plan,
    False for a new or empty one. Writes nothing.

    Raises:
        ConvertError: `out` is named like an AE2 dataset or the demo, is a file, is non-empty
            without the marker, or holds the marker of another plan.
    """
    marker = os.path.join(out, MARKER)
    if os.path.basename(out) in DATASETS:
        raise ConvertError(f"--out {out} ends in {os.path.basename(out)!r}, a name byov reserves "
                           f"for AE2's released datasets and the demo ({', '.join(DATASETS)}); "
                           f"give the folder another name")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConvertError(f"--out {out} is a file; give a folder path (it is created)")
    if not (os.path.isdir(out) and os.listdir(out)):
        return False
    if not os.path.isfile(marker):
        raise ConvertError(f"--out {out} is not empty and was not made by byov.data.convert "
                           f"(no {MARKER}); nothing was written. Give a new or empty folder")
    with open(marker, encoding="utf-8") as f:
        made = json.load(f)
    if made.get("plan_sha256") != digest:
        raise ConvertError(f"--out {out} was made by another conversion ({made.get('format')}, "
                           f"other annotations, sources or options); nothing was written. Give "
                           f"a new folder, or delete {out} to convert again")
    return True


def _write_marker(out: str, fmt: str, digest: str, complete: bool) -> None:
    atomic_write_json(os.path.join(out, MARKER), {"tool": "byov.data.convert", "format": fmt,
                                                 "plan_sha256": digest, "complete": complete})


def _window(entry: VideoEntry, framed: Framed, fps: Fraction, n: int, trim: str
            ) -> tuple[int, int]:
    if trim == "none":
        return 0, n
    if trim == "labelled":
        if not framed.ranges:
            raise ConvertError(f"{entry.where}: video {entry.name!r} has no labelled frame, so "
                               f"--trim labelled leaves nothing; drop it or use --trim none")
        return min(r[0] for r in framed.ranges), max(r[1] for r in framed.ranges)
    if entry.span_s is None:
        raise ConvertError(f"{entry.where}: this format gives no task span for video "
                           f"{entry.name!r}; use --trim labelled or --trim none")
    a, b = max(0, to_frame(entry.span_s[0], fps)), min(n, to_frame(entry.span_s[1], fps))
    if b <= a:
        raise ConvertError(f"{entry.where}: the task span {entry.span_s[0]}..{entry.span_s[1]} s"
                           f" of video {entry.name!r} covers no frame of its {n}; use --trim "
                           f"labelled or --trim none")
    return a, b


def _plan(entries: Sequence[VideoEntry], options: Options, log: Callable[[str], None]
          ) -> tuple[list[_Plan], list[dict]]:
    plans, skipped = [], []
    for e in entries:
        try:
            fps, n = video_io.probe(e.source, e.frames_fps)
            framed = frame_ranges(e, fps, n)
            start, stop = _window(e, framed, fps, n, options.trim)
            if stop - start < MIN_FRAMES:
                raise ConvertError(f"{e.where}: video {e.name!r} would have {stop - start} "
                                   f"frame(s); BYOV and AE2 need at least {MIN_FRAMES}")
        except ConvertError as err:
            skip_or_raise(err, options.skip_bad, skipped, e.name, e.source, log)
            continue
        plans.append(_Plan(e, fps, n, framed, start, stop))
    _check_coverage(plans, skipped)
    return plans, skipped


def _check_coverage(plans: Sequence[_Plan], skipped: Sequence[dict]) -> None:
    missing = [f"{v}/{s}" for s in SPLITS for v in VIEWS
               if not any(p.entry.view == v and p.entry.split == s for p in plans)]
    if missing:
        raise ConvertError(f"no {', '.join(missing)} video is left to convert ({len(plans)} "
                           f"videos kept, {len(skipped)} skipped); AE2's layout needs ego and "
                           f"exo videos in train, val and test. Select more data (see the "
                           f"format's options) or fix the skipped videos")


def _clip(framed: Framed, start: int, stop: int) -> Framed:
    ranges = [(max(a, start) - start, min(b, stop) - start, p) for a, b, p in framed.ranges
              if b > start and a < stop]
    return Framed(ranges, framed.clamped, framed.empty)


def _write_video(p: _Plan, dest: str, options: Options) -> str:
    expected = p.stop - p.start
    if os.path.isfile(dest):  # finished by an earlier (killed) run: renamed only when complete
        n = frame_count(dest)
        if n != expected:
            raise ConvertError(f"{dest} exists with {n} frames, but this conversion makes it "
                               f"{expected}; delete it and run the same command again")
        return "kept"
    whole = (p.start, p.stop) == (0, p.num_frames)
    if whole and os.path.isfile(p.entry.source) and p.entry.source.lower().endswith(".mp4"):
        return video_io.link_or_copy(p.entry.source, dest, copy=options.copy)
    video_io.encode(p.entry.source, dest, p.fps, p.start, p.stop)
    return "encoded"


def convert(entries: Sequence[VideoEntry], out: str, fmt: str, options: Options = Options(),
            log: Callable[[str], None] = print, skipped: Sequence[dict] = ()) -> dict:
    """Convert `entries` into the AE2 csv layout at `out`; returns the summary (also printed
    and saved as convert_summary.json).

    `skipped`: videos the format reader already left out (--skip_bad), for the summary.

    Raises:
        ConvertError: bad input (module docstring), before any video is written unless a
            video's own decode fails while writing; the message names the file, entry and fix.
        DataError: the written dataset fails `byov.data.validate` (a bug: please report it).
    """
    if options.trim not in TRIMS:
        raise ConvertError(f"--trim must be one of {', '.join(TRIMS)}; got {options.trim!r}")
    if not entries:
        raise ConvertError("the annotations name no video to convert; check the paths and the "
                           "selection flags")
    entries = sorted(entries, key=lambda e: e.name)
    _check_entries(entries)
    out = os.path.abspath(out)
    digest = plan_digest(fmt, entries, options)
    resumed = check_output(out, digest)
    plans, bad = _plan(entries, options, log)  # every check before the folder is touched
    skipped = [*skipped, *bad]
    os.makedirs(out, exist_ok=True)
    if not resumed:
        _write_marker(out, fmt, digest, complete=False)
    for stale in glob.glob(os.path.join(glob.escape(out), "*", "*" + video_io.PARTIAL)):
        os.remove(stale)  # a video a killed run did not finish
    written: dict[str, int] = {}
    kept = []
    for i, p in enumerate(plans):
        folder = os.path.join(out, p.entry.view)
        os.makedirs(folder, exist_ok=True)
        try:
            how = _write_video(p, os.path.join(folder, p.entry.name + ".mp4"), options)
        except ConvertError as err:  # a source that fails only when decoded in full
            skip_or_raise(err, options.skip_bad, skipped, p.entry.name, p.entry.source, log)
            continue
        kept.append(p)
        written[how] = written.get(how, 0) + 1
        log(f"[{i + 1}/{len(plans)}] {how} {p.entry.view}/{p.entry.name}.mp4")
    plans = kept
    _check_coverage(plans, skipped)
    # labels last, from the videos actually written
    clipped = [_clip(p.framed, p.start, p.stop) for p in plans]
    phase_ids = order_phases([(c, p.stop - p.start) for c, p in zip(clipped, plans)])
    if not phase_ids:
        raise ConvertError("no segment labels any frame of the kept videos; check the "
                           "annotations and the selection flags")
    labels = {p.entry.name: frame_labels(c.ranges, p.stop - p.start, phase_ids)
              for p, c in zip(plans, clipped)}
    atomic_write(os.path.join(out, LABEL_FILE), lambda f: pickle.dump(labels, f))
    for view in VIEWS:
        for split in SPLITS:
            names = [p.entry.name + ".mp4" for p in plans
                     if p.entry.view == view and p.entry.split == split]
            atomic_write(os.path.join(out, view, f"{split}.csv"),
                         lambda f, names=names: f.write("".join(n + "\n" for n in names)),
                         text=True)
    ordered = sorted(phase_ids, key=phase_ids.get)
    atomic_write_json(os.path.join(out, PHASES), {
        "phases": [{"id": phase_ids[p], "name": p} for p in ordered], "background": -1,
        "format": fmt, "trim": options.trim,
        "id_order": "by typical position: mean over videos of the phase's first frame / L"})
    videos, _ = load_validated(os.path.dirname(out), os.path.basename(out), SPLITS,
                                     frame_cache_dir=None)
    summary = _summary(out, fmt, options, plans, clipped, labels, ordered, skipped, written,
                       resumed, videos)
    atomic_write_json(os.path.join(out, SUMMARY), summary)
    _write_marker(out, fmt, digest, complete=True)
    for line in summary_lines(summary):
        log(line)
    return summary


def _summary(out, fmt, options, plans, clipped, labels, phases, skipped, written, resumed,
             videos) -> dict:
    from byov.eval.monotonic import order_violation

    every = np.concatenate(list(labels.values()))
    fps: dict[str, int] = {}
    for p in plans:
        key = f"{float(p.fps):.3f}".rstrip("0").rstrip(".") + (
            f" ({p.fps.numerator}/{p.fps.denominator})" if p.fps.denominator != 1 else "")
        fps[key] = fps.get(key, 0) + 1
    nonmono = [n for n, y in labels.items() if order_violation(y)]
    return {
        "dataset_root": os.path.dirname(out), "dataset": os.path.basename(out), "format": fmt,
        "resumed": resumed, "trim": options.trim,
        "videos": {s: {v: len([x for x in videos[s] if x.view == v]) for v in VIEWS}
                   for s in SPLITS},
        "frames": int(every.size), "phases": len(phases), "phase_names": phases,
        "background_fraction": float(np.mean(every == -1)),
        "fps": fps, "clamped_segments": sum(c.clamped for c in clipped),
        "empty_segments": sum(c.empty for c in clipped),
        "video_files": written,
        "video_handling": ("whole mp4 sources hard-linked (copied with --copy or across file "
                           "systems); trimmed videos, other containers and frame folders "
                           "re-encoded with libx264 CRF " + video_io.CRF + " (not lossless)"),
        "non_monotonic_videos": len(nonmono),
        "skipped": skipped,
    }


def summary_lines(s: dict) -> list[str]:
    """The printed summary of a conversion."""
    lines = [f"converted ({s['format']}) into {os.path.join(s['dataset_root'], s['dataset'])}"
             f"{' (resumed)' if s['resumed'] else ''}: valid AE2 csv layout",
             "videos (ego/exo): " + ", ".join(f"{sp} {s['videos'][sp]['ego']}/"
                                              f"{s['videos'][sp]['exo']}" for sp in SPLITS),
             f"frames: {s['frames']}, phases: {s['phases']}, background (-1) frames: "
             f"{100 * s['background_fraction']:.1f}%",
             "fps found: " + ", ".join(f"{k} x{v}" for k, v in s["fps"].items()),
             f"segments clamped at a video end: {s['clamped_segments']}, covering no frame: "
             f"{s['empty_segments']}",
             "video files: " + ", ".join(f"{k} {v}" for k, v in sorted(s["video_files"].items()))
             + f" (trim: {s['trim']}; {s['video_handling']})"]
    if s["non_monotonic_videos"]:
        lines.append(f"{s['non_monotonic_videos']} videos have phases that repeat or re-order: "
                     f"progression and Kendall's tau will be n/a (docs/evaluation.md)")
    if s["skipped"]:
        lines.append(f"SKIPPED {len(s['skipped'])} videos (--skip_bad): "
                     + "; ".join(f"{x['video']}: {x['reason']}" for x in s["skipped"]))
    lines.append(f"train with: python train.py --dataset_root {s['dataset_root']} --dataset "
                 f"{s['dataset']} ...")
    return lines
