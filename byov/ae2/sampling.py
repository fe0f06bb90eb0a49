"""AE2's training-clip sampler: main steps, their context frames, and dtw_contrastive's positives.

Released: zihuixue/AlignEgoExo dataset/video_align_dataset.py:100-123 (`get_steps`,
`sample_frames`) and dataset/video_align_dataset_bbox.py:96-107 (`pos_indices`). The released
code draws from torch's and numpy's global generators; here every draw comes from a generator the
caller passes (seeded per item), and the same seed gives the same clip.

- A torch.Generator reproduces the released draws exactly: `torch.randperm(L - offset)` is what
  the released sampler calls.
- A numpy Generator draws from the same distribution (uniform over ordered subsets) with
  `rng.permutation`.
"""
from __future__ import annotations

import numpy as np
import torch

from byov.errors import ByovError


class PositiveStepsError(ByovError, ValueError):
    """dtw_contrastive's positive steps cannot be drawn (too few steps with nonzero confidence)."""


def sample_clip(seq_len: int, num_steps: int, generator, frame_stride: int = 15,
                random_offset: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one training clip of a video with `seq_len` frames, as the released sampler.

    Main steps: if T < L - offset, a random permutation of [offset, L), its first T entries,
    sorted; otherwise 0..T-1. Each (unclamped) step s gets the frames [s - stride, s]; main steps
    and frames are then clamped to [0, L-1], so short videos repeat their last frame (and the
    context of step s > L-1 is min(s - stride, L-1), as released).

    Args:
        seq_len: L, frames in the video. num_steps: T.
        generator: torch.Generator (exactly the released draws) or numpy Generator.
        frame_stride: distance of the context frame (released 15). random_offset: first frame
            that random sampling may pick (released 1).
    Returns:
        steps (T,) int64 main-frame indices; frames (2T,) int64 frame indices to load, ordered
        (context_1, step_1, context_2, step_2, ...).
    Raises:
        ValueError: seq_len < max(1, random_offset), num_steps < 1 or frame_stride < 1.
    """
    L, T = int(seq_len), int(num_steps)
    if L < max(1, random_offset) or T < 1 or frame_stride < 1:
        raise ValueError(f"cannot sample {T} steps (stride {frame_stride}, offset "
                         f"{random_offset}) from a video of {L} frames")
    if T < L - random_offset:
        if isinstance(generator, torch.Generator):
            perm = torch.randperm(L - random_offset, generator=generator)
        else:
            perm = torch.from_numpy(generator.permutation(L - random_offset))
        raw = torch.sort(perm[:T] + random_offset)[0].to(torch.int64)
    else:
        raw = torch.arange(T, dtype=torch.int64)
    frames = torch.stack([raw - frame_stride, raw], dim=1).reshape(-1)
    return raw.clamp(0, L - 1), frames.clamp(0, L - 1)


def positive_steps(num_steps: int, num_positives: int, confidences=None,
                   rng: np.random.Generator | np.random.RandomState | None = None) -> torch.Tensor:
    """dtw_contrastive's positive steps: S sorted indices into 0..T-1 (one view of one pair).

    Without `confidences`: the centres int((i + 0.5) * (T // S)), i < S (released without
    --sample_by_bbox). With per-step detection confidences (T,) (the released uses the mean
    confidence of the 4 boxes at each main step): S steps drawn without replacement with
    probability proportional to the confidence, sorted (`np.random.choice(T, S, replace=False,
    p)`, released video_align_dataset_bbox.py:96-102).

    Args:
        rng: numpy Generator (or a RandomState, which reproduces the released global-numpy draw).
    Returns:
        (S,) int64.
    Raises:
        PositiveStepsError: S > T, or fewer than S steps have nonzero confidence (numpy would
            raise a ValueError in the released code).
        ValueError: confidences of the wrong shape or negative; rng missing.
    """
    T, S = int(num_steps), int(num_positives)
    if not 1 <= S <= T:
        raise PositiveStepsError(f"dtw_shuffle_num ({S}) must be between 1 and num_frames ({T})")
    if confidences is None:
        seg = T // S
        return torch.tensor([int((i + 0.5) * seg) for i in range(S)], dtype=torch.int64)
    w = np.asarray(torch.as_tensor(confidences).detach().cpu(), dtype=np.float64)
    if w.shape != (T,):
        raise ValueError(f"confidences must be (T={T},); got shape {w.shape}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("confidences must be finite and >= 0")
    nonzero = int((w > 0).sum())
    if nonzero < S:
        raise PositiveStepsError(
            f"only {nonzero} of the {T} sampled steps have a nonzero detection confidence, fewer "
            f"than dtw_shuffle_num = {S}; lower dtw_shuffle_num or use the centres rule "
            f"(no confidences)")
    if rng is None:
        raise ValueError("positive_steps with confidences needs a numpy Generator (rng)")
    idx = rng.choice(T, size=S, replace=False, p=w / w.sum())
    return torch.from_numpy(np.sort(idx)).to(torch.int64)
