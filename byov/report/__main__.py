"""Write a run's visual report: RUN_DIR/report/index.html and its PNG figures.

    python -m byov.report RUN_DIR [--ckpt best|last|PATH] [--split test|val] [--out DIR]
                          [--dataset_root DIR] [--frame_cache_dir DIR] [--no-baselines]
                          [--max_points 800]

Run from the project root (relative data paths in the run's config are relative to it). Missing
or stale embeddings are produced with evaluate.py's machinery first; see the README, "Report".
"""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m byov.report",
                                description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a train.py run folder (--output_dir)")
    p.add_argument("--ckpt", default="best",
                   help="best (default; last.pth when there is no best.pth), last, or a path")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="the evaluated split (default test)")
    p.add_argument("--out", default=None, help="report folder (default RUN_DIR/report)")
    p.add_argument("--dataset_root", default=None,
                   help="where the data is now, if it moved since training")
    p.add_argument("--frame_cache_dir", default=None,
                   help="the h5 frame caches' folder, if not the run's")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip the frozen-features and time baselines")
    p.add_argument("--max_points", type=int, default=800,
                   help="frames in the t-SNE maps (default 800)")
    return p


def _dataset(run_dir: str) -> str | None:
    from byov.report.inputs import read_config
    try:
        return read_config(run_dir)[0].get("dataset")
    except Exception:  # build_report reports a bad run folder with its own message
        return None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if _dataset(args.run_dir) == "charades_ego":  # video-level report (byov/report/video_level.py)
        from byov.report.video_level import build_video_level_report
        res = build_video_level_report(args.run_dir, args.ckpt, args.split, args.out,
                                       {"dataset_root": args.dataset_root,
                                        "frame_cache_dir": args.frame_cache_dir},
                                       baselines=args.baselines)
        for note in res.notes:
            print(f"  {note}")
        print(f"report_seconds: {res.seconds['total']:.1f}")
        print(f"wrote {res.index} ({len(res.images)} figures)")
        return 0
    from byov.report import build_report

    res = build_report(args.run_dir, args.ckpt, args.split, args.out,
                       {"dataset_root": args.dataset_root,
                        "frame_cache_dir": args.frame_cache_dir},
                       baselines=args.baselines, max_points=args.max_points)
    for note in res.inputs.notes:
        print(f"  {note}")
    print("report stages: " + ", ".join(f"{n} {s:.1f}s" for n, s in res.seconds.items()
                                        if n != "total"))
    print(f"report_seconds: {res.seconds['total']:.1f}")
    print(f"wrote {res.index} ({len(res.images)} figures)")
    return 0


if __name__ == "__main__":
    from byov.errors import ByovError
    try:
        sys.exit(main())
    except (ByovError, FileNotFoundError, PermissionError, ValueError) as e:
        print(f"python -m byov.report: error: {e}", file=sys.stderr)
        sys.exit(2)
