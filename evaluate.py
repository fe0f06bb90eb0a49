"""Downstream evaluation with the AE2 protocol (classification, retrieval, progression, tau).

    # an embedding folder ({train,test}_embeds.npy, _label.npy, _videos.json)
    python evaluate.py --embeddings DIR [--eval_task 1234] [--eval_mode test] [--json out.json]
    # AE2's released folders: val_* holds the TEST split; metadata comes from the dataset
    python evaluate.py --embeddings AE2_ckpts/break_eggs_eval --val_files_are_test \
        --dataset break_eggs --dataset_root AE2_data
    # a checkpoint: embed train + eval split into --embed_dir (default <run>/eval/<ckpt stem>/)
    python evaluate.py --ckpt logs/run/checkpoints/last.pth [--weights online|ema]
    # an exported model (docs/hub.md): a folder, or on the Hub (into <output_dir>/eval/<name>/)
    python evaluate.py --ckpt hf://OWNER/NAME[@REVISION] --dataset_root AE2_data
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

from byov.eval.baselines import BASELINES  # torch-free: --embeddings needs no torch
from utils.config import build_parser, load_config, to_dict


def build_eval_parser():
    def own(p):
        p.add_argument("--embeddings", metavar="DIR", default=None,
                       help="evaluate the embedding folder DIR (train + eval split files)")
        p.add_argument("--json", metavar="FILE", default=None, help="also write the metrics here")
        p.add_argument("--val_files_are_test", action="store_true", default=False,
                       help="AE2's released folders: val_* files hold the test split")
        p.add_argument("--baseline", choices=BASELINES + ("prior",), default=None,
                       help="evaluate a trivial baseline: time (per-frame feature t/L), frozen "
                            "(the frozen backbone's merged features), random_init (the untrained "
                            "method), prior (charades_ego: chance, the training class "
                            "prevalence); embedded into --embed_dir (default "
                            "<output_dir>/eval/baseline_<name>)")
        p.add_argument("--frozen_features", action="store_const", dest="baseline",
                       const="frozen", help="alias of --baseline frozen")
        p.add_argument("--embed_dir", metavar="DIR", default=None,
                       help="evaluation folder: where --ckpt writes embeddings and where "
                            "metrics.json/metrics.md go (default: the embeddings folder)")
    return build_parser(__doc__.splitlines()[0], entry="evaluate", own=own)


def default_embed_dir(ckpt_path: str, output_dir: str = "logs/run") -> str:
    """<run>/eval/<ckpt stem>/ for <run>/checkpoints/<stem>.pth; <output_dir>/eval/<name>/ for an
    export folder or hf:// model (byov.hub.checkpoint_name)."""
    from byov.hub import checkpoint_name, names_export
    if names_export(ckpt_path):
        return os.path.join(output_dir, "eval", checkpoint_name(ckpt_path))
    folder = os.path.dirname(os.path.abspath(ckpt_path))
    run = os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder
    return os.path.join(run, "eval", os.path.splitext(os.path.basename(ckpt_path))[0])


def checked_checkpoint(ckpt_path: str):
    """The checkpoint (`byov.checkpoint.CheckpointFile`, read once), after checking that it
    holds a model."""
    from byov.checkpoint import CheckpointError, CheckpointMissingKeysError, read_checkpoint
    from byov.eval.io import EvalInputError
    from byov.hub import names_export, read_reference

    if names_export(ckpt_path):  # an export (docs/hub.md)
        return read_reference(ckpt_path)

    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"checkpoint {ckpt_path} does not exist")
    try:
        ckpt = read_checkpoint(ckpt_path)
    except CheckpointError as e:
        if isinstance(e, CheckpointMissingKeysError) and "encoder" in e.missing:
            raise EvalInputError(f"no model in this checkpoint: {e}; pass a checkpoint written "
                                 f"by train.py, or evaluate saved embeddings with "
                                 f"--embeddings DIR") from e
        raise EvalInputError(f"{ckpt_path} is not a byov checkpoint ({e}); pass a file "
                             f"written by train.py") from e
    return ckpt


# Keys that only say where things are or how to evaluate: a checkpoint's config may be overridden
# on them (e.g. the data moved); every other key is the checkpoint's own.
LOCATION_KEYS = ("vision_encoder_path",)


def checkpoint_config(argv, parser, ckpt_path: str):
    """(config, args, checkpoint): the checkpoint's config < --config yaml < command line, with
    the architecture keys checked against the checkpoint (the model is rebuilt from it alone)."""
    from byov.checkpoint import ARCH_KEYS, check_compatible
    from utils.config import ConfigError, from_dict

    ckfile = checked_checkpoint(ckpt_path)
    ckpt = ckfile.state
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
    return cfg, args, ckfile


def _dataset_videos(cfg, split: str) -> list[dict]:
    from byov.data.layout import list_videos  # lazy: the data layer pulls in OpenCV
    from byov.downstream.embed import split_videos
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
    ckfile = None
    if cfg.ckpt:
        cfg, args, ckfile = checkpoint_config(argv, parser, cfg.ckpt)
    if cfg.ckpt or args.baseline not in (None, "time"):  # a missing GPU stops here, first
        from byov.distributed import resolve_device
        resolve_device(cfg.device)
    from byov.eval.tables import format_table, to_json, write_metrics
    from byov.spec import downstream_spec, eval_spec
    from byov.writable import probe_writable, writing

    try:
        spec = eval_spec(to_dict(cfg))
    except ValueError as e:
        parser.error(str(e))
    video = spec.protocol == "video"  # Charades-Ego (docs/charades_ego.md)
    if video and args.baseline == "time":
        parser.error("--baseline time (t/L per frame) mean-pools to the same vector for every "
                     "video; the video-level baselines are frozen, random_init and prior")
    if not video and args.baseline == "prior":
        parser.error("--baseline prior is the video-level chance baseline (dataset "
                     "charades_ego); the AE2 tasks have --baseline time")
    if args.json:  # every output folder is checked before the first embedding or task
        os.makedirs(probe_writable(os.path.dirname(os.path.abspath(args.json)),
                                   "the metrics file", "--json"), exist_ok=True)
    # an embeddings folder belongs to no dataset unless one is named (--dataset or a --config):
    # the config's default would otherwise label a user's own folder "break_eggs"
    named = "dataset" in vars(args) or bool(getattr(args, "config", None))
    dataset = cfg.dataset if (cfg.ckpt or args.baseline or named) else None
    meta = {"dataset": dataset, "eval_split": cfg.eval_mode, "tasks": ",".join(spec.tasks),
            "checkpoint": cfg.ckpt or None, "weights": cfg.weights if cfg.ckpt else None,
            "method": cfg.method if (cfg.ckpt or args.baseline == "random_init") else None,
            "baseline": args.baseline,
            "progression_time_feature": cfg.progression_time_feature,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    if cfg.ckpt or args.baseline:
        from byov.downstream.pipeline import evaluate_model

        directory = args.embed_dir or (
            default_embed_dir(cfg.ckpt, cfg.output_dir) if cfg.ckpt
            else os.path.join(cfg.output_dir, "eval", f"baseline_{args.baseline}"))
        meta.update(embeddings=os.path.abspath(directory),
                    files=f"train_*, {cfg.eval_mode}_*",
                    metadata=f"{directory}/{{train,{cfg.eval_mode}}}_videos.json")
        with writing(probe_writable(directory, "the embeddings", "--embed_dir"),
                     "the embeddings", "--embed_dir"):
            result = evaluate_model(downstream_spec(to_dict(cfg)), directory,
                                    checkpoint=ckfile, baseline=args.baseline, meta=meta,
                                    progress=sys.stderr.isatty())
        print(f"{'embedded into' if result.embedded else 'reusing the embeddings in'} "
              f"{directory}")
        metrics, out_dir = result.metrics, directory
    else:
        from byov.downstream.pipeline import score
        from byov.folderlock import FolderLock

        directory = args.embeddings
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"embedding folder {directory} does not exist")
        out_dir = args.embed_dir or directory
        os.makedirs(probe_writable(out_dir, "the metrics", "--embed_dir"), exist_ok=True)
        meta.update(embeddings=os.path.abspath(directory))
        # the folder's metrics are written by one process at a time, and never while an
        # evaluate.py --ckpt re-embeds that folder (it holds the same lock)
        with FolderLock(out_dir, "embedding folder", "evaluation", "--embed_dir"):
            if video:
                from byov.downstream.video_level import score_folder, write_video_metrics
                metrics = score_folder(directory, spec)
                with writing(out_dir, "the metrics", "--embed_dir"):
                    write_video_metrics(out_dir, metrics, meta)
            else:
                train, evl, sources = load_splits(cfg, args, directory)
                metrics = score(train, evl, spec, progress=sys.stderr.isatty())
                meta.update(files=("train_*, val_* (val_* = test split)"
                                   if args.val_files_are_test
                                   else f"train_*, {cfg.eval_mode}_*"),
                            metadata="; ".join(sources))
                with writing(out_dir, "the metrics", "--embed_dir"):
                    write_metrics(out_dir, metrics, meta)
    if video:
        from byov.downstream.video_level import row_name
        from byov.eval.video_level import format_table as video_table
        print(video_table({row_name(meta): metrics}))
    else:
        print(format_table(metrics, dataset))
    print(f"\nwrote {os.path.join(out_dir, 'metrics.json')} and "
          f"{os.path.join(out_dir, 'metrics.md')}")
    if args.json:
        with writing(os.path.dirname(os.path.abspath(args.json)), "the metrics file", "--json"):
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(to_json(metrics))
        print(f"wrote {args.json}")
    return metrics


if __name__ == "__main__":
    from byov.errors import ByovError
    from utils.config import ConfigError
    from byov.cli.interrupt import exit_on_interrupt
    try:
        with exit_on_interrupt("evaluate.py", "each file is written whole or not at all, and "
                               "a half-written folder is never reused; run the same command "
                               "again"):
            main()
    except (ByovError, ConfigError, FileNotFoundError, PermissionError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        sys.exit(2)
