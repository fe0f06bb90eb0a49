"""Downstream evaluation with the AE2 protocol (classification, retrieval, progression, tau).

    # an embedding folder ({train,test}_embeds.npy, _label.npy, _videos.json)
    python evaluate.py --embeddings DIR [--eval_task 1234] [--eval_mode test] [--json out.json]
    # AE2's released folders: val_* holds the TEST split; metadata comes from the dataset
    python evaluate.py --embeddings AE2_ckpts/break_eggs_eval --val_files_are_test \
        --dataset break_eggs --dataset_root AE2_data
    # a checkpoint: embed train + eval split into --embed_dir (default <run>/eval/<ckpt stem>/)
    python evaluate.py --ckpt logs/run/checkpoints/last.pth [--weights online|ema]
    # a trivial baseline through the same four tasks, as configured: time (t/L per frame),
    # frozen (the frozen backbone's merged features), random_init (the untrained method)
    python evaluate.py --config configs/demo.yaml --baseline time

Prints the table, writes metrics.json and metrics.md into the evaluation folder (the embeddings
folder, or --embed_dir), and the metrics dict to --json FILE if given.
"""
from __future__ import annotations

import datetime
import os
import sys

from byov.embedding import BASELINES
from utils.config import build_parser, load_config, to_dict


def build_eval_parser():
    p = build_parser(__doc__.splitlines()[0])
    p.add_argument("--embeddings", metavar="DIR", default=None,
                   help="evaluate the embedding folder DIR (train + eval split files)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write the metrics here")
    p.add_argument("--val_files_are_test", action="store_true", default=False,
                   help="AE2's released folders: val_* files hold the test split")
    p.add_argument("--baseline", choices=BASELINES, default=None,
                   help="evaluate a trivial baseline: time (per-frame feature t/L), frozen (the "
                        "frozen backbone's merged features), random_init (the untrained "
                        "method); embedded into --embed_dir (default "
                        "<output_dir>/eval/baseline_<name>)")
    p.add_argument("--frozen_features", action="store_const", dest="baseline", const="frozen",
                   help="alias of --baseline frozen")
    p.add_argument("--embed_dir", metavar="DIR", default=None,
                   help="evaluation folder: where --ckpt writes embeddings and where "
                        "metrics.json/metrics.md go (default: the embeddings folder)")
    return p


def default_embed_dir(ckpt_path: str) -> str:
    """<run>/eval/<ckpt stem>/ for <run>/checkpoints/<stem>.pth."""
    folder = os.path.dirname(os.path.abspath(ckpt_path))
    run = os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder
    return os.path.join(run, "eval", os.path.splitext(os.path.basename(ckpt_path))[0])


def checked_checkpoint(ckpt_path: str) -> dict:
    """The checkpoint's content, after checking that it holds a model."""
    import torch
    from byov.eval.io import EvalInputError

    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"checkpoint {ckpt_path} does not exist")
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickled object, a Lightning file, or not a torch file at all
        raise EvalInputError(f"{ckpt_path} is not a byov checkpoint ({type(e).__name__}: {e}); "
                             f"pass a file written by train.py") from e
    if not isinstance(ckpt, dict) or "encoder" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise EvalInputError(f"no model in this checkpoint: {ckpt_path} has no 'encoder' entry "
                             f"(found {keys}); pass a checkpoint written by train.py, or "
                             f"evaluate saved embeddings with --embeddings DIR")
    from byov.checkpoint import load_checkpoint
    return load_checkpoint(ckpt_path)


# Keys that only say where things are or how to evaluate: a checkpoint's config may be overridden
# on them (e.g. the data moved); every other key is the checkpoint's own.
LOCATION_KEYS = ("vision_encoder_path",)


def checkpoint_config(argv, parser, ckpt_path: str):
    """(config, args): the checkpoint's config < --config yaml < command line, with the
    architecture keys checked against the checkpoint (the model is rebuilt from it alone)."""
    from byov.checkpoint import ARCH_KEYS, check_compatible
    from utils.config import ConfigError, from_dict

    ckpt = checked_checkpoint(ckpt_path)
    try:
        base = from_dict(ckpt["config"], source=f"{ckpt_path} (its config)")
    except ConfigError as e:
        raise ConfigError(f"{e}. The checkpoint was written by another version of byov") from e
    cfg, args = load_config(argv, parser, base=base)
    if cfg.weights == "ema" and ckpt.get("target") is None:
        from byov.eval.io import EvalInputError
        raise EvalInputError(f"--weights ema needs an EMA teacher, but {ckpt_path} was trained "
                             f"with target: {ckpt['config'].get('target')} and holds none; use "
                             f"--weights online")
    check_compatible(ckpt["config"], to_dict(cfg),
                     [k for k in ARCH_KEYS if k not in LOCATION_KEYS], where=ckpt_path)
    return cfg, args


def _dataset_videos(cfg, split: str) -> list[dict]:
    from byov.data.layout import list_videos  # lazy: the data layer pulls in OpenCV
    from byov.embedding import split_videos
    return split_videos(list_videos(cfg.dataset_root, cfg.dataset, split))


def load_splits(cfg, args, directory: str):
    """(train, eval) SplitData and where their metadata came from."""
    from byov.eval.io import EvalInputError, load_split, videos_json_path

    if args.val_files_are_test and cfg.eval_mode != "test":
        raise EvalInputError("--val_files_are_test reads val_* as the test split; it needs "
                             "--eval_mode test (the default)")
    # the data layer is consulted only when the user named a dataset, never by default
    named = args.val_files_are_test or any(
        k in vars(args) for k in ("dataset", "dataset_root", "config"))
    out, sources = [], []
    for split in ("train", cfg.eval_mode):
        prefix = "val" if (args.val_files_are_test and split == "test") else split
        videos, source = None, videos_json_path(directory, prefix)
        if args.val_files_are_test or (named and not os.path.isfile(source)):
            from byov.data.layout import DataError
            try:
                videos = _dataset_videos(cfg, split)
            except (DataError, OSError) as e:
                raise EvalInputError(
                    f"the metadata of {prefix}_* (no {os.path.basename(source)} used) must come "
                    f"from the {split} split of dataset '{cfg.dataset}' under --dataset_root "
                    f"{cfg.dataset_root}, which could not be listed: {e}") from e
            source = f"dataset {cfg.dataset} at {os.path.abspath(cfg.dataset_root)} ({split})"
        out.append(load_split(directory, prefix, videos=videos, name=split))
        sources.append(source)
    return out[0], out[1], sources


def main(argv=None) -> dict:
    parser = build_eval_parser()
    cfg, args = load_config(argv, parser)
    if sum(map(bool, (args.embeddings, cfg.ckpt, args.baseline))) != 1:
        parser.error("give exactly one of --embeddings DIR, --ckpt PATH or --baseline NAME")
    if cfg.ckpt:
        cfg, args = checkpoint_config(argv, parser, cfg.ckpt)
    if cfg.ckpt or args.baseline not in (None, "time"):  # a missing GPU stops here, first
        from byov.distributed import resolve_device
        resolve_device(cfg.device)
    from byov.eval import evaluate_embeddings, parse_tasks
    from byov.embedding import embed_config_to_folder
    from byov.eval.progression import headline_uses_time_feature
    from byov.eval.report import format_table, to_json, write_metrics

    try:
        tasks = parse_tasks(cfg.eval_task)
    except ValueError as e:
        parser.error(str(e))
    if cfg.ckpt or args.baseline:
        directory = args.embed_dir or (
            default_embed_dir(cfg.ckpt) if cfg.ckpt
            else os.path.join(cfg.output_dir, "eval", f"baseline_{args.baseline}"))
        embedded = embed_config_to_folder(to_dict(cfg), directory, ("train", cfg.eval_mode),
                                          ckpt_path=cfg.ckpt or None, weights=cfg.weights,
                                          baseline=args.baseline, progress=sys.stderr.isatty())
        print(f"{'embedded into' if embedded else 'reusing the embeddings in'} {directory}")
        out_dir = directory
    else:
        directory = args.embeddings
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"embedding folder {directory} does not exist")
        out_dir = args.embed_dir or directory
    os.makedirs(out_dir, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise PermissionError(f"cannot write metrics into {out_dir}; pass --embed_dir DIR")
    train, evl, sources = load_splits(cfg, args, directory)
    time_feature = headline_uses_time_feature(cfg.dataset, cfg.progression_time_feature)
    metrics = evaluate_embeddings(train, evl, tasks, time_feature=time_feature,
                                  few_shot=cfg.few_shot, progress=sys.stderr.isatty())
    meta = {"dataset": cfg.dataset, "eval_split": cfg.eval_mode,
            "embeddings": os.path.abspath(directory),
            "files": ("train_*, val_* (val_* = test split)" if args.val_files_are_test
                      else f"train_*, {cfg.eval_mode}_*"),
            "metadata": "; ".join(sources), "tasks": ",".join(tasks),
            "checkpoint": cfg.ckpt or None, "weights": cfg.weights if cfg.ckpt else None,
            "method": cfg.method if (cfg.ckpt or args.baseline == "random_init") else None,
            "baseline": args.baseline,
            "progression_time_feature": cfg.progression_time_feature,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    print(format_table(metrics, cfg.dataset))
    json_path, md_path = write_metrics(out_dir, metrics, meta)
    print(f"\nwrote {json_path} and {md_path}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(to_json(metrics))
        print(f"wrote {args.json}")
    return metrics


if __name__ == "__main__":
    from byov.errors import ByovError
    from utils.config import ConfigError
    try:
        main()
    except (ByovError, ConfigError, FileNotFoundError, PermissionError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        sys.exit(2)
