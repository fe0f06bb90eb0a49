"""EMA (bootstrap) teacher for `--target ema` (docs/design.md#prediction-target-and-ema-teacher;
the released code has no teacher).

Usage, right after each optimizer step k:
    ema_update(model.encoder, model.target_encoder, schedule[k])
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn


def init_target(encoder: nn.Module) -> nn.Module:
    """A frozen copy of `encoder`: same weights, requires_grad False, eval mode."""
    target = copy.deepcopy(encoder)
    target.requires_grad_(False)
    return target.eval()


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """theta_target <- m * theta_target + (1 - m) * theta_online, in place.

    Parameters are averaged. Buffers are copied from the online module: BYOV's only buffer is the
    fixed position table (identical in both), and copying is also right for integer buffers
    (e.g. counters), which cannot be averaged.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"EMA momentum must lie in [0, 1]; got {m}")
    p_on, p_tg = dict(online.named_parameters()), dict(target.named_parameters())
    b_on, b_tg = dict(online.named_buffers()), dict(target.named_buffers())
    if p_on.keys() != p_tg.keys() or b_on.keys() != b_tg.keys():
        raise ValueError("EMA target and online module differ in structure; build the target "
                         "with init_target(online)")
    for name, p in p_tg.items():
        p.lerp_(p_on[name].detach(), 1.0 - m)
    for name, b in b_tg.items():
        b.copy_(b_on[name])


def momentum_schedule(base: float, total_steps: int) -> np.ndarray:
    """Per-step cosine momentum, BYOL form: m_k = 1 - (1 - base) * (cos(pi k / K) + 1) / 2.

    Returns:
        float64 array of length total_steps + 1; m_0 = base, m_K = 1.0.
    """
    if not 0.0 <= base <= 1.0:
        raise ValueError(f"base EMA momentum must lie in [0, 1]; got {base}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1; got {total_steps}")
    k = np.arange(total_steps + 1, dtype=np.float64)
    sched = 1.0 - (1.0 - base) * (np.cos(math.pi * k / total_steps) + 1.0) / 2.0
    sched[-1] = 1.0  # cos(pi) + 1 is not exactly 0 in floating point
    return sched
