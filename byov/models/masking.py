"""Frame-level MAE masking (released `byov_encoder.random_masking`; docs/released_code.md#masking,
docs/design.md#masking-arithmetic-and-injected-noise).

Masks are made from noise that the caller supplies, so tests and parity checks can inject it.
`draw_noise` reproduces the released RNG consumption order.
"""
from __future__ import annotations

import torch

NOISE_KEYS = ("x1_msm", "x1_mcm", "x2_msm", "x2_mcm")


def len_keep(T: int, ratio: float) -> int:
    """Frames kept visible: int(T * (1 - ratio)), keeping the released float error.

    T=32: r=0.4 -> 19, r=0.8 -> 6. T=20: r=0.8 -> 3 (1 - 0.8 = 0.19999999999999996).
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must lie in [0, 1); got {ratio}")
    return int(T * (1 - ratio))


def random_masking(x: torch.Tensor, noise: torch.Tensor, ratio: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE per-sample masking by argsort of noise.

    Args:
        x: (B, T, d) tokens.
        noise: (B, T) values; the `len_keep` smallest positions of each row stay visible.
        ratio: fraction of frames to mask.

    Returns:
        x_kept (B, keep, d) in ascending-noise order; mask (B, T) float32, 1 = masked, in time order;
        ids_restore (B, T) long, which puts [kept ; masked] back into time order.
    """
    if x.dim() != 3:
        raise ValueError(f"random_masking expects (B, T, d) tokens; got shape {tuple(x.shape)}")
    b, t, d = x.shape
    if tuple(noise.shape) != (b, t):
        raise ValueError(f"noise must have shape (B, T) = {(b, t)}; got {tuple(noise.shape)}")
    keep = len_keep(t, ratio)
    if keep < 1:
        raise ValueError(f"mask ratio {ratio} leaves no visible frame out of T={t}; "
                         "lower the ratio or use more frames")
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
    mask = torch.ones(b, t, device=x.device, dtype=torch.float32)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_kept, mask, ids_restore


def draw_noise(batch: int, T: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Uniform [0, 1) noise (B, T) for the four masked streams.

    Drawn in the released order: view-1 self-view (r1), view-1 cross-view (r2), view-2 r1, view-2 r2.
    Returns a dict with keys x1_msm, x1_mcm, x2_msm, x2_mcm.
    """
    if generator is not None and device is None:
        device = generator.device
    return {k: torch.rand(batch, T, generator=generator, device=device) for k in NOISE_KEYS}
