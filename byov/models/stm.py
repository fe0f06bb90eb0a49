"""Selective token merging (STM; released BYOV models/embedder.py, `Embedder.token_selection`;
docs/released_code.md#stm). No parameters.

Per frame t, the score of patch n is s_t[n] = mean_d |x_t[n] - x_{t+1}[n]|; the last frame reuses
the previous frame's score. The K highest-scoring patch tokens are averaged into one vector.
"""
from __future__ import annotations

from typing import Iterable

import torch


def num_selected_tokens(num_patches: int, topk_ratio: float, num_tokens: int = 0) -> int:
    """K = round((num_tokens or num_patches) * topk_ratio) (docs/design.md#token-merging-k).

    `num_tokens` is the released legacy override (the released code always used 196).
    """
    if num_patches <= 0:
        raise ValueError(f"num_patches must be positive; got {num_patches}")
    if not 0.0 < topk_ratio <= 1.0:
        raise ValueError(f"topk_ratio must lie in (0, 1]; got {topk_ratio}")
    if num_tokens < 0:
        raise ValueError(f"num_tokens must be >= 0 (0 = use the backbone's patch count); "
                         f"got {num_tokens}")
    k = round((num_tokens or num_patches) * topk_ratio)
    if not 1 <= k <= num_patches:
        raise ValueError(f"STM would keep K={k} tokens but the backbone has {num_patches} patches "
                         f"(num_tokens={num_tokens}, topk_ratio={topk_ratio}); adjust them")
    return k


def _check(tokens: torch.Tensor, k: int, lead: int) -> None:
    if tokens.dim() != lead + 2:
        raise ValueError(f"STM expects {lead + 2}-d tokens; got shape {tuple(tokens.shape)}")
    n = tokens.shape[-2]
    if not 1 <= k <= n:
        raise ValueError(f"STM K={k} must lie in [1, {n}] (the number of patch tokens)")


def _merge(tokens: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """tokens (..., N, d), scores (..., N) -> mean of the k top-scoring tokens (..., d)."""
    idx = scores.topk(k, dim=-1).indices
    picked = torch.gather(tokens, -2, idx.unsqueeze(-1).expand(*idx.shape, tokens.shape[-1]))
    return picked.mean(dim=-2)


def _scores(tokens: torch.Tensor) -> torch.Tensor:
    """(..., T, N, d) -> (..., T-1, N): mean |x_t - x_{t+1}| over the channels."""
    return (tokens[..., :-1, :, :] - tokens[..., 1:, :, :]).abs().mean(dim=-1)


def selective_token_merge(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """Merge each frame's K most-changing patch tokens.

    Args:
        tokens: (B, T, N, d) patch tokens of T consecutive frames (T >= 2).
        k: tokens kept per frame.

    Returns:
        (B, T, d) merged frame features.
    """
    _check(tokens, k, lead=2)
    if tokens.shape[1] < 2:
        raise ValueError(f"STM needs at least 2 frames (scores are differences between "
                         f"neighbours); got T={tokens.shape[1]}")
    s = _scores(tokens)
    s = torch.cat([s, s[:, -1:]], dim=1)  # the last frame reuses s_{T-2}
    return _merge(tokens, s, k)


def merge_video_tokens(chunks: Iterable[torch.Tensor], k: int) -> torch.Tensor:
    """STM over adjacent frames of one whole video given in chunks.

    The last frame of each chunk is held back until the next chunk supplies its neighbour, so the
    result equals `selective_token_merge` on the whole video at once, while only one chunk of
    tokens is in memory.

    Args:
        chunks: iterable of (n_i, N, d) patch tokens, in frame order (empty chunks allowed).
        k: tokens kept per frame.

    Returns:
        (L, d) merged features, L = sum n_i >= 2.
    """
    out: list[torch.Tensor] = []
    held: torch.Tensor | None = None  # (1, N, d): the last frame seen, its score still unknown
    last_score: torch.Tensor | None = None  # (1, N): score of the frame before `held`
    for chunk in chunks:
        _check(chunk, k, lead=1)
        if chunk.shape[0] == 0:
            continue
        seq = chunk if held is None else torch.cat([held, chunk], dim=0)
        if seq.shape[0] >= 2:
            s = _scores(seq)
            out.append(_merge(seq[:-1], s, k))
            last_score = s[-1:]
        held = seq[-1:]
    if held is None or last_score is None:
        raise ValueError("STM needs a video of at least 2 frames; got "
                         f"{0 if held is None else 1}")
    out.append(_merge(held, last_score, k))
    return torch.cat(out, dim=0)
