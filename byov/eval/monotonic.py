"""Do a split's videos pass through their phases in one order? (docs/evaluation.md, "Phases that
repeat or re-order").

AE2's progression (`progression.py`) and Kendall's tau (`kendall.py`) assume every video goes
through phases 0, 1, ..., K-1 in that order, once each, as in AE2's four datasets: progression
regresses the distance to a phase's *last* frame, and tau scores how monotonically one video's
frames align to another's. On procedural data whose steps repeat or
change order between videos (Ego-Exo4D keysteps, Assembly101, H2O), both give a number that does
not measure what it claims, so the evaluation reports them as n/a with the reason below and keeps
classification and retrieval, which need no order.

A video's phase sequence is its labels with background (-1) dropped and consecutive repeats
collapsed (0 0 -1 0 1 1 -> 0 1). The video is monotonic when that sequence strictly increases:
skipping a phase is allowed (0 2), a phase that comes back after another (0 1 0: a repeat) or
a lower phase after a higher one (1 0: a re-order) is not. Background between two stretches of
one phase (0 -1 0) is not a repeat.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["phase_sequence", "order_violation", "nonmonotonic_videos", "unavailable_reason"]


def phase_sequence(labels: np.ndarray) -> np.ndarray:
    """(M,) int64 phases of one video in order of appearance: background (-1) dropped,
    consecutive repeats collapsed. `labels`: (L,) int phase ids, -1 = background."""
    y = np.asarray(labels, dtype=np.int64)
    y = y[y >= 0]
    if y.size == 0:
        return y
    keep = np.concatenate([[True], y[1:] != y[:-1]])
    return y[keep]


def order_violation(labels: np.ndarray) -> str | None:
    """None when one video's phases strictly increase (module docstring), else the first
    violation in words, e.g. "phase 0 repeats after phase 1"."""
    seq = phase_sequence(labels)
    down = np.flatnonzero(seq[1:] <= seq[:-1])
    if down.size == 0:
        return None
    i = int(down[0])
    prev, nxt = int(seq[i]), int(seq[i + 1])
    if nxt in seq[:i + 1]:
        return f"phase {nxt} repeats after phase {prev}"
    return f"phase {nxt} comes after phase {prev}"


def nonmonotonic_videos(labels: np.ndarray, videos: Sequence[dict]) -> list[tuple[str, str]]:
    """(video name, first violation) of every video whose phases are not in order.

    Args:
        labels: (N,) int64 phase ids of a split, rows of `videos` concatenated in order.
        videos: per-video dicts with "name" and "num_frames", in row order (`SplitData.videos`).
    """
    labels = np.asarray(labels)
    out, start = [], 0
    for video in videos:
        n = int(video["num_frames"])
        why = order_violation(labels[start:start + n])
        if why:
            out.append((str(video.get("name", f"video {len(out)}")), why))
        start += n
    return out


def unavailable_reason(splits: Sequence[tuple[str, np.ndarray, Sequence[dict]]],
                       metric: str) -> str | None:
    """Why `metric` (progression or Kendall's tau) means nothing on these splits, or None.

    Args:
        splits: (split name, labels (N,), videos) of each split the metric reads.
        metric: its name, for the message.
    Returns:
        None when every video of every split is monotonic; else a sentence naming how many
        videos of which split are not, the first of them and its violation.
    """
    parts = []
    for name, labels, videos in splits:
        bad = nonmonotonic_videos(labels, videos)
        if bad:
            video, why = bad[0]
            parts.append(f"{len(bad)} of {len(videos)} '{name}' videos (e.g. {video!r}: {why})")
    if not parts:
        return None
    return (f"phases repeat or re-order in {' and '.join(parts)}; {metric} assumes every video "
            f"goes through phases 0..K-1 in order (classification and retrieval do not)")
