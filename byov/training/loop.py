"""The training run: epochs of the method's loss, validation, downstream evaluation, checkpoints.

`run(config)` takes the resolved flat config dict (utils/config.py's fields) and trains in the
run folder (`--output_dir`): config.yaml, log.jsonl, tb/, checkpoints/, eval/. Everything is
built by `byov.training.assembly.build_training`; this module only loops. Single process, or one
process per GPU under torchrun (DDP; NCCL on CUDA, gloo on CPU); rank 0 alone logs, evaluates,
saves and holds the run folder's lock.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Mapping

from tqdm import tqdm

from byov import checkpoint as ckpt_lib
from byov import distributed as D
from byov.atomic import atomic_write_text
from byov.downstream.pipeline import evaluate_model, metric_value
from byov.provenance import record_command
from byov.spec import run_spec
from byov.training.assembly import Training, build_training, set_aside_dead_run
from byov.training.engine import train_one_epoch, validation_loss
from byov.training.logger import MetricMeter, RunLogger
from byov.folderlock import FolderLock
from byov.writable import probe_writable, writing


def run(config: dict, command: list[str] | None = None) -> dict:
    """Train as `config` says; returns the last epoch's summary (train/val loss, val metrics).
    `command` (e.g. ["train.py", "--config", ...]) is recorded in <output_dir>/command.jsonl."""
    run_dir = run_spec(config)
    info = D.init_distributed(run_dir.device)
    try:
        out = (run_dir.output_dir, "the run folder", "--output_dir")
        lock = contextlib.nullcontext()
        if info.is_main:  # one run per folder; the lock dies with the process
            lock = FolderLock(probe_writable(*out))  # a folder we cannot write fails before work
        with lock, writing(*out):  # a full disk later (eval/epoch_XXXX/, logs): same error
            return _run(build_training(config, info), command)
    finally:
        D.cleanup()


def _run(t: Training, command: list[str] | None = None) -> dict:
    info, out_dir, epochs = t.info, t.run.output_dir, t.schedule.epochs
    method_name = t.downstream.method.name
    if info.is_main:  # only once the resume is known to be valid: a refused one changes nothing
        if t.resume_path is None:
            set_aside_dead_run(out_dir)
        write_config(t.config, os.path.join(out_dir, "config.yaml"))
        if command is not None:  # what the model card of `python -m byov.export` quotes
            record_command(out_dir, command, t.resume_path, info.world_size)
    logger = RunLogger(out_dir, enabled=info.is_main,
                       resume_step=t.step if t.resume_path else None)
    manager = ckpt_lib.CheckpointManager(out_dir, t.run.save_every, best_record=t.best_record)
    step, best = t.step, t.best
    if info.is_main:
        print(f"training {method_name} on {info.device} "
              f"({D.effective_precision(info.device, t.run.precision)}), world size "
              f"{info.world_size}, {t.steps_per_epoch} steps/epoch x {epochs} epochs, "
              f"batch {t.schedule.batch_size}/process, {len(t.train_set)} pairs/epoch")
        if t.start_epoch >= epochs:
            print(f"{t.resume_path} already completed epoch {t.start_epoch - 1} (0-based) of "
                  f"--epochs {epochs}: nothing to train; raise --epochs to continue")
    summary: dict = {}
    meter = MetricMeter()
    every = t.downstream.eval.every_n_epochs
    try:  # an interrupt (byov.cli.interrupt) or an error still closes the log and tb/
        for epoch in range(t.start_epoch, epochs):
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
                val = validation_loss(t.method, t.val_loader, seed=t.run.seed,
                                      device=info.device, autocast=t.autocast)
                summary.update({f"val/{k}": v for k, v in val.items()})
                if every and (epoch + 1) % every == 0:
                    metrics = downstream(t, os.path.join(out_dir, "eval", f"epoch_{epoch:04d}"))
                    summary.update(flat_metrics(metrics))
                logger.log(step, epoch=epoch, **summary)
                is_best = False
                if metrics is not None:
                    value = metric_value(metrics, t.downstream.eval.best_metric)
                    if value is not None and (best is None or value > best):
                        best, is_best = value, True
                manager.save(checkpoint_state(t, step, epoch, metrics, best), epoch,
                             is_best=is_best)
                print(f"epoch {epoch} (step {step}, {summary['epoch_seconds']:.1f}s): "
                      + ", ".join(f"{k} {v:.4f}" for k, v in summary.items()
                                  if k != "epoch_seconds"))
            D.barrier()
    finally:
        logger.close()
    return {"epoch": epochs - 1, "step": step, **summary}


def write_config(config: Mapping, path: str) -> None:
    """The resolved config as flat yaml, written atomically."""
    import yaml

    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))
    print(f"resolved config written to {path}")


def downstream(t: Training, out_dir: str) -> dict:
    """Embed train + val with the method's current weights (eval mode, fp32) and run the AE2
    tasks on val (`byov.downstream.evaluate_model`; the video-level protocol for Charades-Ego);
    embeddings, metrics.json and metrics.md go to out_dir. Returns the metrics (AE2's tasks
    with `val_score`)."""
    spec = t.downstream
    result = evaluate_model(spec, out_dir, method=t.method, data=(t.videos, t.labels),
                            meta={"dataset": spec.eval.dataset, "eval_split": "val",
                                  "method": spec.method.name, "weights": "online"},
                            add_val_score=True)
    return result.metrics


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
