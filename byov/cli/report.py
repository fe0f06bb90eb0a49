"""Write a run's visual report: RUN_DIR/report/index.html and its PNG figures.

    python -m byov.report RUN_DIR [--ckpt best|last|PATH] [--split test|val] [--out DIR]
                          [--dataset_root DIR] [--frame_cache_dir DIR] [--no-baselines]
                          [--max_points 800]

Run from the project root (relative data paths in the run's config are relative to it). Missing
or stale embeddings are produced with the library's evaluation call first (docs/report.md).
"""
from __future__ import annotations

import argparse
import sys

from byov.cli import import_project_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m byov.report",
                                description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a train.py run folder (--output_dir)")
    p.add_argument("--ckpt", default="best",
                   help="best (default; last.pth when there is no best.pth), last, a path, an "
                        "export folder or hf://OWNER/NAME[@REVISION] (docs/hub.md)")
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


def _protocol(run_dir: str) -> str | None:
    """The run's evaluation protocol ("frame" or "video"), None when RUN_DIR is no run folder
    (build_report then says so with its own message)."""
    from byov.report.inputs import ReportError, read_config
    from byov.spec import VIDEO_LEVEL_DATASETS
    try:
        config = read_config(run_dir)[0]
    except ReportError:
        return None
    return "video" if config.get("dataset") in VIDEO_LEVEL_DATASETS else "frame"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from byov.report import build_report

    cfgmod = import_project_config()

    def resolve(values: dict) -> dict:  # defaults for keys an older run did not record
        return cfgmod.to_dict(cfgmod.from_dict(values, source=f"{args.run_dir} (its config)"))

    overrides = {"dataset_root": args.dataset_root, "frame_cache_dir": args.frame_cache_dir}
    if _protocol(args.run_dir) == "video":  # Charades-Ego (byov/report/video_level.py)
        from byov.report.video_level import build_video_level_report
        res = build_video_level_report(args.run_dir, args.ckpt, args.split, args.out, overrides,
                                       baselines=args.baselines, resolve_config=resolve)
        for note in res.notes:
            print(f"  {note}")
        print(f"report_seconds: {res.seconds['total']:.1f}")
        print(f"wrote {res.index} ({len(res.images)} figures)")
        return 0
    res = build_report(args.run_dir, args.ckpt, args.split, args.out, overrides,
                       baselines=args.baselines, max_points=args.max_points,
                       resolve_config=resolve)
    for note in res.inputs.notes:
        print(f"  {note}")
    print("report stages: " + ", ".join(f"{n} {s:.1f}s" for n, s in res.seconds.items()
                                        if n != "total"))
    print(f"report_seconds: {res.seconds['total']:.1f}")
    print(f"wrote {res.index} ({len(res.images)} figures)")
    return 0


def run() -> None:
    """The `python -m` entry: main() with its errors printed as one line and a non-zero exit."""
    from byov.errors import ByovError
    try:
        sys.exit(main())
    except (ByovError, FileNotFoundError, PermissionError, ValueError) as e:
        print(f"python -m byov.report: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
