"""One training epoch and the validation loss, in plain PyTorch (MAE's engine, DEC 8).

`TrainStep` is the module that DDP wraps: frames (or cached tokens / merged features) of a batch of
clip pairs in, the BYOV loss dict out.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from byov.errors import ByovError
from byov.models.masking import draw_noise
from byov.models.stm import selective_token_merge


class NonFiniteLossError(ByovError, RuntimeError):
    """The loss became NaN or inf: training stops instead of writing a broken checkpoint."""


class TrainStep(nn.Module):
    """(inputs, noise) -> BYOV loss dict.

    inputs (B, 2, T, ...), one of:
        pixels (B, 2, T, 3, S, S) -> frame encoder -> tokens -> STM over the T sampled frames;
        tokens (B, 2, T, N, d)    -> STM (exact token cache);
        merged (B, 2, T, d)       -> used as is (merged feature cache).
    The merged features are both the encoder input and (detached, inside BYOV) the target.
    """

    def __init__(self, frame_encoder: nn.Module | None, model: nn.Module, k: int):
        super().__init__()
        self.frame_encoder = frame_encoder
        self.model = model
        self.k = k

    def merged(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 2, T, ...) -> (B, 2, T, d) merged frame features."""
        b, v, t = inputs.shape[:3]
        if inputs.dim() == 6:
            if self.frame_encoder is None:
                raise ValueError("pixel inputs need a frame encoder")
            tokens = self.frame_encoder(inputs.flatten(0, 2))  # (B*2*T, N, d)
            inputs = tokens.view(b, v, t, *tokens.shape[1:])
        if inputs.dim() == 5:
            x = selective_token_merge(inputs.flatten(0, 1), self.k)  # (B*2, T, d)
            return x.view(b, v, t, -1)
        if inputs.dim() == 4:
            return inputs
        raise ValueError(f"inputs must be (B, 2, T, 3, S, S), (B, 2, T, N, d) or (B, 2, T, d); "
                         f"got {tuple(inputs.shape)}")

    def forward(self, inputs: torch.Tensor, noise: dict) -> dict:
        x = self.merged(inputs)
        if self.frame_encoder is None or getattr(self.frame_encoder, "frozen", True):
            x = x.detach()
        return self.model(x[:, 0], x[:, 1], noise)


def step_noise(batch: int, num_frames: int, entropy: tuple[int, ...],
               device: torch.device) -> dict:
    """Mask noise for one step, a pure function of `entropy` (e.g. (seed, stream, step, rank)), so
    a resumed run redraws exactly the masks the interrupted one would have used."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(entropy))
                                          .generate_state(1)[0]))
    return {k: v.to(device, non_blocking=True) for k, v in
            draw_noise(batch, num_frames, generator=g).items()}


LOSS_KEYS = ("loss", "msm", "mcm_view1", "mcm_view2")


def train_one_epoch(step_module: nn.Module, model: nn.Module, loader: Iterable,
                    optimizer: torch.optim.Optimizer, lr_values: np.ndarray,
                    momentum_values: np.ndarray | None, start_step: int, *, seed: int, rank: int,
                    num_frames: int, device: torch.device,
                    autocast: Callable[[], contextlib.AbstractContextManager],
                    scaler=None, grad_clip: float = 0.0, meter=None,
                    on_log: Callable[[int, dict], None] | None = None, log_every: int = 4,
                    progress=None) -> tuple[int, dict]:
    """Run one epoch. Returns (next global step, mean of each loss term over the epoch).

    lr_values / momentum_values are per-step schedules indexed by the global step, so a resumed
    run continues them exactly. `model` is the unwrapped BYOV (for the EMA teacher update).
    """
    step_module.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sums = {k: 0.0 for k in LOSS_KEYS}
    n = 0
    step = start_step
    for batch in loader:
        if meter is not None:
            meter.data_ready()
        lr = float(lr_values[min(step, len(lr_values) - 1)])
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs = batch["inputs"].to(device, non_blocking=True)
        noise = step_noise(inputs.shape[0], num_frames, (seed, 0, step, rank), device)
        with autocast():
            out = step_module(inputs, noise)
        loss = out["loss"]
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {step} (msm {out['msm'].item()}, mcm_view1 "
                f"{out['mcm_view1'].item()}, mcm_view2 {out['mcm_view2'].item()}); stopping. "
                f"Lower --lr, use --precision fp32, or resume from the last good checkpoint")
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
        momentum = None
        if momentum_values is not None:
            momentum = float(momentum_values[min(step + 1, len(momentum_values) - 1)])
            model.update_target(momentum)
        values = {k: out[k].item() for k in LOSS_KEYS}
        for key, value in values.items():
            sums[key] += value
        n += 1
        step += 1
        if meter is not None:
            meter.update(**values)
            meter.tick(inputs.shape[0])
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{values['loss']:.4f}")
        if on_log is not None and (step % log_every == 0):
            scalars = {f"train/{k}": v for k, v in values.items()}
            scalars["train/lr"] = lr
            if momentum is not None:
                scalars["train/ema_momentum"] = momentum
            if meter is not None:
                scalars["train/pairs_per_s"] = meter.throughput
            on_log(step, scalars)
    return step, {k: v / max(n, 1) for k, v in sums.items()}


@torch.no_grad()
def validation_loss(step_module: nn.Module, loader: Iterable, *, seed: int, num_frames: int,
                    device: torch.device,
                    autocast: Callable[[], contextlib.AbstractContextManager]) -> dict:
    """Mean loss terms over a fixed set of val pairs with fixed masks (comparable across epochs)."""
    step_module.eval()
    sums = {k: 0.0 for k in LOSS_KEYS}
    n = 0
    for i, batch in enumerate(loader):
        inputs = batch["inputs"].to(device, non_blocking=True)
        noise = step_noise(inputs.shape[0], num_frames, (seed, 1, i), device)
        with autocast():
            out = step_module(inputs, noise)
        for key in LOSS_KEYS:
            sums[key] += out[key].item()
        n += 1
    step_module.train()
    return {k: v / max(n, 1) for k, v in sums.items()}
