"""The training run: epochs of the method's loss, validation, downstream evaluation, checkpoints.

`run(config)` takes the resolved flat config dict (utils/config.py's fields) and trains in the
run folder `config["output_dir"]`: config.yaml, log.jsonl, tb/, checkpoints/, eval/. Everything
is built by `byov.setup.build_training`; this module only loops. Single process, or one process
per GPU under torchrun (DDP; NCCL on CUDA, gloo on CPU); rank 0 alone logs, evaluates, saves
and holds the run folder's lock.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Mapping

from tqdm import tqdm

from byov import checkpoint as ckpt_lib
from byov import distributed as D
from byov.engine import train_one_epoch, validation_loss
from byov.logger import MetricMeter, RunLogger
from byov.setup import SPLITS, Training, build_training, set_aside_dead_run

VAL_SCORE_KEYS = (("classification_f1", "regular"), ("classification_f1", "ego2exo"),
                  ("classification_f1", "exo2ego"), ("retrieval_map10", "regular"),
                  ("retrieval_map10", "ego2exo"), ("retrieval_map10", "exo2ego"))


def val_score(metrics: Mapping) -> float | None:
    """Mean of the three val F1 and three val mAP@10 values (those that are defined)."""
    values = [(metrics.get(a) or {}).get(b) for a, b in VAL_SCORE_KEYS]
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


def run(config: dict) -> dict:
    """Train as `config` says; returns the last epoch's summary (train/val loss, val metrics)."""
    info = D.init_distributed(config["device"])
    try:
        lock = contextlib.nullcontext()
        if info.is_main:  # one run per folder; the lock dies with the process
            from byov.runlock import RunLock
            lock = RunLock(config["output_dir"])
        with lock:
            return _run(build_training(config, info))
    finally:
        D.cleanup()


def _run(t: Training) -> dict:
    config, info, out_dir = t.config, t.info, t.config["output_dir"]
    if info.is_main:  # only once the resume is known to be valid: a refused one changes nothing
        if t.resume_path is None:
            set_aside_dead_run(out_dir)
        write_config(config, os.path.join(out_dir, "config.yaml"))
    logger = RunLogger(out_dir, enabled=info.is_main,
                       resume_step=t.step if t.resume_path else None)
    manager = ckpt_lib.CheckpointManager(out_dir, config["save_every"])
    step, best = t.step, t.best
    if info.is_main:
        print(f"training {config['method']} on {info.device} "
              f"({D.effective_precision(info.device, config['precision'])}), world size "
              f"{info.world_size}, {t.steps_per_epoch} steps/epoch x {config['epochs']} epochs, "
              f"batch {config['batch_size']}/process, {len(t.train_set)} pairs/epoch")
        if t.start_epoch >= config["epochs"]:
            print(f"{t.resume_path} already completed epoch {t.start_epoch - 1} (0-based) of "
                  f"--epochs {config['epochs']}: nothing to train; raise --epochs to continue")
    summary: dict = {}
    meter = MetricMeter()
    for epoch in range(t.start_epoch, config["epochs"]):
        t.train_set.set_epoch(epoch)
        bar = tqdm(total=t.steps_per_epoch, desc=f"epoch {epoch}", unit="step", leave=False,
                   disable=not info.is_main)
        t0 = time.perf_counter()
        meter.reset_timer()  # the previous epoch's validation / checkpoint time is not a step's
        step, train_loss = train_one_epoch(
            t, step, meter=meter, on_log=lambda s, sc: logger.log(s, epoch=epoch, **sc),
            progress=bar)
        bar.close()
        train_loss = {k: D.all_reduce_mean(v) for k, v in train_loss.items()}
        summary = {"epoch_seconds": time.perf_counter() - t0,
                   **{f"train/{k}": v for k, v in train_loss.items()}}
        metrics = None
        if info.is_main:
            val = validation_loss(t.method, t.val_loader, seed=config["seed"],
                                  device=info.device, autocast=t.autocast)
            summary.update({f"val/{k}": v for k, v in val.items()})
            if config["ds_every_n_epoch"] and (epoch + 1) % config["ds_every_n_epoch"] == 0:
                metrics = downstream(config, t.method, t.videos, t.labels,
                                     os.path.join(out_dir, "eval", f"epoch_{epoch:04d}"))
                summary.update(flat_metrics(metrics))
            logger.log(step, epoch=epoch, **summary)
            is_best = False
            if metrics is not None:
                value = metric_value(metrics, config["best_metric"])
                if value is not None and (best is None or value > best):
                    best, is_best = value, True
            manager.save(checkpoint_state(t, step, epoch, metrics, best), epoch, is_best=is_best)
            print(f"epoch {epoch} (step {step}, {summary['epoch_seconds']:.1f}s): " + ", ".join(
                f"{k} {v:.4f}" for k, v in summary.items() if k != "epoch_seconds"))
        D.barrier()
    logger.close()
    return {"epoch": config["epochs"] - 1, "step": step, **summary}


def write_config(config: Mapping, path: str) -> None:
    """The resolved config as flat yaml, written atomically."""
    import yaml

    from byov.atomic import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))
    print(f"resolved config written to {path}")


def downstream(config: Mapping, method, videos: Mapping, labels: Mapping, out_dir: str) -> dict:
    """Embed train + val with the method's current weights (eval mode, fp32) and run the AE2
    tasks on val; the embeddings, metrics.json and metrics.md go to out_dir."""
    if config["dataset"] == "charades_ego":  # the video-level protocol, on val
        from byov.video_embedding import downstream_video_level
        return downstream_video_level(config, method, videos, labels, out_dir)
    from byov.embedding import embed_split
    from byov.eval import evaluate_embeddings, parse_tasks
    from byov.eval.io import save_split
    from byov.eval.progression import headline_uses_time_feature
    from byov.eval.report import write_metrics

    # eval mode for every part: an unfrozen CNN's BatchNorm must not use or update batch
    # statistics while whole videos are embedded
    modes = {name: m.training for name, m in method.named_modules()}
    method.eval()
    splits = {s: embed_split(method.embed_video, videos[s], labels, s, progress=False)
              for s in SPLITS}
    for name, m in method.named_modules():
        m.training = modes[name]
    for name, data in splits.items():
        save_split(out_dir, name, data)
    metrics = evaluate_embeddings(splits["train"], splits["val"], parse_tasks(config["eval_task"]),
                                  time_feature=headline_uses_time_feature(
                                      config["dataset"], config["progression_time_feature"]),
                                  progress=False)
    metrics["val_score"] = val_score(metrics)
    write_metrics(out_dir, metrics, {"dataset": config["dataset"], "eval_split": "val",
                                     "method": config["method"], "weights": "online"})
    return metrics


CROSS_VIEW_GROUPS = ("classification_f1", "retrieval_map10", "video_map")


def flat_metrics(metrics: Mapping) -> dict:
    """{'val/classification_f1/ego2exo': x, ...} for the logs (defined numbers only): every
    setting of F1 and mAP@10, so the cross-view curves are in log.jsonl and TensorBoard."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping) and key in CROSS_VIEW_GROUPS:
            out.update({f"val/{key}/{s}": v for s, v in value.items() if v is not None})
        elif isinstance(value, float):
            out[f"val/{key}"] = value
    return out


def plain_metrics(metrics: Mapping | None, best: float | None) -> dict:
    keep = ("classification_f1", "retrieval_map10", "progression_r2",
            "progression_r2_with_time_feature", "kendalls_tau", "val_score", "video_map")
    out = {k: metrics[k] for k in keep if metrics and k in metrics}
    out["best"] = best
    return out


def checkpoint_state(t: Training, step: int, epoch: int, metrics, best) -> dict:
    state = {"format_version": ckpt_lib.FORMAT_VERSION, "config": dict(t.config),
             **t.method.state_entries(), "optimizer": t.optimizer.state_dict(), "step": step,
             "epoch": epoch, "rng": ckpt_lib.capture_rng_state(),
             "val_metrics": plain_metrics(metrics, best), "world_size": t.info.world_size,
             "data_fingerprint": t.data_fingerprint}
    if t.scaler is not None and t.scaler.is_enabled():
        state["scaler"] = t.scaler.state_dict()
    return state
