"""Task 2, frame retrieval mAP@K on the eval split (docs/evaluation.md, "Frame retrieval").

What is reproduced (`retrieval_ap_at_k` in AE2's released `evaluation/frame_retrieval.py`,
shared by BYOV): every eval frame is a query against all eval frames, ranked by
`NearestNeighbors(n_neighbors=N).fit(eval_embeds).kneighbors([query])` (Euclidean, on the raw
embeddings). Regular keeps the candidates of other videos (either view) and averages over all
queries; Ego2Exo / Exo2Ego keep the candidates of the other view and average over ego / exo
queries. AP@K is normalised by the relevant items inside the top K (0 when there are none).
Labels are compared as integers, so a background frame (-1) is relevant to a -1 query.

How, fast and exact:
1. Queries go in blocks (ego queries, then exo). One float32 distance block (queries x all
   candidates, one matrix product) feeds the three settings; a partial sort takes the K + 8
   nearest candidates of each row (the other view's contiguous columns for cross-view, all but
   the query's own video for Regular).
2. Only the relevance sequence of the top K enters AP. A worst-case rounding bound says how far
   these distances can be from the float64 ones scikit-learn computes; candidates closer to each
   other than twice the bound may be ranked differently by scikit-learn (exact ties included: on
   equal distances its heap + introsort order is neither index nor input order, and it changes
   with the OpenMP thread count). A row is certain when every group of such near-tied
   candidates that reaches into its top K holds only relevant or only irrelevant items
   (duplicated frames of one video usually do).
3. Rows that are not certain get float64 distances (for their listed candidates, or their whole
   row when the list may miss one) and the same test with the much smaller float64 bound.
4. The rows still uncertain are ranked by the released call itself, one query at a time, so the
   result equals the released evaluator run in the same environment (scikit-learn version and
   thread settings) for every input, including ties.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from tqdm import tqdm

from byov.eval.io import EvalInputError

SETTINGS = ("regular", "ego2exo", "exo2ego")
_EPS64 = float(np.finfo(np.float64).eps)
_EPS32 = float(np.finfo(np.float32).eps)
_LOOKAHEAD = 8  # sorted candidates kept beyond K, so short tie groups (duplicates) stay vectorised


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
    video_ids = np.asarray(video_ids)
    is_ego = np.asarray(is_ego, dtype=bool)
    counts = np.unique(video_ids, return_counts=True)[1]
    n_ego = int(np.count_nonzero(is_ego))
    n_exo = len(video_ids) - n_ego
    return {"regular": len(video_ids) - int(counts.max()) if len(counts) else 0,
            "ego2exo": n_exo if n_ego else 0, "exo2ego": n_ego if n_exo else 0}


def unsupported_ks(video_ids: np.ndarray, is_ego: np.ndarray, ks: Sequence[int],
                   settings: Sequence[str] = SETTINGS) -> dict[str, dict[int, str]]:
    """{setting: {K: reason}} for the cut-offs some query cannot fill (the release asserts that
    every query keeps K candidates after its filter, so these would stop it)."""
    have = min_candidates(video_ids, is_ego)
    out: dict[str, dict[int, str]] = {}
    for s in settings:
        for k in ks:
            if have[s] < k:
                what = "other-video" if s == "regular" else "other-view"
                out.setdefault(s, {})[int(k)] = (
                    f"mAP@{k} needs {k} candidates per query after the {what} filter, but some "
                    f"queries have only {have[s]}; the eval split is too small for this K")
    return out


def _average_precision(rel: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """rel (B, >= max(ks)) bool relevance in rank order -> (len(ks), B) AP@K as released."""
    out = np.empty((len(ks), len(rel)))
    for i, k in enumerate(ks):
        r = rel[:, :k].astype(np.float64)
        precision = np.cumsum(r, axis=1) / np.arange(1, k + 1)
        n_rel = r.sum(axis=1)
        hits = np.sum(precision * r, axis=1)
        out[i] = np.divide(hits, n_rel, out=np.zeros_like(hits), where=n_rel > 0)
    return out


def _rounding_bounds(q_norm: np.ndarray, c_norm_max: float, dim: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per query row, bounds on |our distance - scikit-learn's| for any candidate: (float32
    distances, float64 distances).

    All compute |q|^2 + |c|^2 - 2 q.c, as one product of (D + 2)-wide rows here and as norms plus
    a float64 GEMM in scikit-learn (float32 input is exact in float64), which then clips at 0.
    A sum of n <= D + 2 products is within n u sum|terms| <= (D + 2) u (|q| + |c|)^2 of the exact
    value (u = eps / 2 of the precision used, any summation order); rounding the norms and two
    more additions add 2 u (|q| + |c|)^2; the clip moves a value by at most its own error. The
    float64 bound is three such float64 errors, the float32 one a float32 error plus that, both
    doubled for margin.
    """
    scale = (dim + 4) * (q_norm + c_norm_max) ** 2
    b64 = 6.0 * _EPS64 * scale
    return 2.0 * _EPS32 * scale + b64, b64


def _is_ambiguous(drow: np.ndarray, cand_y: np.ndarray, qy, k: int, gap: float) -> bool:
    """Exact check for one row: can near-ties change the relevance sequence of the top k?

    drow: (M,) float64 distances (inf = excluded). Candidates above the k-th value + gap cannot
    enter the top k; among the rest, sorted, neighbours closer than `gap` may swap, so groups
    chained by such gaps may come in any internal order. The row is ambiguous iff a group that
    reaches a top-k position mixes relevant and irrelevant candidates.
    """
    kth = np.partition(drow, k - 1)[k - 1]
    zone = np.flatnonzero(drow <= kth + gap)
    zd = drow[zone]
    order = np.argsort(zd, kind="stable")
    zd, rel = zd[order], cand_y[zone[order]] == qy
    if rel.all() or not rel.any():
        return False
    group = np.concatenate([[0], np.cumsum(np.diff(zd) > gap)])
    inside = group <= group[k - 1]
    rel, group = rel[inside], group[inside]
    return bool(np.any((rel[1:] != rel[:-1]) & (group[1:] == group[:-1])))


def _nearest(d: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(idx, vals), both (B, min(m, M)): the nearest columns of each row of d (B, M), sorted."""
    m = min(m, d.shape[1])
    part = np.argpartition(d, m - 1, axis=1)[:, :m] if m < d.shape[1] else \
        np.broadcast_to(np.arange(m), d.shape).copy()
    return _sort_rows(part, np.take_along_axis(d, part, axis=1))


def _sort_rows(idx: np.ndarray, vals: np.ndarray, m: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(idx, vals) reordered by increasing value in each row, the first m kept."""
    order = np.argsort(vals, axis=1, kind="stable")[:, :m]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _tie_groups(vals: np.ndarray, rel: np.ndarray, k: int, gap: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Tie analysis of sorted lists: (mixed, open), both (B,) bool.

    vals, rel: (B, n >= k) sorted distances and relevance; gap: (B,) twice the rounding bound.
    mixed: a tie group that reaches a top-k position, inside the list, holds both relevant and
    irrelevant candidates. open: the group holding position k - 1 runs to the end of the list
    (so candidates beyond the list might belong to it).
    """
    n = vals.shape[1]
    with np.errstate(invalid="ignore"):  # inf - inf (excluded columns) is NaN: not close
        close = np.diff(vals, axis=1) <= gap[:, None]
    clear_after = ~close[:, k - 1:]
    ends = clear_after.any(axis=1)
    end = np.full(len(vals), n - 1)
    if n > k:
        end[ends] = k - 1 + np.argmax(clear_after[ends], axis=1)
    mixed = close & (rel[:, 1:] != rel[:, :-1])
    return (mixed & (np.arange(n - 1)[None, :] < end[:, None])).any(axis=1), ~ends


class _Setting:
    """The top-k search of one setting over one block of queries, in three precision stages."""

    def __init__(self, ctx, r0: int, r1: int, cols: slice, k: int, own_video: bool):
        self.ctx, self.r0, self.r1, self.cols, self.k = ctx, r0, r1, cols, k
        self.own_video = own_video  # exclude the query's own video (Regular)

    def row64(self, r: int) -> np.ndarray:
        """float64 distances of query row r (permuted order) to this setting's columns."""
        c = self.ctx
        d = c.qa64[r] @ c.ca64[:, self.cols]
        if self.own_video:
            g = c.seg_of_row[r]
            d[c.seg[g] - self.cols.start:c.seg[g + 1] - self.cols.start] = np.inf
        return d

    def top_k(self, idx: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(top-k column indices (B, k), ambiguous (B,)) from the float32 lists (sorted)."""
        c, k = self.ctx, self.k
        rows = np.arange(self.r0, self.r1)
        qy = c.yp[rows]
        cand_y = c.yp[self.cols]
        whole = vals.shape[1] >= self.cols.stop - self.cols.start
        mixed, open_ = _tie_groups(vals, cand_y[idx] == qy[:, None], k, c.gap32[rows])
        top = idx[:, :k].copy()
        ambiguous = np.zeros(len(rows), dtype=bool)
        redo = np.flatnonzero(mixed | (open_ & ~whole))
        if not len(redo):
            return top, ambiguous
        # float64 distances of the listed candidates
        r = rows[redo]
        c.stats["float64_lists"] += len(redo)
        d64 = np.einsum("fd,fmd->fm", c.qa64[r], c.ca64t[idx[redo] + self.cols.start])
        if self.own_video:  # listed own-video columns are at inf in float32 already
            d64[np.isinf(vals[redo])] = np.inf
        i64, v64 = _sort_rows(idx[redo], d64)
        gap64 = c.gap64[r]
        mixed64, open64 = _tie_groups(v64, cand_y[i64] == qy[redo, None], k, gap64)
        # the list holds every candidate that can matter when the ones left out (float32
        # distance >= the list's last) are beyond the k-th float64 value + gap
        bound = c.gap32[r] / 2 + c.gap64[r] / 2
        covered = whole | (vals[redo, -1] - bound > v64[:, k - 1] + gap64)
        top[redo] = i64[:, :k]
        ambiguous[redo] = mixed64
        for j in np.flatnonzero(~covered & ~mixed64):  # the whole row, in float64
            c.stats["float64_rows"] += 1
            drow = self.row64(r[j])
            ambiguous[redo[j]] = _is_ambiguous(drow, cand_y, qy[redo[j]], k, gap64[j])
            top[redo[j]] = np.argsort(drow, kind="stable")[:k]
        return top, ambiguous


class _Context:
    """The permuted eval split, its distance factors and rounding bounds."""

    def __init__(self, xp: np.ndarray, yp: np.ndarray, vp: np.ndarray):
        n, dim = xp.shape
        self.yp = yp
        self.stats = {"float64_lists": 0, "float64_rows": 0}
        sq = np.einsum("ij,ij->i", xp, xp)
        norm = np.sqrt(sq)
        # |q|^2 + |c|^2 - 2 q.c as one product: [q, |q|^2, 1] . [-2c, 1, |c|^2]
        self.qa64 = np.concatenate([xp, sq[:, None], np.ones((n, 1))], axis=1)
        self.ca64t = np.concatenate([-2.0 * xp, np.ones((n, 1)), sq[:, None]], axis=1)
        self.ca64 = self.ca64t.T
        self.qa32 = self.qa64.astype(np.float32)
        self.ca32 = np.ascontiguousarray(self.ca64, dtype=np.float32)
        b32, b64 = _rounding_bounds(norm, float(norm.max()) if n else 0.0, dim)
        self.gap32, self.gap64 = 2.0 * b32, 2.0 * b64
        self.seg = np.flatnonzero(np.r_[True, vp[1:] != vp[:-1], True])  # video boundaries
        self.seg_of_row = np.repeat(np.arange(len(self.seg) - 1), np.diff(self.seg))


def _check(x, y, video_ids, is_ego, ks, settings, block_size, missing):
    n = len(x)
    if x.ndim != 2 or not len(y) == len(video_ids) == len(is_ego) == n:
        raise EvalInputError(f"retrieval: x must be (N, D) with N labels, video ids and view "
                             f"flags; got x {x.shape}, y {y.shape}, video_ids {video_ids.shape}, "
                             f"is_ego {is_ego.shape}")
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise EvalInputError(f"retrieval: ks must be positive integers, got {ks!r}")
    if block_size < 1:
        raise EvalInputError(f"retrieval: block_size must be >= 1, got {block_size}")
    if missing not in ("raise", "null"):
        raise EvalInputError(f"retrieval: missing must be 'raise' or 'null', got {missing!r}")
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise EvalInputError(f"retrieval: unknown setting(s) {bad}; valid: {SETTINGS}")
    order = np.argsort(video_ids, kind="stable")  # one view per video (its folder's)
    v, e = video_ids[order], is_ego[order]
    mixed = np.flatnonzero((v[1:] == v[:-1]) & (e[1:] != e[:-1]))
    if len(mixed):
        raise EvalInputError(f"retrieval: video id {v[mixed[0]]} has both ego and exo rows; "
                             f"each video must have one view")
    na = unavailable_settings(is_ego)
    for s in settings:
        if s in na:
            raise EvalInputError(f"retrieval {s}: {na[s]}")
    if missing == "raise":
        for s, by_k in unsupported_ks(video_ids, is_ego, ks, settings).items():
            raise EvalInputError(f"retrieval {s}: {by_k[max(by_k)]} (pass smaller ks)")


def frame_retrieval(x: np.ndarray, y: np.ndarray, video_ids: np.ndarray, is_ego: np.ndarray,
                    ks: Sequence[int] = (5, 10, 15), block_size: int = 512,
                    settings: Sequence[str] = SETTINGS, progress: bool = False,
                    missing: str = "raise", info: dict | None = None
                    ) -> dict[int, dict[str, float | None]]:
    """mAP@K for each K in `ks` and each requested setting, equal to the released evaluator.

    Args:
        x: (N, D) eval embeddings (float32 or float64, as the released code received them);
        y: (N,) integer labels (-1 = background, a label like any other); video_ids: (N,)
        video of each row; is_ego: (N,) bool view flags (parent folder rule).
        block_size: queries per distance block; peak memory about block_size * N * 12 bytes,
            plus N * D * 24 bytes of distance factors.
        missing: "raise" (default) or "null": a (K, setting) that some query cannot fill with K
            candidates is None instead of an error (see `unsupported_ks` for the reason).
        info: optional dict, filled with counts (per query and setting, except the last):
            `float64_lists` (float32 lists re-checked in float64), `float64_rows` (whole rows
            computed in float64), `released_ranking_queries` (queries ranked by scikit-learn
            itself because near-tied candidates of different relevance reach their top K).
    Returns:
        {K: {setting: mAP as a fraction, or None}}.
    Raises:
        EvalInputError: bad shapes/arguments, a video with two views, a setting without
            queries/candidates, or (missing="raise") fewer than K candidates for some query.
    """
    x = np.asarray(x)
    y, video_ids = np.asarray(y), np.asarray(video_ids)
    is_ego = np.asarray(is_ego, dtype=bool)
    ks = tuple(sorted(set(int(k) for k in ks)))
    settings = tuple(settings)
    _check(x, y, video_ids, is_ego, ks, settings, block_size, missing)
    n, dim = x.shape
    skip = unsupported_ks(video_ids, is_ego, ks, settings)
    ks_of = {s: [k for k in ks if k not in skip.get(s, {})] for s in settings}
    active = [s for s in settings if ks_of[s]]
    cross_active = [s for s in active if s != "regular"]

    # Candidates in (view, video) order: ego columns first, each video contiguous, so the
    # cross-view candidates and each query's own video are column ranges.
    perm = np.lexsort((np.arange(n), video_ids, ~is_ego))
    ctx = _Context(np.asarray(x[perm], dtype=np.float64), y[perm], video_ids[perm])
    n_ego = int(np.count_nonzero(is_ego))

    ap = {s: np.zeros((len(ks_of[s]), n)) for s in active}  # by original row
    ambiguous = np.zeros(n, dtype=bool)  # by original row
    blocks = [(a, min(a + block_size, stop)) for lo, stop in ((0, n_ego), (n_ego, n))
              for a in range(lo, stop, block_size)] if active else []
    m = max(max(ks_of[s]) for s in active) + _LOOKAHEAD if active else 0
    for r0, r1 in tqdm(blocks, desc="retrieval", unit="block", disable=not progress):
        q_ego = r0 < n_ego
        cross = "ego2exo" if q_ego else "exo2ego"
        if cross not in cross_active and "regular" not in active:
            continue
        rows, qy = perm[r0:r1], ctx.yp[r0:r1]
        d = ctx.qa32[r0:r1] @ ctx.ca32
        same, other = (slice(0, n_ego), slice(n_ego, n)) if q_ego else \
            (slice(n_ego, n), slice(0, n_ego))
        # the other view's columns are other videos: Regular's nearest among them are the
        # cross-view list, so each column is partitioned once
        near_other = _nearest(d[:, other], m) if other.stop > other.start else None
        if cross in cross_active:
            top, amb = _Setting(ctx, r0, r1, other, max(ks_of[cross]), False).top_k(*near_other)
            ap[cross][:, rows] = _average_precision(ctx.yp[other][top] == qy[:, None],
                                                    ks_of[cross])
            ambiguous[rows] |= amb
        if "regular" in active:
            for g in np.unique(ctx.seg_of_row[r0:r1]):  # the query's own video is excluded
                a, b = max(ctx.seg[g], r0), min(ctx.seg[g + 1], r1)
                d[a - r0:b - r0, ctx.seg[g]:ctx.seg[g + 1]] = np.inf
            idx, vals = _nearest(d[:, same], m)
            idx += same.start
            if near_other is not None:
                idx, vals = _sort_rows(np.concatenate([idx, near_other[0] + other.start], 1),
                                       np.concatenate([vals, near_other[1]], 1), m)
            top, amb = _Setting(ctx, r0, r1, slice(0, n), max(ks_of["regular"]),
                                True).top_k(idx, vals)
            ap["regular"][:, rows] = _average_precision(ctx.yp[top] == qy[:, None],
                                                        ks_of["regular"])
            ambiguous[rows] |= amb
        del d
    todo = np.flatnonzero(ambiguous)
    if len(todo):
        _released_rankings(x, y, video_ids, is_ego, todo, ks_of, active, ap, progress)
    if info is not None:
        info.update(ctx.stats, released_ranking_queries=int(len(todo)))

    query_rows = {"regular": np.ones(n, dtype=bool), "ego2exo": is_ego, "exo2ego": ~is_ego}
    out: dict[int, dict[str, float | None]] = {k: {} for k in ks}
    for s in settings:
        for k in ks:
            if k not in ks_of[s]:
                out[k][s] = None
                continue
            # the release adds the APs query after query, in row order
            values = ap[s][ks_of[s].index(k), query_rows[s]]
            out[k][s] = float(np.cumsum(values)[-1] / len(values))
    return out


def _released_rankings(x, y, video_ids, is_ego, rows, ks_of, active, ap, progress):
    """Rank the given queries exactly as released (one kneighbors call per query on an index
    of all eval frames, as given) and overwrite their APs."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=len(x), algorithm="auto").fit(x)
    for i in tqdm(rows, desc="retrieval ties", unit="query", disable=not progress):
        _, ranking = index.kneighbors([x[i]])  # the released call, verbatim
        ranking = ranking[0]
        for s in active:
            if s != "regular" and (s == "ego2exo") != bool(is_ego[i]):
                continue  # a cross-view setting scores the queries of one view only
            keep = (video_ids[ranking] != video_ids[i]) if s == "regular" else \
                (is_ego[ranking] != is_ego[i])
            sel = ranking[keep][:max(ks_of[s])]
            ap[s][:, i] = _average_precision((y[sel] == y[i])[None, :], ks_of[s])[:, 0]
