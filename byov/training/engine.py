"""One training epoch and the validation loss, in plain PyTorch, for any method.

The module stepped is a `byov.methods.Method` (DDP-wrapped when distributed): a batch of its
sampler in, a dict of loss terms out. Per-step schedules are indexed by the global step, and all
randomness of a step comes from (seed, stream, step, rank), so a resumed run continues exactly.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable, Mapping

import torch
import torch.nn as nn

from byov.training.divergence import nan_advice
from byov.errors import ByovError


class NonFiniteLossError(ByovError, RuntimeError):
    """The loss became NaN or inf: training stops instead of writing a broken checkpoint."""


def to_device(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler=None,
                   grad_clip: float = 0.0) -> None:
    """Backward + (unscale, clip) + step; the GradScaler path for fp16."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()


def check_finite(out: Mapping, keys: Iterable[str], step: int,
                 advice: Callable[[], str] | None = None) -> None:
    loss = out["loss"].item()
    if not math.isfinite(loss):
        terms = ", ".join(f"{k} {out[k].item()}" for k in keys if k != "loss")
        raise NonFiniteLossError(
            f"loss is {loss} at step {step} ({terms}); stopping. "
            + (advice() if advice is not None else "Lower --lr, or use --precision fp32"))


def train_one_epoch(t, start_step: int, *, meter=None,
                    on_log: Callable[[int, dict], None] | None = None,
                    progress=None) -> tuple[int, dict]:
    """Run one epoch of a run built by `byov.training.assembly.build_training`.

    Args:
        t: the `Training` (its module, method, train_loader, optimizer, per-step `lrs`, scaler,
            autocast, info, and its run / optim specs: seed, log_every, grad_clip).
        start_step: the global step of the epoch's first optimizer step (schedules and the
            step's randomness are indexed by it).
        meter, on_log, progress: throughput meter, `on_log(step, scalars)` every `log_every`
            steps, and a tqdm bar.
    Returns:
        (next global step, mean of each of the method's loss terms over the epoch).
    Raises:
        NonFiniteLossError: before the optimizer step of a NaN/inf loss.
    """
    method, seed = t.method, t.run.seed
    t.module.train()
    keys = method.loss_keys
    sums = {k: 0.0 for k in keys}
    n, step = 0, start_step
    for batch in t.train_loader:
        if meter is not None:
            meter.data_ready()
        lr = float(t.lrs[min(step, len(t.lrs) - 1)])
        for group in t.optimizer.param_groups:
            group["lr"] = lr
        batch = to_device(batch, t.info.device)
        with t.autocast():
            out = t.module(batch, (seed, 0, step, t.info.rank))
        check_finite(out, keys, step, (lambda: nan_advice(t.run, t.optim, step))
                     if getattr(t.run, "output_dir", None) else None)
        optimizer_step(out["loss"], t.optimizer, t.scaler, t.optim.grad_clip)
        extra = method.after_optimizer_step(step)
        values = {k: out[k].item() for k in keys}
        for key, value in values.items():
            sums[key] += value
        n += 1
        step += 1
        if meter is not None:
            meter.update(**values)
            meter.tick(len(next(iter(batch.values()))))
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{values['loss']:.4f}")
        if on_log is not None and (step % t.run.log_every == 0):
            scalars = {f"train/{k}": v for k, v in values.items()}
            scalars["train/lr"] = lr
            scalars.update({f"train/{k}": v for k, v in extra.items()})
            if meter is not None:
                scalars["train/pairs_per_s"] = meter.throughput
            on_log(step, scalars)
    return step, {k: v / max(n, 1) for k, v in sums.items()}


@torch.no_grad()
def validation_loss(method: nn.Module, loader: Iterable, *, seed: int, device: torch.device,
                    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
                    ) -> dict:
    """Mean loss terms over a fixed set of val pairs with fixed randomness (comparable across
    epochs). Runs the unwrapped method in eval mode, then gives training mode back."""
    method.eval()
    keys = method.loss_keys
    sums = {k: 0.0 for k in keys}
    n = 0
    for i, batch in enumerate(loader):
        with autocast():
            out = method(to_device(batch, device), (seed, 1, i))
        for key in keys:
            sums[key] += out[key].item()
        n += 1
    method.train()
    return {k: v / max(n, 1) for k, v in sums.items()}
