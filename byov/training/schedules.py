"""Per-step schedules, precomputed (docs/design.md#resume-and-per-step-schedules).

The learning rate of global step s is `schedule[s]`; resuming at step s just indexes from s, so a
resumed run follows the same curve as an uninterrupted one (no scheduler state to replay).
"""
from __future__ import annotations

import numpy as np

LR_SCHEDULES = ("constant", "cosine")


def lr_schedule(base_lr: float, total_steps: int, warmup_steps: int = 0, kind: str = "constant",
                min_lr: float = 0.0) -> np.ndarray:
    """Learning rate for each of `total_steps` optimizer steps -> float64 array (total_steps,).

    Warmup: linear from 0, schedule[i] = base_lr * i / warmup_steps for i < warmup_steps, reaching
    base_lr at step warmup_steps. Then `constant` stays at base_lr (released BYOV; min_lr unused)
    and `cosine` decays from base_lr to exactly min_lr at the last step.
    """
    if kind not in LR_SCHEDULES:
        raise ValueError(f"lr schedule {kind!r}: expected one of {LR_SCHEDULES} (--lr_schedule)")
    if int(total_steps) != total_steps or total_steps < 1:
        raise ValueError(f"total_steps must be a positive int, got {total_steps!r}; check "
                         f"--epochs and --steps_per_epoch")
    if int(warmup_steps) != warmup_steps or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be an int in [0, total_steps={total_steps}], got "
                         f"{warmup_steps!r}; lower --warmup_epochs")
    if base_lr < 0 or min_lr < 0:
        raise ValueError(f"learning rates must be >= 0, got base_lr={base_lr}, min_lr={min_lr}")
    if kind == "cosine" and min_lr > base_lr:
        raise ValueError(f"min_lr ({min_lr}) must not exceed base_lr ({base_lr}) for a cosine "
                         f"decay; lower --min_lr")
    total_steps, warmup_steps = int(total_steps), int(warmup_steps)
    warmup = base_lr * np.arange(warmup_steps, dtype=np.float64) / max(warmup_steps, 1)
    n = total_steps - warmup_steps
    if kind == "constant" or n <= 1:
        main = np.full(n, float(base_lr))
    else:
        progress = np.arange(n, dtype=np.float64) / (n - 1)
        main = min_lr + 0.5 * (base_lr - min_lr) * (1.0 + np.cos(np.pi * progress))
    return np.concatenate([warmup, main])
