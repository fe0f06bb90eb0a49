"""The BYOV decoder (released `byov_decoder` in BYOV models/embedder.py;
docs/released_code.md#decoder): shared blocks for the causal self-view (MSM)
pass and the bidirectional cross-view (MCM) pass. Discarded after training."""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import Block, init_weights, sincos_pos_embed_1d


class BYOVDecoder(nn.Module):
    """decoder_embed -> restore with mask tokens -> + P_dec -> `depth` blocks -> decoder_pred.

    P_dec is never interpolated, so every stream must have T = num_frames frames. Names match the
    released module except `blocks` (released: `decoder`).

    Args:
        embed_dim: width of the encoder latents.
        dec_dim: decoder width (released `decoder_embedding_size`).
        out_dim: prediction width: d (features target) or embed_dim (EMA target).
    """

    def __init__(self, embed_dim: int = 256, dec_dim: int = 256, depth: int = 4, n_heads: int = 16,
                 mlp_ratio: float = 4.0, num_frames: int = 32, out_dim: int = 768):
        super().__init__()
        self.num_frames, self.dec_dim = num_frames, dec_dim
        self.decoder_embed = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, dec_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed_1d(dec_dim, num_frames))
        self.blocks = nn.ModuleList(Block(dec_dim, n_heads, mlp_ratio) for _ in range(depth))
        self.decoder_pred = nn.Sequential(nn.LayerNorm(dec_dim), nn.Linear(dec_dim, out_dim))
        self.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def embed_full(self, z: torch.Tensor) -> torch.Tensor:
        """Unmasked latents (B, T, embed_dim) -> (B, T, dec_dim) with P_dec."""
        self._check_len(z.shape[1])
        return self.decoder_embed(z) + self.decoder_pos_embed

    def embed_masked(self, z_kept: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Visible latents (B, keep, embed_dim) -> restored (B, T, dec_dim) with mask tokens + P_dec."""
        b, t = ids_restore.shape
        self._check_len(t)
        x = self.decoder_embed(z_kept)
        # T + 1 - keep mask tokens: one more than needed, a leftover of MAE's CLS slot; the surplus
        # token is never gathered, so it has no effect (kept for fidelity).
        fill = self.mask_token.to(x.dtype).expand(b, t + 1 - x.shape[1], -1)
        x = torch.cat([x, fill], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return x + self.decoder_pos_embed

    def run_blocks(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, causal=causal)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, dec_dim) -> (B, S, out_dim)."""
        return self.decoder_pred(x)

    def forward_msm(self, restored: torch.Tensor) -> torch.Tensor:
        """Self-view pass: restored r1 stream (B, T, dec_dim) -> causal blocks -> (B, T, out_dim)."""
        return self.head(self.run_blocks(restored, causal=True))

    def forward_mcm(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Cross-view pass over [first ; second] in time, both (B, T, dec_dim) with the same P_dec
        and no segment embedding; bidirectional. Returns (B, 2T, out_dim)."""
        return self.head(self.run_blocks(torch.cat([first, second], dim=1), causal=False))

    def _check_len(self, t: int) -> None:
        if t != self.num_frames:
            raise ValueError(f"the decoder's position table is fixed at num_frames = "
                             f"{self.num_frames} frames; got a stream of {t}")
