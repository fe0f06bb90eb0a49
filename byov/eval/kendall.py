"""Task 4, Kendall's tau temporal alignment on the eval split (docs/evaluation.md).

For every ordered pair (i, j), i != j, of eval videos (views mixed), both videos are sub-sampled
with stride 5; each query frame of i takes its nearest frame of j (argmin of squared Euclidean
distance, first index on ties) and tau_ij = scipy's kendalltau(arange(n_i), nn).statistic (tau-b).
NaN pairs (constant nn, or a single sub-sampled frame) are dropped; the mean is reported (AE2's
released `evaluation/kendalls_tau.py`, shared by BYOV). Labels are not used, so background frames
change nothing.

Vectorised: one distance block per group of query videos against all sub-sampled frames gives
every pair's nearest neighbours at once (segment-wise argmin), and tau-b is computed for all
candidate videos together from the concordance signs, with scipy's exact formula.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from byov.eval.distance import SquaredDistances
from byov.eval.io import EvalInputError

VIEW_PAIRS = ("ego-ego", "exo-exo", "ego-exo", "exo-ego")
_GROUP_ROWS = 512  # query rows per distance block
_PAIR_ELEMS = 1 << 22  # bound on (frame pairs x candidate videos) held at once


def tau_b_against_order(nn: np.ndarray) -> np.ndarray:
    """tau-b of arange(n) against each column of nn (n, M) int -> (M,) float64, NaN if undefined.

    Equals scipy.stats.kendalltau(np.arange(n), nn[:, m]).statistic bit for bit: x has no ties,
    so con - dis = sum over a < b of sign(nn[b] - nn[a]), and tau = (con - dis) / sqrt(tot) /
    sqrt(tot - ytie), clipped to [-1, 1].
    """
    n, m = nn.shape
    tot = n * (n - 1) // 2
    out = np.full(m, np.nan)
    if tot == 0:
        return out
    a, b = np.triu_indices(n, 1)
    step = max(1, _PAIR_ELEMS // tot)
    for s in range(0, m, step):
        diff = nn[b, s:s + step] - nn[a, s:s + step]
        con_minus_dis = np.sign(diff).sum(axis=0)
        ytie = np.count_nonzero(diff == 0, axis=0)
        ok = ytie < tot
        tau = con_minus_dis[ok] / np.sqrt(tot) / np.sqrt(tot - ytie[ok])
        out[s:s + step][ok] = np.clip(tau, -1.0, 1.0)
    return out


def pair_taus(x: np.ndarray, lengths: Sequence[int], stride: int = 5,
              progress: bool = False) -> np.ndarray:
    """(V, V) tau of every ordered pair (query row, candidate column); NaN on the diagonal.

    Args:
        x: (N, D) embeddings of V videos concatenated in row order; lengths: (V,) frames each.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if stride < 1:
        raise EvalInputError(f"kendall: stride must be >= 1, got {stride}")
    v = len(lengths)
    starts = np.cumsum(lengths) - lengths
    sub = [s + np.arange(0, n, stride) for s, n in zip(starts, lengths)]
    sub_len = np.asarray([len(r) for r in sub], dtype=np.int64)
    xs = np.asarray(x)[np.concatenate(sub)]
    seg = np.cumsum(sub_len) - sub_len  # first sub-sampled row of each video
    pos = np.arange(len(xs)) - np.repeat(seg, sub_len)  # index within its video
    dist = SquaredDistances(xs)
    taus = np.full((v, v), np.nan)
    groups, first = [], 0
    for i in range(v + 1):  # consecutive query videos with about _GROUP_ROWS rows
        if i == v or (i > first and seg[i] - seg[first] + sub_len[i] > _GROUP_ROWS):
            groups.append(range(first, i))
            first = i
    groups = [g for g in groups if len(g)]
    for group in tqdm(groups, desc="kendall", unit="block", disable=not progress):
        r0 = seg[group[0]]
        d = dist(xs[r0:seg[group[-1]] + sub_len[group[-1]]])
        mins = np.minimum.reduceat(d, seg, axis=1)
        hit = d == np.repeat(mins, sub_len, axis=1)
        # first index of the minimum inside each candidate video's segment
        nn = np.minimum.reduceat(np.where(hit, pos, len(xs)), seg, axis=1)
        for i in group:
            taus[i] = tau_b_against_order(nn[seg[i] - r0:seg[i] - r0 + sub_len[i]])
            taus[i, i] = np.nan
    return taus


def _nanmean_or_none(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.mean(values)) if len(values) else None


def kendalls_tau(x: np.ndarray, videos: Sequence[dict], stride: int = 5,
                 progress: bool = False) -> tuple[float, dict[str, float | None]]:
    """Mean tau over ordered pairs (NaNs dropped), and the same per view pair.

    Args:
        x: (N, D) eval embeddings; videos: per-video dicts (view, num_frames) in row order.
    Returns:
        (mean, {"ego-ego", "exo-exo", "ego-exo", "exo-ego": mean or None}); mean is NaN and a
        view pair None when it has no defined pair (fewer than 2 videos, or all pairs NaN).
        The first view of a pair is the query's.
    """
    lengths = [int(v["num_frames"]) for v in videos]
    ego = np.asarray([v["view"] == "ego" for v in videos], dtype=bool)
    taus = pair_taus(x, lengths, stride, progress)
    off = ~np.eye(len(videos), dtype=bool)
    flat = taus[off]  # ordered pairs, query-major: the released accumulation order
    flat = flat[~np.isnan(flat)]
    mean = float(np.mean(flat)) if len(flat) else float("nan")
    views = {"ego": ego, "exo": ~ego}
    by_view = {}
    for name in VIEW_PAIRS:
        q, c = name.split("-")
        by_view[name] = _nanmean_or_none(taus[views[q][:, None] & views[c][None, :] & off])
    return mean, by_view
