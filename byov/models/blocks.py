"""Transformer building blocks shared by the BYOV encoder and decoder.

`Block` mirrors timm 0.6.12's ViT block (pre-LN, fused qkv, exact GELU, no dropout / drop-path /
LayerScale) with the same parameter names (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`,
`mlp.fc2`), so the released weights load by name. The 1-D sin-cos table follows MAE.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def sincos_pos_embed_1d(dim: int, length: int) -> torch.Tensor:
    """Fixed MAE 1-D sin-cos position table (released BYOV utils/pos_embed.py,
    `get_1d_sincos_pos_embed_from_grid`; docs/released_code.md#encoder).

    omega_i = 1 / 10000^(i / (dim/2)); P[p, i] = sin(p * omega_i), P[p, dim/2 + i] = cos(p * omega_i).
    Computed in float64 as MAE does, returned as float32.

    Returns:
        (1, length, dim) float32.
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"sin-cos position embedding needs a positive even dim; got {dim}")
    if length <= 0:
        raise ValueError(f"sin-cos position embedding needs a positive length; got {length}")
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", np.arange(length, dtype=np.float64), omega)
    table = np.concatenate([np.sin(out), np.cos(out)], axis=1)
    return torch.from_numpy(table).float().unsqueeze(0)


def interpolate_pos_embed(pe: torch.Tensor, length: int) -> torch.Tensor:
    """Resample a (1, T0, d) position table to (1, length, d) along time.

    Linear interpolation with align_corners=False, as the released inference path does when a
    whole video of L != T0 frames is embedded. Returns `pe` itself when length == T0.
    """
    if pe.dim() != 3 or pe.shape[0] != 1:
        raise ValueError(f"expected a (1, T0, d) position table; got shape {tuple(pe.shape)}")
    if length <= 0:
        raise ValueError(f"cannot interpolate a position table to length {length}")
    if length == pe.shape[1]:
        return pe
    out = F.interpolate(pe.transpose(1, 2), size=length, mode="linear", align_corners=False)
    return out.transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm layout)."""

    def __init__(self, dim: int, n_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"width {dim} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """x: (B, T, dim) -> (B, T, dim). Default scale 1/sqrt(head_dim), as timm."""
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.n_heads, c // self.n_heads).permute(2, 0, 3, 1, 4)
        # The released causal bias is log(1e-45) = -103.28 rather than -inf; since the diagonal is
        # always visible, exp(-103.28) is below fp32 resolution next to it (released BYOV
        # models/layer.py, `Attention.forward`; docs/released_code.md#decoder).
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as timm's default
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, n_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """x: (B, T, dim) -> (B, T, dim); `causal` lets position t attend to positions <= t only."""
        x = x + self.attn(self.norm1(x), causal=causal)
        return x + self.mlp(self.norm2(x))


def init_weights(module: nn.Module) -> None:
    """MAE init: xavier-uniform Linear weights (fused qkv included), zero biases, LN = (1, 0)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
