"""The trainable BYOV encoder (released `byov_encoder` in BYOV models/embedder.py;
docs/released_code.md#encoder)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import Block, init_weights, interpolate_pos_embed, sincos_pos_embed_1d
from .masking import random_masking


class BYOVEncoder(nn.Module):
    """x̄ + P_enc -> [mask] -> LN(d) -> Linear(d, D) -> LN(D) -> `depth` blocks -> z.

    The `norm` LayerNorm sits before the blocks and there is none after them, as released.
    Names match the released module except `blocks` (released: `encoder`).

    Args:
        in_dim: d, width of the merged frame features.
        embed_dim: D, latent width (released `embedding_size`, 256).
        depth: number of blocks (12 in the run scripts).
        num_frames: T0, length of the fixed position table (interpolated for other lengths).
    """

    def __init__(self, in_dim: int, embed_dim: int = 256, depth: int = 12, n_heads: int = 16,
                 mlp_ratio: float = 4.0, num_frames: int = 32):
        super().__init__()
        self.in_dim, self.embed_dim, self.num_frames = in_dim, embed_dim, num_frames
        self.register_buffer("pos_embed", sincos_pos_embed_1d(in_dim, num_frames))
        self.embedding_layer = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, embed_dim))
        self.norm = nn.LayerNorm(embed_dim)
        self.blocks = nn.ModuleList(Block(embed_dim, n_heads, mlp_ratio) for _ in range(depth))
        self.apply(init_weights)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"encoder expects (B, L, {self.in_dim}) features; got shape "
                             f"{tuple(x.shape)} (is hidden_dim set to the backbone's width?)")

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.embedding_layer(x))
        for blk in self.blocks:
            x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unmasked path, used for training context and for inference on whole videos.

        Args:
            x: (B, L, d); for L != num_frames the position table is linearly interpolated to L.

        Returns:
            z: (B, L, embed_dim), the embedding (no final norm, no L2 normalisation).
        """
        self._check(x)
        return self._trunk(x + interpolate_pos_embed(self.pos_embed, x.shape[1]))

    def forward_masked(self, x: torch.Tensor, noise: torch.Tensor, ratio: float
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Visible-frames path (MAE-style): mask after P_enc, before the projection.

        Args:
            x: (B, T, d) with T = num_frames; noise: (B, T); ratio: fraction of frames to mask.

        Returns:
            z_kept (B, keep, embed_dim), mask (B, T) float (1 = masked), ids_restore (B, T) long.
        """
        self._check(x)
        if x.shape[1] != self.num_frames:
            raise ValueError(f"masked training streams need T = num_frames = {self.num_frames} "
                             f"frames; got {x.shape[1]}")
        x_kept, mask, ids_restore = random_masking(x + self.pos_embed, noise, ratio)
        return self._trunk(x_kept), mask, ids_restore
