"""Training-time choice of videos and frames (docs/released_code.md#training-sampler) from an explicit numpy Generator."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from byov.data.layout import DataError, Video

PAIRINGS = ("merged", "ego_exo")


def sample_frames(num_frames_video: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of one training clip -> (T,) int64, released semantics.

    With L = num_frames_video and T = num_frames: if T < L - 1, T distinct frames drawn uniformly
    from 1..L-1 and sorted (frame 0 is never used); otherwise clamp(arange(T), 0, L - 1), which
    pads a short video by repeating its last frame.
    """
    L, T = int(num_frames_video), int(num_frames)
    if L < 1:
        raise ValueError(f"a video needs at least one frame, got L = {L}")
    if T < 1:
        raise ValueError(f"num_frames (T) must be positive, got {T}")
    if T < L - 1:
        idx = np.sort(rng.choice(L - 1, size=T, replace=False) + 1)
    else:
        idx = np.clip(np.arange(T), 0, L - 1)
    return idx.astype(np.int64)


def draw_pair(videos: Sequence[Video], pairing: str, rng: np.random.Generator) -> tuple[int, int]:
    """Indices (i, j) into `videos` of one training pair (docs/design.md#pairing).

    merged (released): two independent uniform draws from the whole ego+exo pool, so a pair may be
    ego-exo, ego-ego, exo-exo or one video twice. ego_exo: slot 1 an ego video, slot 2 an exo one.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; valid: {', '.join(PAIRINGS)}")
    if len(videos) == 0:
        raise DataError("cannot draw a training pair from an empty list of videos")
    if pairing == "merged":
        return int(rng.integers(len(videos))), int(rng.integers(len(videos)))
    ego = [k for k, v in enumerate(videos) if v.is_ego]
    exo = [k for k, v in enumerate(videos) if not v.is_ego]
    if not ego or not exo:
        missing = "ego" if not ego else "exo"
        raise DataError(f"pairing 'ego_exo' needs ego and exo videos, but the split has no "
                        f"{missing} video; add some or use --pairing merged")
    return ego[int(rng.integers(len(ego)))], exo[int(rng.integers(len(exo)))]
