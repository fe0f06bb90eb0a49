"""Write the frozen-backbone feature cache (docs/design.md#feature-cache).

    python -m byov.features extract --config configs/break_eggs.yaml [--key value ...]
        [--splits train,val,test] [--kind tokens|merged|both]

Settings come from utils/config.py < --config yaml < command line, as for train.py. The cache goes
to --feature_cache_dir (default <dataset_root>/byov_cache/<dataset>/<backbone>_<input_size>/) in
--feature_dtype (fp16 default). --kind defaults to `merged` when --features merged, else both.
Rerunning resumes: finished videos are skipped.
"""
from __future__ import annotations

import sys

from byov.cli import import_project_config

KIND_CHOICES = ("tokens", "merged", "both")
USAGE = ("usage: python -m byov.features extract --config FILE [--key value ...] "
         "[--splits train,val,test] [--kind tokens|merged|both]")




def build_parser(cfgmod):
    """`python -m byov.features extract`'s parser: its own flags, then the config keys it uses."""
    def own(group):
        group.add_argument("--splits", default="train,val,test",
                           help="comma-separated splits to extract (default train,val,test)")
        group.add_argument("--kind", choices=KIND_CHOICES, default=None,
                           help="tokens (exact), merged (compact) or both; default: merged when "
                                "--features merged, else both")
    parser = cfgmod.build_parser("Extract the frozen-backbone feature cache.", entry="extract",
                                 own=own)
    parser.prog = "python -m byov.features extract"
    return parser


def parse(argv: list[str]):
    """-> (config dict, splits tuple, kinds tuple). Raises SystemExit / ConfigError."""
    cfgmod = import_project_config()
    if not argv or argv[0] != "extract":
        raise SystemExit(USAGE)
    parser = build_parser(cfgmod)
    cfg, args = cfgmod.load_config(argv[1:], parser)
    config = cfgmod.to_dict(cfg)
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    bad = [s for s in splits if s not in ("train", "val", "test")]
    if not splits or bad:
        raise cfgmod.ConfigError(f"--splits must list train, val and/or test separated by "
                                 f"commas; got {args.splits!r}")
    kind = args.kind or ("merged" if cfg.features == "merged" else "both")
    kinds = ("tokens", "merged") if kind == "both" else (kind,)
    return config, splits, kinds


def main(argv: list[str] | None = None) -> dict:
    from byov.features.extract import extract_splits
    from byov.spec import feature_spec

    config, splits, kinds = parse(sys.argv[1:] if argv is None else list(argv))
    spec = feature_spec(config)
    if spec.data.dataset == "synthetic":  # as train.py: the demo data is generated on demand
        from byov.data.synthetic import ensure_synthetic
        ensure_synthetic(spec.data.path, seed=0, replace_stale=True)
    stats = extract_splits(spec, splits, kinds)
    print(f"{'+'.join(kinds)} features of {stats['videos']} videos ({stats['frames']} frames, "
          f"{stats['frames_per_s']:.1f} frames/s), {stats['skipped']} already done, in "
          f"{stats['cache_dir']}")
    return stats


def run() -> None:
    """The `python -m` entry: main() with its errors printed as one line and a non-zero exit."""
    from byov.errors import ByovError

    try:
        main()
    except (import_project_config().ConfigError, ByovError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    run()
