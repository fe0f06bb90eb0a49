"""Task 2, frame retrieval mAP@K on the eval split (REFERENCE §6.4).

Every eval frame is a query against all eval frames, ranked by Euclidean distance on the raw
embeddings. Regular keeps candidates from other videos (either view) and averages over all
queries; Ego2Exo / Exo2Ego keep candidates of the other view and average over ego / exo queries.
AP@K is normalised by the relevant items inside the top K (0 when there are none), as released.

Instead of the released per-query NearestNeighbors loop, queries go in blocks: one float64
distance block (block_size x N) feeds all three settings, and a partial sort picks the top K.
Ties are broken by candidate index.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from byov.eval.distance import SquaredDistances
from byov.eval.io import EvalInputError

SETTINGS = ("regular", "ego2exo", "exo2ego")


def unavailable_settings(is_ego: np.ndarray) -> dict[str, str]:
    """Cross-view settings that cannot run on this split, with the reason."""
    is_ego = np.asarray(is_ego, dtype=bool)
    n_ego, n_exo = int(is_ego.sum()), int((~is_ego).sum())
    if n_ego and n_exo:
        return {}
    missing = "ego" if not n_ego else "exo"
    why = f"the eval split has no {missing} videos, so cross-view retrieval has no queries or " \
          f"candidates"
    return {"ego2exo": why, "exo2ego": why}


def min_candidates(video_ids: np.ndarray, is_ego: np.ndarray) -> dict[str, int]:
    """The fewest candidates any query of each setting has after its filter."""
    counts = np.bincount(video_ids)
    n_ego = int(np.count_nonzero(is_ego))
    return {"regular": len(video_ids) - int(counts.max()),
            "ego2exo": len(video_ids) - n_ego, "exo2ego": n_ego}


def _smallest_k(d: np.ndarray, k: int) -> np.ndarray:
    """(B, k) column indices of the k smallest entries of each row of d (B, M), sorted by
    (distance, index). Rows whose k-th value is tied beyond k are resolved by a stable sort."""
    idx = np.argpartition(d, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(d, idx, axis=1)
    order = np.lexsort((idx, vals), axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    kth = np.take_along_axis(vals, order[:, -1:], axis=1)
    tied = np.flatnonzero(np.count_nonzero(d <= kth, axis=1) > k)
    for r in tied:  # rare: exact distance ties at the k-th place
        idx[r] = np.argsort(d[r], kind="stable")[:k]
    return idx


def _average_precision(rel: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """rel (B, Kmax) bool relevance in rank order -> (len(ks), B) AP@K as released."""
    out = np.empty((len(ks), len(rel)))
    for i, k in enumerate(ks):
        r = rel[:, :k].astype(np.float64)
        precision = np.cumsum(r, axis=1) / np.arange(1, k + 1)
        n_rel = r.sum(axis=1)
        hits = np.sum(precision * r, axis=1)
        out[i] = np.divide(hits, n_rel, out=np.zeros_like(hits), where=n_rel > 0)
    return out


def _check(x, y, video_ids, is_ego, ks, settings, block_size):
    n = len(x)
    if x.ndim != 2 or not len(y) == len(video_ids) == len(is_ego) == n:
        raise EvalInputError(f"retrieval: x must be (N, D) with N labels, video ids and view "
                             f"flags; got x {x.shape}, y {y.shape}, video_ids {video_ids.shape}, "
                             f"is_ego {is_ego.shape}")
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise EvalInputError(f"retrieval: ks must be positive integers, got {ks!r}")
    if block_size < 1:
        raise EvalInputError(f"retrieval: block_size must be >= 1, got {block_size}")
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise EvalInputError(f"retrieval: unknown setting(s) {bad}; valid: {SETTINGS}")
    na = unavailable_settings(is_ego)
    for s in settings:
        if s in na:
            raise EvalInputError(f"retrieval {s}: {na[s]}")
    have = min_candidates(video_ids, is_ego)
    for s in settings:
        if have[s] < max(ks):
            raise EvalInputError(
                f"retrieval {s}: mAP@{max(ks)} needs {max(ks)} candidates per query after the "
                f"{'other-video' if s == 'regular' else 'other-view'} filter, but some queries "
                f"have only {have[s]}; the eval split is too small for this K (pass smaller ks)")


def frame_retrieval(x: np.ndarray, y: np.ndarray, video_ids: np.ndarray, is_ego: np.ndarray,
                    ks: Sequence[int] = (5, 10, 15), block_size: int = 512,
                    settings: Sequence[str] = SETTINGS,
                    progress: bool = False) -> dict[int, dict[str, float]]:
    """mAP@K for each K in `ks` and each requested setting.

    Args:
        x: (N, D) eval embeddings; y: (N,) labels; video_ids: (N,) video of each row;
        is_ego: (N,) bool view flags (parent folder rule).
        block_size: queries per distance block; peak memory is about block_size * N * 17 bytes
            (512: fastest here, 150 MB at N = 25k).
    Returns:
        {K: {setting: mAP as a fraction}}.
    Raises:
        EvalInputError: a setting without queries/candidates, or fewer than max(ks) candidates.
    """
    x = np.asarray(x)
    y, video_ids = np.asarray(y), np.asarray(video_ids)
    is_ego = np.asarray(is_ego, dtype=bool)
    ks = tuple(int(k) for k in ks)
    settings = tuple(settings)
    _check(x, y, video_ids, is_ego, ks, settings, block_size)
    kmax = max(ks)
    dist = SquaredDistances(x)
    cross = [s for s in settings if s != "regular"]
    sums = {"regular": np.zeros(len(ks)), "ego2exo": np.zeros(len(ks)),
            "exo2ego": np.zeros(len(ks))}
    starts = range(0, len(x), block_size)
    for start in tqdm(starts, desc="retrieval", unit="block", disable=not progress):
        rows = slice(start, min(start + block_size, len(x)))
        d = dist(x[rows])
        # own video first: it is a subset of the same view, so one buffer serves both filters
        d[video_ids[rows, None] == video_ids[None, :]] = np.inf
        if "regular" in settings:
            rel = y[_smallest_k(d, kmax)] == y[rows, None]
            sums["regular"] += _average_precision(rel, ks).sum(axis=1)
        if cross:
            q_ego = is_ego[rows]
            d[q_ego[:, None] == is_ego[None, :]] = np.inf
            rel = y[_smallest_k(d, kmax)] == y[rows, None]
            ap = _average_precision(rel, ks)
            sums["ego2exo"] += ap[:, q_ego].sum(axis=1)
            sums["exo2ego"] += ap[:, ~q_ego].sum(axis=1)
    n_queries = {"regular": len(x), "ego2exo": int(is_ego.sum()),
                 "exo2ego": int((~is_ego).sum())}
    return {k: {s: float(sums[s][i] / n_queries[s]) for s in settings} for i, k in enumerate(ks)}
