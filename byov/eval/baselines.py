"""Reference embeddings that know nothing of the pixels, to read the evaluation's numbers against.

`time`: a frame's relative position in its video. A dataset where this single number scores
well on phase classification or retrieval cannot tell a model that recognises phases from one
that counts frames (e.g. through the positional embeddings of a temporal model).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from byov.eval.io import EvalInputError, SplitData

# the trivial baselines `evaluate.py --baseline` runs (embedded by byov.downstream); defined here,
# where nothing imports torch, so evaluate.py's argument parser does not pay for it
BASELINES = ("time", "frozen", "random_init")


def time_embeddings(videos: Sequence[dict]) -> np.ndarray:
    """(N, 1) float64 relative time: row t of a video of L frames is t / L, t = 0..L-1.

    Args:
        videos: the evaluation metadata, one {"name", "view", "num_frames"} dict per video in row
            order (as in `SplitData.videos`); frames are in decode order. N = sum of num_frames.
    Raises:
        EvalInputError: a video without a positive integer num_frames.
    """
    lengths = []
    for i, v in enumerate(videos):
        n = v.get("num_frames") if isinstance(v, dict) else None
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise EvalInputError(f"time baseline: video #{i} ({v!r}) needs a positive integer "
                                 f"num_frames")
        lengths.append(int(n))
    if not lengths:
        return np.zeros((0, 1), dtype=np.float64)
    return np.concatenate([np.arange(n, dtype=np.float64) / n for n in lengths])[:, None]


def time_split(split: SplitData) -> SplitData:
    """`split` with its embeddings replaced by `time_embeddings(split.videos)`, (N, 1) float64.

    Labels, videos and the split's name are kept (the lists are copied, not shared).
    """
    return SplitData(time_embeddings(split.videos), np.array(split.labels, copy=True),
                     [dict(v) for v in split.videos], split.split)
