"""Write the frozen-backbone feature cache (docs/design.md#feature-cache).

    python -m byov.features extract --config configs/break_eggs.yaml [--key value ...]
        [--splits train,val,test] [--kind tokens|merged|both]

Settings come from utils/config.py < --config yaml < command line, as for train.py. The cache goes
to --feature_cache_dir (default <dataset_root>/byov_cache/<dataset>/<backbone>_<input_size>/) in
--feature_dtype (fp16 default). --kind defaults to `merged` when --features merged, else both.
Rerunning resumes: finished videos are skipped.

Speed (docs/gpu.md): --num_workers decode/preprocess processes, --encode_chunk_size frames per
forward, --compile (torch.compile of the backbone), --extract_precision bf16 (autocast; recorded
in the manifest, the default fp32 keeps the released numerics), --channels_last. Several GPUs or
nodes write ONE cache:

    torchrun --nproc_per_node G -m byov.features extract --config FILE ...

each rank extracts its share of the videos (balanced by frames) on its own GPU; rank 0 writes the
manifests, every rank writes its own entries atomically, and the summary adds up all ranks.
"""
from __future__ import annotations

import sys

from byov.cli import import_project_config
from byov.features.pipeline import EXTRACT_PRECISIONS

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
        group.add_argument("--extract_precision", choices=EXTRACT_PRECISIONS, default="fp32",
                           help="backbone compute: fp32 (default, released numerics) or bf16 "
                                "(autocast, recorded in the manifest; docs/gpu.md)")
        group.add_argument("--channels_last", action="store_true", default=False,
                           help="channels-last input and weights (convolutional backbones on "
                                "GPU)")
    parser = cfgmod.build_parser("Extract the frozen-backbone feature cache.", entry="extract",
                                 own=own)
    parser.prog = "python -m byov.features extract"
    return parser


def parse(argv: list[str]):
    """-> (config dict, splits tuple, kinds tuple, extraction options). Raises SystemExit /
    ConfigError."""
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
    return config, splits, kinds, {"precision": args.extract_precision,
                                   "channels_last": args.channels_last}


def main(argv: list[str] | None = None) -> dict:
    """Parse, extract (this rank's share under torchrun), and print the summary of all ranks.
    Returns the summed stats."""
    import dataclasses

    from byov import distributed as D
    from byov.features.extract import extract_splits
    from byov.spec import feature_spec

    config, splits, kinds, options = parse(sys.argv[1:] if argv is None else list(argv))
    spec = feature_spec(config)
    info = D.init_distributed(spec.device)  # a missing GPU fails here, before any work
    try:
        if info.is_main and spec.data.dataset == "synthetic":  # as train.py: made on demand
            from byov.data.synthetic import ensure_synthetic
            ensure_synthetic(spec.data.path, seed=0, replace_stale=True)
        D.barrier()
        mine = extract_splits(dataclasses.replace(spec, device=str(info.device)), splits,
                              kinds, progress=info.is_main, shard=(info.rank, info.world_size),
                              **options)
        D.barrier()  # every rank's entries are written before the summary
        stats = _sum_over_ranks(mine, info)
    finally:
        D.cleanup()
    if info.is_main:
        ranks = ""
        if info.world_size > 1:
            ranks = (f" by {info.world_size} processes: "
                     f"{'+'.join(str(s['videos']) for s in stats['ranks'])} videos")
        print(f"{'+'.join(kinds)} features of {stats['videos']} videos ({stats['frames']} frames, "
              f"{stats['frames_per_s']:.1f} frames/s{ranks}), {stats['skipped']} already done, "
              f"in {stats['cache_dir']}")
    return stats


def _sum_over_ranks(stats: dict, info) -> dict:
    """Videos, skipped and frames added up over ranks; seconds = the slowest rank's."""
    if not info.distributed:
        return stats
    import torch.distributed as dist

    every: list = [None] * info.world_size
    dist.all_gather_object(every, stats)
    total = {key: sum(s[key] for s in every) for key in ("videos", "skipped", "frames")}
    seconds = max(s["seconds"] for s in every)
    return {**total, "seconds": seconds, "cache_dir": stats["cache_dir"],
            "frames_per_s": total["frames"] / seconds if total["frames"] else 0.0,
            "ranks": every}


def run() -> None:
    """The `python -m` entry: main() with its errors printed as one line and a non-zero exit."""
    from byov.errors import ByovError

    try:
        main()
    except (import_project_config().ConfigError, ByovError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    run()
