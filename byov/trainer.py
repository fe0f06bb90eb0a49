"""The training run: wiring of data, model, optimizer, DDP, logging, evaluation and checkpoints.

`run(config)` takes the resolved flat config dict (utils/config.py's fields) and trains in the
folder `config["output_dir"]` [DEC 17]: config.yaml, log.jsonl, tb/, checkpoints/, eval/.
Single process, or one process per GPU under torchrun (DDP; NCCL on CUDA, gloo on CPU).
"""
from __future__ import annotations

import math
import os
import time
from typing import Mapping

import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from byov import checkpoint as ckpt_lib
from byov import distributed as D
from byov.build import build_byov, build_frame_encoder_from_config, check_backbone_width
from byov.build import tokens_to_keep
from byov.engine import TrainStep, train_one_epoch, validation_loss
from byov.logger import MetricMeter, RunLogger
from byov.models.ema import momentum_schedule
from byov.schedules import lr_schedule

RESUME_KEYS = ("freeze_base",)  # must match too when resuming (beyond the architecture)
VAL_SCORE_KEYS = (("classification_f1", "regular"), ("classification_f1", "ego2exo"),
                  ("classification_f1", "exo2ego"), ("retrieval_map10", "regular"),
                  ("retrieval_map10", "ego2exo"), ("retrieval_map10", "exo2ego"))


def val_score(metrics: Mapping) -> float | None:
    """Mean of the three val F1 and three val mAP@10 values (those that are defined)."""
    values = [metrics.get(a, {}).get(b) for a, b in VAL_SCORE_KEYS]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def metric_value(metrics: Mapping, name: str) -> float | None:
    """`val_score`, a top-level metric (kendalls_tau), or `group.setting` (retrieval_map10.regular)."""
    if name == "val_score":
        return metrics.get("val_score")
    node = metrics
    for part in name.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, (int, float)) else None


def prepare_data(config: Mapping, info: D.DistInfo, frame_encoder):
    """Train/val videos, frame caches built up front (rank 0), the synthetic set if asked; with
    a feature cache, the cache checked against `frame_encoder` (the run's backbone)."""
    from byov.data.frame_cache import ensure_frame_cache, frame_cache_path
    from byov.data.layout import list_videos

    root, dataset = config["dataset_root"], config["dataset"]
    if info.is_main and dataset == "synthetic":
        from byov.data.synthetic import ensure_synthetic
        if ensure_synthetic(os.path.join(root, "synthetic"), seed=0):
            print(f"generated the synthetic dataset in {os.path.join(root, 'synthetic')}")
    D.barrier()
    videos = {s: list_videos(root, dataset, s) for s in ("train", "val")}
    if config["features"] != "fly":  # fail now, naming what to extract, not in a worker
        from byov.features.cache import verify_cache
        verify_cache(config, [v for s in videos.values() for v in s], frame_encoder)
    if info.is_main and config["features"] == "fly":
        todo = [v for s in videos.values() for v in s]
        for v in tqdm(todo, desc="frame caches", unit="video", leave=False):
            ensure_frame_cache(v, frame_cache_path(v, root, dataset, config["frame_cache_dir"]))
    D.barrier()
    return videos


def make_source(config: Mapping, frame_encoder):
    if config["features"] != "fly":
        from byov.features.cache import feature_source
        return feature_source(config, frame_encoder)
    from byov.data.datasets import FrameSource
    return FrameSource(config["dataset_root"], config["dataset"], config["backbone"],
                       config["input_size"], config["frame_cache_dir"])


def _loader(dataset, batch_size, info, num_workers, device):
    sampler = (DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                  shuffle=False, drop_last=False) if info.distributed else None)
    # No persistent workers: each worker holds a copy of the dataset made when it starts, so with
    # persistent workers `PairDataset.set_epoch` would never reach them (every epoch would redraw
    # epoch 0's pairs, and a resumed run would differ from an uninterrupted one).
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      num_workers=num_workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, drop_last=False)


def run(config: dict) -> dict:
    """Train as `config` says; returns the last epoch's summary (train/val loss, val metrics)."""
    info = D.init_distributed(config["device"])
    try:
        return _run(config, info)
    finally:
        D.cleanup()


def _run(config: dict, info: D.DistInfo) -> dict:
    from byov.data.datasets import PairDataset

    device, out_dir = info.device, config["output_dir"]
    D.seed_everything(config["seed"], info.rank)
    precision = D.effective_precision(device, config["precision"])
    autocast = lambda: D.autocast_context(device, config["precision"])  # noqa: E731
    resume_path = ckpt_lib.resolve_resume(config["resume"], out_dir)
    resumed = ckpt_lib.load_checkpoint(resume_path) if resume_path else None
    if resumed is not None:
        # freeze_base too: it decides which parameters the saved optimizer state belongs to
        ckpt_lib.check_compatible(resumed["config"], config, ckpt_lib.ARCH_KEYS + RESUME_KEYS,
                                  where=resume_path)
    elif os.path.isfile(ckpt_lib.CheckpointManager(out_dir, 0).last_path):
        raise ckpt_lib.CheckpointError(
            f"{out_dir} already holds a run ({ckpt_lib.CheckpointManager(out_dir, 0).last_path}); "
            f"a fresh run there would overwrite its checkpoints and logs. Pass --resume auto to "
            f"continue it, or choose another --output_dir")
    if info.is_main:  # only once the resume is known to be valid: a refused one changes nothing
        write_config(config, os.path.join(out_dir, "config.yaml"))

    frame_encoder = build_frame_encoder_from_config(config).to(device)
    check_backbone_width(config, frame_encoder)
    videos = prepare_data(config, info, frame_encoder)
    k = tokens_to_keep(config, frame_encoder.num_patches)
    model = build_byov(config).to(device)
    step_module = TrainStep(frame_encoder if config["features"] == "fly" else None, model, k)
    params = model.trainable_parameters()
    if not config["freeze_base"]:
        params += [p for p in frame_encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config["lr"], weight_decay=config["wd"])
    scaler = D.make_grad_scaler(device, config["precision"])
    ddp = step_module
    if info.distributed:
        ddp = torch.nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)

    source = make_source(config, frame_encoder)
    batch_size, world = config["batch_size"], info.world_size
    steps_per_epoch = config["steps_per_epoch"] or math.ceil(len(videos["train"]) /
                                                             (batch_size * world))
    train_set = PairDataset(videos["train"], config["num_frames"], source, config["pairing"],
                            seed=config["seed"], length=steps_per_epoch * batch_size * world)
    val_set = PairDataset(videos["val"], config["num_frames"], source, config["pairing"],
                          seed=config["seed"] + 1)
    train_loader = _loader(train_set, batch_size, info, config["num_workers"], device)
    val_loader = _loader(val_set, batch_size, info, 0, device) if info.is_main else None
    total_steps = config["epochs"] * steps_per_epoch
    warmup = config["warmup_epochs"] * steps_per_epoch
    lrs = lr_schedule(config["lr"], total_steps, warmup, config["lr_schedule"], config["min_lr"])
    momenta = (momentum_schedule(config["ema_momentum"], total_steps)
               if config["target"] == "ema" else None)

    start_epoch, step, best = 0, 0, None
    if resumed is not None:
        model.encoder.load_state_dict(resumed["encoder"])
        model.decoder.load_state_dict(resumed["decoder"])
        if model.target_encoder is not None:
            model.target_encoder.load_state_dict(resumed["target"])
        if resumed.get("backbone") is not None:
            frame_encoder.load_state_dict(resumed["backbone"])
        optimizer.load_state_dict(resumed["optimizer"])
        if resumed.get("scaler") is not None:
            scaler.load_state_dict(resumed["scaler"])
        start_epoch, step = resumed["epoch"] + 1, resumed["step"]
        best = (resumed.get("val_metrics") or {}).get("best")
        if info.is_main:
            ckpt_lib.restore_rng_state(resumed["rng"])
        print(f"[rank {info.rank}] resumed from {resume_path} at epoch {start_epoch}, "
              f"step {step}")
        del resumed

    logger = RunLogger(out_dir, enabled=info.is_main,
                       resume_step=step if resume_path else None)
    manager = ckpt_lib.CheckpointManager(out_dir, config["save_every"])
    feature_store = {} if config["freeze_base"] else None
    if info.is_main:
        print(f"training on {device} ({precision}), world size {world}, {steps_per_epoch} "
              f"steps/epoch x {config['epochs']} epochs, batch {batch_size}/process, "
              f"{frame_encoder.name} N={frame_encoder.num_patches} d={frame_encoder.dim} K={k}")
        if start_epoch >= config["epochs"]:
            print(f"{resume_path} already completed epoch {start_epoch - 1} (0-based) of "
                  f"--epochs {config['epochs']}: nothing to train; raise --epochs to continue")
    summary: dict = {}
    meter = MetricMeter()
    for epoch in range(start_epoch, config["epochs"]):
        train_set.set_epoch(epoch)
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", unit="step", leave=False,
                   disable=not info.is_main)
        t0 = time.perf_counter()
        meter.reset_timer()  # the previous epoch's validation / checkpoint time is not a step's
        step, train_loss = train_one_epoch(
            ddp, model, train_loader, optimizer, lrs, momenta, step, seed=config["seed"],
            rank=info.rank, num_frames=config["num_frames"], device=device, autocast=autocast,
            scaler=scaler, grad_clip=config["grad_clip"], meter=meter,
            on_log=lambda s, sc: logger.log(s, epoch=epoch, **sc),
            log_every=config["log_every"], progress=bar)
        bar.close()
        train_loss = {k2: D.all_reduce_mean(v) for k2, v in train_loss.items()}
        summary = {"epoch_seconds": time.perf_counter() - t0,
                   **{f"train/{k2}": v for k2, v in train_loss.items()}}
        metrics = None
        if info.is_main:
            val = validation_loss(step_module, val_loader, seed=config["seed"],
                                  num_frames=config["num_frames"], device=device,
                                  autocast=autocast)
            summary.update({f"val/{k2}": v for k2, v in val.items()})
            if config["ds_every_n_epoch"] and (epoch + 1) % config["ds_every_n_epoch"] == 0:
                metrics = downstream(config, frame_encoder, model, device, autocast,
                                     feature_store, os.path.join(out_dir, "eval",
                                                                 f"epoch_{epoch:04d}"))
                summary.update(flat_metrics(metrics))
            logger.log(step, epoch=epoch, **summary)
            is_best = False
            if metrics is not None:
                value = metric_value(metrics, config["best_metric"])
                if value is not None and (best is None or value > best):
                    best, is_best = value, True
            state = checkpoint_state(config, model, frame_encoder, optimizer, scaler, step,
                                     epoch, metrics, best)
            manager.save(state, epoch, is_best=is_best)
            print(f"epoch {epoch} (step {step}, {summary['epoch_seconds']:.1f}s): " + ", ".join(
                f"{k2} {v:.4f}" for k2, v in summary.items() if k2 != "epoch_seconds"))
        D.barrier()
    logger.close()
    return {"epoch": config["epochs"] - 1, "step": step, **summary}


def write_config(config: Mapping, path: str) -> None:
    """The resolved config as flat yaml, written atomically."""
    import yaml

    from byov.atomic import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))
    print(f"resolved config written to {path}")


def downstream(config: Mapping, frame_encoder, model, device, autocast, feature_store,
               out_dir: str) -> dict:
    """Embed train + val with the current encoder and run the AE2 tasks on val."""
    from byov.eval import evaluate_embeddings, parse_tasks
    from byov.eval.embed import embed_splits
    from byov.eval.io import save_split
    from byov.eval.progression import headline_uses_time_feature
    from byov.eval.report import write_metrics

    # eval mode for the backbone too: an unfrozen CNN's BatchNorm must not use or update batch
    # statistics while whole videos are embedded
    was_training = model.training, frame_encoder.training
    model.eval()
    frame_encoder.eval()
    splits = embed_splits(config, ("train", "val"), frame_encoder, model, "online", device,
                          feature_store, autocast=autocast, progress=True)
    model.train(was_training[0])
    frame_encoder.train(was_training[1])
    for name, data in splits.items():
        save_split(out_dir, name, data)
    metrics = evaluate_embeddings(splits["train"], splits["val"], parse_tasks(config["eval_task"]),
                                  time_feature=headline_uses_time_feature(
                                      config["dataset"], config["progression_time_feature"]),
                                  progress=False)
    metrics["val_score"] = val_score(metrics)
    write_metrics(out_dir, metrics, {"dataset": config["dataset"], "eval_split": "val",
                                     "weights": "online"})
    return metrics


def flat_metrics(metrics: Mapping) -> dict:
    """{'val/classification_f1/regular': x, ...} for the logs (defined numbers only)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping) and key in ("classification_f1", "retrieval_map10"):
            out.update({f"val/{key}/{s}": v for s, v in value.items() if v is not None})
        elif isinstance(value, float):
            out[f"val/{key}"] = value
    return out


def plain_metrics(metrics: Mapping | None, best: float | None) -> dict:
    keep = ("classification_f1", "retrieval_map10", "progression_r2",
            "progression_r2_with_time_feature", "kendalls_tau", "val_score")
    out = {k: metrics[k] for k in keep if metrics and k in metrics}
    out["best"] = best
    return out


def checkpoint_state(config, model, frame_encoder, optimizer, scaler, step, epoch, metrics,
                     best) -> dict:
    state = {
        "format_version": ckpt_lib.FORMAT_VERSION, "config": dict(config),
        "encoder": model.encoder.state_dict(), "decoder": model.decoder.state_dict(),
        "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch,
        "rng": ckpt_lib.capture_rng_state(), "val_metrics": plain_metrics(metrics, best),
    }
    if model.target_encoder is not None:
        state["target"] = model.target_encoder.state_dict()
    if not config["freeze_base"]:
        state["backbone"] = frame_encoder.state_dict()
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    return state
