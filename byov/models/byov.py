"""BYOV: masked self-view (MSM) and cross-view (MCM) modeling over ego/exo frame features.

One training step (released BYOV video_tasks.py, `training_step`; docs/released_code.md#losses):
per view, the encoder runs on the full sequence and on two visible subsets (r1 = `mask_ratio`,
r2 = `mcm_ratio`); the decoder reconstructs the r1-masked frames causally from the same view (MSM),
and the r2-masked frames bidirectionally with the other view's full latents as context (MCM). The
loss is three masked-position MSE terms.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .decoder import BYOVDecoder
from .ema import ema_update, init_target
from .encoder import BYOVEncoder
from .masking import NOISE_KEYS, draw_noise, len_keep

__all__ = ["BYOV", "BYOVEncoder", "BYOVDecoder", "masked_mse"]

TARGETS = ("features", "ema")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(mask * mean_c (pred - target)^2) / sum(mask); pred/target (B, S, C), mask (B, S).

    Computed in float32 whatever the autocast dtype of `pred`.
    """
    err = (pred.float() - target.float()).pow(2).mean(dim=-1)
    return (err * mask).sum() / mask.sum()


class BYOV(nn.Module):
    """Encoder + decoder (+ optional EMA teacher) with the released loss.

    Args:
        in_dim: d, width of the merged frame features (backbone width).
        embed_dim, dec_dim: encoder latent width (256) and decoder width (256).
        depth, depth_dec: encoder / decoder blocks (run scripts: 12 / 4).
        num_frames: T, frames per training clip (position tables are built for it).
        mask_ratio: self-view (MSM) ratio r1. mcm_ratio: cross-view (MCM) ratio r2.
        compat_released_decoder: reproduce the released view-2 MSM bug
            (docs/released_code.md#the-released-view-2-bug).
        target: "features" (frozen STM features, released) or "ema" (EMA teacher latents).
    """

    def __init__(self, in_dim: int, embed_dim: int = 256, dec_dim: int = 256, depth: int = 12,
                 depth_dec: int = 4, n_heads: int = 16, mlp_ratio: float = 4.0,
                 num_frames: int = 32, mask_ratio: float = 0.4, mcm_ratio: float = 0.8,
                 compat_released_decoder: bool = False, target: str = "features"):
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}; got {target!r}")
        for name, r in (("mask_ratio", mask_ratio), ("mcm_ratio", mcm_ratio)):
            if not 0.0 < r < 1.0 or len_keep(num_frames, r) < 1:
                raise ValueError(f"{name}={r} must lie in (0, 1) and leave at least one of "
                                 f"num_frames={num_frames} frames visible")
        self.num_frames, self.mask_ratio, self.mcm_ratio = num_frames, mask_ratio, mcm_ratio
        self.compat_released_decoder, self.target = compat_released_decoder, target
        self.encoder = BYOVEncoder(in_dim, embed_dim, depth, n_heads, mlp_ratio, num_frames)
        out_dim = embed_dim if target == "ema" else in_dim
        self.decoder = BYOVDecoder(embed_dim, dec_dim, depth_dec, n_heads, mlp_ratio, num_frames,
                                   out_dim)
        self.target_encoder = init_target(self.encoder) if target == "ema" else None

    # -- parameters / teacher --------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Encoder + decoder parameters: what the optimizer gets (the EMA teacher is excluded)."""
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def train(self, mode: bool = True) -> "BYOV":
        super().train(mode)
        if self.target_encoder is not None:
            self.target_encoder.eval()  # the teacher is never trained
        return self

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA step for the teacher; call after each optimizer step (target="ema" only)."""
        if self.target_encoder is None:
            raise RuntimeError("update_target needs a model built with target='ema'")
        ema_update(self.encoder, self.target_encoder, momentum)

    def embed(self, x: torch.Tensor, weights: str = "online") -> torch.Tensor:
        """Per-frame embeddings of whole videos: (B, L, d) -> (B, L, embed_dim).

        weights: "online" (trained encoder) or "ema" (teacher; needs target="ema").
        """
        if weights == "online":
            return self.encoder(x)
        if weights == "ema":
            if self.target_encoder is None:
                raise ValueError("weights='ema' needs a model trained with target='ema' "
                                 "(this one has no EMA teacher); use weights='online'")
            return self.target_encoder(x)
        raise ValueError(f"weights must be 'online' or 'ema'; got {weights!r}")

    # -- training forward ------------------------------------------------------------------------
    def forward(self, x1: torch.Tensor, x2: torch.Tensor,
                noise: dict[str, torch.Tensor] | None = None) -> dict:
        """One training step's forward pass and loss.

        Args:
            x1, x2: (B, T, d) merged frame features of the two views, T = num_frames.
            noise: {x1_msm, x1_mcm, x2_msm, x2_mcm} -> (B, T) uniform noise; None draws it from the
                global RNG on x1's device in the released order (see masking.draw_noise).

        Returns:
            dict: loss, msm, mcm_view1, mcm_view2 (scalars); pred_msm, pred_mcm_view1,
            pred_mcm_view2 (B, 2T, out_dim); z1, z2 (B, T, embed_dim) unmasked latents;
            mask {x1_msm, x1_mcm, x2_msm, x2_mcm} -> (B, T), 1 = masked; target (B, 2T, out_dim).
        """
        if x1.dim() != 3 or x1.shape != x2.shape:
            raise ValueError(f"x1 and x2 must both be (B, T, d); got {tuple(x1.shape)} and "
                             f"{tuple(x2.shape)}")
        b, t, _ = x1.shape
        if noise is None:
            noise = draw_noise(b, t, device=x1.device)
        missing = [k for k in NOISE_KEYS if k not in noise]
        if missing:
            raise ValueError(f"noise dict lacks {missing}; expected keys {NOISE_KEYS}")
        enc, dec = self.encoder, self.decoder

        # Both views go through each stream in one batch of 2B (masking is per sample).
        x = torch.cat([x1, x2], dim=0)
        z = enc(x)
        z_r1, m_r1, ids_r1 = enc.forward_masked(
            x, torch.cat([noise["x1_msm"], noise["x2_msm"]]), self.mask_ratio)
        z_r2, m_r2, ids_r2 = enc.forward_masked(
            x, torch.cat([noise["x1_mcm"], noise["x2_mcm"]]), self.mcm_ratio)

        full1, full2 = dec.embed_full(z).chunk(2)
        rest_r1 = dec.embed_masked(z_r1, ids_r1)
        rest_r2_1, rest_r2_2 = dec.embed_masked(z_r2, ids_r2).chunk(2)

        if self.compat_released_decoder:
            # Released bug: view 2's self-view prediction is the head on its un-decoded r2 stream.
            msm1 = dec.forward_msm(rest_r1[:b])
            msm2 = dec.head(rest_r2_2)
        else:
            msm1, msm2 = dec.forward_msm(rest_r1).chunk(2)
        pred_msm = torch.cat([msm1, msm2], dim=1)
        pred_mcm1, pred_mcm2 = dec.forward_mcm(torch.cat([rest_r2_1, full1]),
                                               torch.cat([full2, rest_r2_2])).chunk(2)

        target = self._target(x1, x2, x)
        m1_r1, m2_r1 = m_r1.chunk(2)
        m1_r2, m2_r2 = m_r2.chunk(2)
        zeros = torch.zeros_like(m1_r1)
        msm = masked_mse(pred_msm, target, torch.cat([m1_r1, m2_r1], dim=1))
        mcm1 = masked_mse(pred_mcm1, target, torch.cat([m1_r2, zeros], dim=1))
        mcm2 = masked_mse(pred_mcm2, target, torch.cat([zeros, m2_r2], dim=1))
        z1, z2 = z.chunk(2)
        return {
            "loss": msm + mcm1 + mcm2, "msm": msm, "mcm_view1": mcm1, "mcm_view2": mcm2,
            "pred_msm": pred_msm, "pred_mcm_view1": pred_mcm1, "pred_mcm_view2": pred_mcm2,
            "z1": z1, "z2": z2, "target": target,
            "mask": {"x1_msm": m1_r1, "x1_mcm": m1_r2, "x2_msm": m2_r1, "x2_mcm": m2_r2},
        }

    def _target(self, x1: torch.Tensor, x2: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(B, 2T, out_dim): cat_time(x1, x2) detached, or the teacher's latents on the full views."""
        if self.target_encoder is None:
            return torch.cat([x1, x2], dim=1).detach()
        with torch.no_grad():
            t1, t2 = self.target_encoder(x).chunk(2)
        return torch.cat([t1, t2], dim=1)
