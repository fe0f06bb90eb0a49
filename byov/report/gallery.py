"""Cross-view retrieval gallery: query frames of one view with their top frames from the other
view, for the queries with the best and the worst average precision.

Per-query AP@K is the quantity whose mean is `retrieval_map10.ego2exo` / `.exo2ego`
(docs/evaluation.md, byov/eval/retrieval.py): candidates are all frames of the other view,
ranked by Euclidean distance on the raw embeddings (ties to the lower row), a candidate is
relevant when its phase equals the query's, and AP@K = sum over relevant ranks r <= K of
precision@r, divided by the number of relevant items within the top K (0 when there are none).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from byov.eval.distance import SquaredDistances
from byov.eval.io import SplitData
from byov.report.style import (QUERY_COLOR, new_figure, outline_color, rc, save_figure,
                               show_thumbnail)

DIRECTIONS = {"ego2exo": True, "exo2ego": False}  # direction -> queries are ego


@dataclass
class Ranking:
    """Cross-view ranking of every query of one direction.

    Attributes:
        direction: "ego2exo" or "exo2ego".
        queries: (Q,) rows of the split that query; candidates: (M,) rows they rank.
        top: (Q, K) rows (of the split) of each query's K nearest candidates, nearest first.
        relevant: (Q, K) bool, candidate phase == query phase.
        ap: (Q,) AP@K of each query.
    """

    direction: str
    k: int
    queries: np.ndarray
    candidates: np.ndarray
    top: np.ndarray
    relevant: np.ndarray
    ap: np.ndarray


def average_precision(relevant: np.ndarray) -> np.ndarray:
    """(Q, K) bool relevance in rank order -> (Q,) AP@K normalised by the relevant items in
    the top K (0 when none), as the released evaluator."""
    r = np.asarray(relevant, dtype=np.float64)
    precision = np.cumsum(r, axis=1) / np.arange(1, r.shape[1] + 1)
    n_rel = r.sum(axis=1)
    hits = (precision * r).sum(axis=1)
    return np.divide(hits, n_rel, out=np.zeros_like(hits), where=n_rel > 0)


def rank(split: SplitData, direction: str, k: int = 10, block: int = 1024) -> Ranking:
    """Rank the other view's frames for every query frame of `direction`."""
    is_ego = split.is_ego
    q_ego = DIRECTIONS[direction]
    queries = np.flatnonzero(is_ego == q_ego)
    cands = np.flatnonzero(is_ego != q_ego)
    k = min(k, len(cands))
    dist = SquaredDistances(split.embeds[cands])
    top = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), block):
        d = dist(split.embeds[queries[s:s + block]])
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else \
            np.broadcast_to(np.arange(d.shape[1]), d.shape).copy()
        vals = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, vals), axis=1)  # by distance, then candidate index
        top[s:s + block] = cands[np.take_along_axis(part, order, axis=1)]
    labels = np.asarray(split.labels)
    relevant = labels[top] == labels[queries][:, None]
    return Ranking(direction, k, queries, cands, top, relevant, average_precision(relevant))


def order_queries(r: Ranking, best: bool) -> np.ndarray:
    """Positions (into r.queries) from the best (or worst) query by AP@K on, ties broken by the
    number of relevant items in the top K (more is better), then by row."""
    n_rel = r.relevant.sum(axis=1)
    sign = -1 if best else 1
    return np.lexsort((np.arange(len(r.ap)), sign * n_rel, sign * r.ap))


def diverse(order: np.ndarray, video_of: np.ndarray, n: int) -> np.ndarray:
    """The first n of `order`, at most one per video while other videos remain (so the examples
    are not n neighbouring frames of one video)."""
    chosen, seen = [], set()
    for i in order:
        if video_of[i] not in seen:
            chosen.append(i)
            seen.add(video_of[i])
        if len(chosen) == n:
            return np.asarray(chosen)
    taken = set(chosen)
    rest = [i for i in order if i not in taken]
    return np.asarray(chosen + rest[:n - len(chosen)], dtype=np.int64)


@dataclass
class Gallery:
    """What a gallery figure shows (positions into `ranking.queries`, best first / worst first).

    outline_colors[i][j]: colour of result j of row i (rows: best then worst)."""

    ranking: Ranking
    best: np.ndarray
    worst: np.ndarray
    shown: int
    outline_colors: list[list[str]] = field(default_factory=list)
    path: str | None = None

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate([self.best, self.worst])


def make_gallery(split: SplitData, direction: str, n_best: int = 3, n_worst: int = 3,
                 k: int = 10, shown: int = 5) -> Gallery:
    """Rank, then choose the best and worst queries (one per video where possible)."""
    r = rank(split, direction, k)
    video_of = split.video_ids[r.queries]
    best = diverse(order_queries(r, True), video_of, n_best)
    worst = diverse(order_queries(r, False), video_of, n_worst)
    g = Gallery(r, best, worst, min(shown, r.k))
    g.outline_colors = [[outline_color(bool(x)) for x in r.relevant[i, :g.shown]]
                        for i in g.rows]
    return g


def _where(split: SplitData, row: int) -> tuple[dict, int]:
    v = int(split.video_ids[row])
    return split.videos[v], int(row - split.offsets[v])


def draw(g: Gallery, split: SplitData, reader, path: str) -> str:
    """One row per chosen query: the query (grey frame) then its top `shown` results."""
    r = g.ranking
    rows = g.rows
    labels = np.asarray(split.labels)
    with rc():
        height = 1.8 * len(rows) + 0.4
        fig = new_figure(1.65 * (g.shown + 1) + 0.3, height)
        gs = fig.add_gridspec(len(rows), g.shown + 2, width_ratios=[1, 0.12] + [1] * g.shown,
                              wspace=0.12, hspace=0.42, top=1 - 0.75 / height,
                              bottom=0.1 / height)
        for i, pos in enumerate(rows):
            q = int(r.queries[pos])
            meta, t = _where(split, q)
            ax = fig.add_subplot(gs[i, 0])
            show_thumbnail(ax, reader.thumbnails(meta["view"], meta["name"], [t])[0],
                           QUERY_COLOR, 3.0)
            kind = "best" if i < len(g.best) else "worst"
            ax.set_title(f"{kind} · AP@{r.k} {r.ap[pos]:.2f}\n{meta['name']} t={t} "
                         f"p{int(labels[q])}", fontsize=10, loc="left")
            for j in range(g.shown):
                c = int(r.top[pos, j])
                cm, ct = _where(split, c)
                ax = fig.add_subplot(gs[i, j + 2])
                show_thumbnail(ax, reader.thumbnails(cm["view"], cm["name"], [ct])[0],
                               g.outline_colors[i][j])
                ax.set_title(f"#{j + 1} {cm['name']}\nt={ct} p{int(labels[c])}", fontsize=10)
        view = "ego" if DIRECTIONS[r.direction] else "exo"
        agree = int(r.relevant[rows, :g.shown].sum())
        fig.suptitle(f"{r.direction}: {view} queries (left) and their top {g.shown} from the "
                     f"other view; {agree}/{len(rows) * g.shown} shown results share the query's "
                     f"phase", fontsize=11, y=1 - 0.1 / height)
        g.path = save_figure(fig, path)
    return g.path
