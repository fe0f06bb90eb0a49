"""The set-up layer: from the resolved flat config to everything a training run needs.

`build_training(config, info)` is the one place that reads the config for a run. In order:
1. the run folder: resume or fresh start, checked before anything expensive (`prepare_run`);
2. the data: every split the run touches is validated up front (labels, frame counts), frame
   caches and the feature cache are built when missing (`prepare_data`);
3. the method (`byov.methods`), its optimizer, its schedules and its data loaders.
The trainer (`byov.training.loop`) then only loops.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from byov import checkpoint as ckpt_lib
from byov import distributed as D
from byov import spec as S
from byov.data.fingerprint import data_fingerprint
from byov.data.frame_cache import ensure_frame_cache, frame_cache_path
from byov.data.synthetic import ensure_synthetic
from byov.data.validate import load_validated
from byov.features import ensure_feature_cache
from byov.hub import check_reference, resolve_checkpoint
from byov.spec.keys import changed_on_resume, resume_keys
from byov.spec.protocol import check_training_protocol
from byov.methods import build_method, method_class
from byov.methods.byov_method import check_backbone_width
from byov.models.backbones import frame_encoder_from_spec
from byov.training.schedules import lr_schedule

SPLITS = ("train", "val")  # what a training run reads (val: val loss and downstream metrics)


@dataclass
class Training:
    """What `build_training` returns (see the module docstring)."""
    config: dict  # the resolved flat config, stored as is in every checkpoint
    run: S.RunSpec
    optim: S.OptimSpec
    schedule: S.ScheduleSpec
    downstream: S.DownstreamSpec  # the val protocol (split "val", no few-shot)
    info: D.DistInfo
    method: torch.nn.Module
    module: torch.nn.Module  # the method, DDP-wrapped when distributed
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_set: object
    val_set: object
    train_loader: DataLoader
    val_loader: DataLoader | None
    videos: dict
    labels: dict
    steps_per_epoch: int
    lrs: np.ndarray
    autocast: Callable[[], contextlib.AbstractContextManager]
    resume_path: str | None = None
    start_epoch: int = 0
    step: int = 0
    best: float | None = None
    data_fingerprint: str | None = None  # of the train/val data, stored in every checkpoint
    best_record: dict | None = None  # {"epoch", "step"} of best.pth (ckpt_lib.verify_best)


# ------------------------------------------------------------------------------- run folder
def prepare_run(config: Mapping, info: D.DistInfo) -> tuple[str | None, dict | None]:
    """(resume path, resumed checkpoint) after every check a resume or a fresh start needs.

    Raises CheckpointError: a resume whose architecture or schedule keys differ (naming them), a
    checkpoint without the optimizer/RNG state a resume needs (a weights-only checkpoint: use
    --init_from), or a fresh run into a folder that holds a run.
    """
    run = S.run_spec(config)
    plan = check_training_protocol(S.eval_spec(config))  # best.pth choosable, before any work
    if info.is_main:
        print(plan)
    out_dir = run.output_dir
    resume_path = ckpt_lib.resolve_resume(run.resume, out_dir)
    if resume_path is not None and run.init_from:
        raise ckpt_lib.CheckpointError(
            f"--init_from {run.init_from} starts a new run from weights, but --resume "
            f"{run.resume} would continue {resume_path}; give one of them")
    if run.init_from:  # a missing file or an unfetchable hf:// model: before the data work
        check_reference(run.init_from)
    if resume_path is None:
        last = ckpt_lib.CheckpointManager(out_dir, 0).last_path
        if os.path.isfile(last):
            raise ckpt_lib.CheckpointError(
                f"{out_dir} already holds a run ({last}); a fresh run there would overwrite its "
                f"checkpoints and logs. Pass --resume auto to continue it, or choose another "
                f"--output_dir")
        return None, None
    resumed = ckpt_lib.load_checkpoint(resume_path)
    missing = [k for k in ("optimizer", "rng") if resumed.get(k) is None]
    if missing:
        raise ckpt_lib.CheckpointError(
            f"{resume_path} has no {' / '.join(repr(k) for k in missing)} entry (a checkpoint "
            f"slimmed for sharing?), so it cannot continue its run. To start a new run from its "
            f"weights, pass --init_from {resume_path} (fresh optimizer, schedules from step 0) "
            f"and no --resume")
    ckpt_lib.check_compatible(resumed["config"], config, ckpt_lib.ARCH_KEYS, where=resume_path)
    ckpt_lib.check_compatible(resumed["config"], config, resume_keys(config),
                              where=resume_path,
                              what="settings that change what a training step computes")
    if info.is_main:
        for change in changed_on_resume(resumed["config"], config):
            print(f"resume: {change} (applied from the resumed step on)")
        # best.pth must be the checkpoint the run records as its best
        best, record = ckpt_lib.verify_best(out_dir, resumed, resume_path)
        resumed["val_metrics"] = {**(resumed.get("val_metrics") or {}), "best": best,
                                  "best_record": record}
    saved_world = resumed.get("world_size")
    if saved_world is not None and saved_world != info.world_size:
        raise ckpt_lib.CheckpointError(
            f"{resume_path} was trained with {saved_world} processes, this run has "
            f"{info.world_size}: the steps per epoch and each step's pairs would change. Resume "
            f"with {saved_world} processes (torchrun --nproc_per_node ...)")
    return resume_path, resumed


def set_aside_dead_run(out_dir: str) -> None:
    """A fresh run into a folder whose previous run died before its first checkpoint: its
    log.jsonl and tb/ are renamed (kept, never appended to or deleted)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("log.jsonl", "tb"):
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            aside = os.path.join(out_dir, f"{name}.abandoned-{stamp}")
            os.replace(path, aside)
            print(f"{path} belongs to an earlier run that saved no checkpoint; moved to {aside}")


# ------------------------------------------------------------------------------------- data
def prepare_data(spec: S.MethodSpec, info: D.DistInfo, frame_encoder=None) -> tuple[dict, dict]:
    """({split: [Video]}, labels) for SPLITS, validated before the first step.

    Rank 0 generates the synthetic dataset when asked, checks labels and frame counts of every
    split, and builds the missing h5 frame caches (pixels) or feature-cache entries (tokens /
    merged, with `frame_encoder`), with progress bars; the other ranks wait, then list.
    """
    data = spec.data
    if info.is_main and data.dataset == "synthetic":
        # the demo's own generated data: a folder from an older generator version is replaced
        # whole (only when it holds nothing but this generator's videos), never reused stale
        if ensure_synthetic(data.path, seed=0, replace_stale=True):
            print(f"generated the synthetic dataset in {data.path}")
    D.barrier()
    reads_frames = method_class(spec.name).reads_frames(spec)
    # a run from a complete feature cache reads no frames, so a read-only data root without
    # frame caches is fine then (ensure_feature_cache checks the folders when it must extract)
    videos, labels = load_validated(data.root, data.dataset, SPLITS,
                                    data.frame_cache_dir if reads_frames else None)
    todo = [v for s in SPLITS for v in videos[s]]
    if info.is_main:
        if not reads_frames:
            ensure_feature_cache(spec.features, todo, frame_encoder)
        else:
            from tqdm import tqdm

            for v in tqdm(todo, desc="frame caches", unit="video", leave=False):
                ensure_frame_cache(v, frame_cache_path(v, data.root, data.dataset,
                                                       data.frame_cache_dir))
    D.barrier()
    return videos, labels


# ----------------------------------------------------------------------------------- method
def build_method_for_run(spec: S.MethodSpec, info: D.DistInfo, seed: int, pretrained: bool):
    """(method, videos, labels): a method's shared frozen backbone (BYOV's) is built once, before
    the data, because a missing feature cache is extracted with it. A resumed or initialised run
    (`pretrained` False) needs no pretrained weights beyond what its checkpoint lacks."""
    frame_encoder = None
    encoder_spec = method_class(spec.name).frame_encoder_spec(spec)
    if encoder_spec is not None:
        frame_encoder = frame_encoder_from_spec(encoder_spec)
        if spec.byov is not None:
            check_backbone_width(spec.byov.hidden_dim, frame_encoder)
    videos, labels = prepare_data(spec, info, frame_encoder)
    # building a missing cache draws from the global RNG (DataLoader seeds): re-seed, so the
    # model starts the same whether or not the caches already existed
    D.seed_everything(seed, info.rank)
    method = build_method(spec, pretrained=pretrained, frame_encoder=frame_encoder)
    return method, videos, labels


def _loader(dataset, batch_size: int, info: D.DistInfo, num_workers: int,
            device: torch.device) -> DataLoader:
    sampler = (DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                  shuffle=False, drop_last=False) if info.distributed else None)
    # No persistent workers: each worker holds a copy of the dataset made when it starts, so with
    # persistent workers `set_epoch` would never reach them (every epoch would redraw epoch 0's
    # pairs, and a resumed run would differ from an uninterrupted one).
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      num_workers=num_workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, drop_last=False)


def epoch_length(schedule: S.ScheduleSpec, num_videos: int, world_size: int) -> tuple[int, int]:
    """(pairs per epoch, optimizer steps per epoch per process).

    Released: one pair per train video per epoch (V pairs), the last batch partial. With
    `steps_per_epoch` > 0: exactly that many full batches on every process.
    """
    batch = schedule.batch_size
    if schedule.steps_per_epoch:
        return schedule.steps_per_epoch * batch * world_size, schedule.steps_per_epoch
    return num_videos, math.ceil(math.ceil(num_videos / world_size) / batch)


def load_initial_weights(method, path: str, config: Mapping) -> None:
    """--init_from: a checkpoint's model weights (strictly), no optimizer, step or RNG; a
    checkpoint file, an export folder or hf://OWNER/NAME (byov.hub.resolve_checkpoint)."""
    ckpt = resolve_checkpoint(path)
    # vision_encoder_path says where the backbone is (an export keeps only a local folder's
    # name), as evaluate.py treats it; the weights' shapes are still checked strictly
    keys = tuple(k for k in ckpt_lib.ARCH_KEYS if k != "vision_encoder_path") + ("method",)
    ckpt_lib.check_compatible(ckpt["config"], config, keys, where=path)
    method.load_state_entries(ckpt, where=path)
    print(f"initialised the model from {path} (weights only; a new run from step 0)")


def build_training(config: dict, info: D.DistInfo) -> Training:
    """Everything a run needs, from the resolved config (see the module docstring)."""
    import dataclasses

    device = info.device
    run, optim, schedule = S.run_spec(config), S.optim_spec(config), S.schedule_spec(config)
    mspec = S.method_spec(config)
    downstream = S.downstream_spec(config)
    downstream = dataclasses.replace(downstream, eval=dataclasses.replace(
        downstream.eval, split="val", few_shot=False))
    D.seed_everything(run.seed, info.rank)
    resume_path, resumed = prepare_run(config, info)
    method, videos, labels = build_method_for_run(
        mspec, info, run.seed, pretrained=resumed is None and not run.init_from)
    method.to(device)
    data = data_fingerprint(mspec.data.root, mspec.data.dataset, SPLITS, videos)
    if resumed is not None and resumed.get("data_fingerprint") not in (None, data):
        raise ckpt_lib.CheckpointError(
            f"the data changed since {resume_path} was written (label.pickle, the train/val "
            f"split lists or a video of {mspec.data.dataset} under {mspec.data.root} "
            f"differ): resuming would continue the run on other data. Restore the data, or start "
            f"a new run from these weights with --init_from {resume_path}")

    pairs, steps_per_epoch = epoch_length(schedule, len(videos["train"]), info.world_size)
    total_steps = schedule.epochs * steps_per_epoch
    lrs = lr_schedule(optim.lr, total_steps, schedule.warmup_epochs * steps_per_epoch,
                      schedule.lr_schedule, schedule.min_lr)
    method.configure_schedules(total_steps, schedule)

    optimizer = torch.optim.Adam(method.trainable_parameters(), lr=optim.lr,
                                 weight_decay=optim.weight_decay)
    scaler = D.make_grad_scaler(device, run.precision)
    start_epoch, step, best = 0, 0, None
    if resumed is not None:
        method.load_state_entries(resumed, where=resume_path)
        optimizer.load_state_dict(resumed["optimizer"])
        if resumed.get("scaler") is not None:
            scaler.load_state_dict(resumed["scaler"])
        start_epoch, step = resumed["epoch"] + 1, resumed["step"]
        best = (resumed.get("val_metrics") or {}).get("best")
        if info.is_main:
            ckpt_lib.restore_rng_state(resumed["rng"])
        print(f"[rank {info.rank}] resumed from {resume_path} at epoch {start_epoch}, "
              f"step {step}")
    elif run.init_from:
        load_initial_weights(method, run.init_from, config)

    if config.get("compile"):  # in place: state_dict keys and checkpoints are unchanged
        from byov.compiling import compile_trainable
        print(f"[rank {info.rank}] torch.compile: {', '.join(compile_trainable(method))}")
    module = method
    if info.distributed:
        module = torch.nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None)
    train_set = method.pair_dataset(videos["train"], seed=run.seed, length=pairs)
    val_set = method.pair_dataset(videos["val"], seed=run.seed + 1, length=len(videos["val"]))
    batch = schedule.batch_size
    train_loader = _loader(train_set, batch, info, run.num_workers, device)
    val_loader = _loader(val_set, batch, info, 0, device) if info.is_main else None
    return Training(config=config, run=run, optim=optim, schedule=schedule,
                    downstream=downstream, info=info, method=method, module=module,
                    optimizer=optimizer, scaler=scaler, train_set=train_set, val_set=val_set,
                    train_loader=train_loader, val_loader=val_loader, videos=videos,
                    labels=labels, steps_per_epoch=steps_per_epoch, lrs=lrs,
                    autocast=lambda: D.autocast_context(device, run.precision),
                    resume_path=resume_path, start_epoch=start_epoch, step=step, best=best,
                    data_fingerprint=data, best_record=(resumed.get("val_metrics") or {}).get(
                        "best_record") if resumed is not None else None)


__all__ = ["SPLITS", "Training", "build_training", "epoch_length", "prepare_data",
           "prepare_run", "set_aside_dead_run"]
