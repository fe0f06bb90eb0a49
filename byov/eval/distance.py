"""Squared Euclidean distances in float64, for Kendall's tau's nearest frames.

The released tau takes `argmin(cdist(q, c, 'sqeuclidean'))` (first index on ties). Here the
distances come from one BLAS product (|q|^2 - 2 q.c + |c|^2), which agrees with cdist except on
near-ties at the last bits. Exact duplicate candidate rows are collapsed first, so they get
bit-identical distances and the tie goes to the lower candidate index, as with the released
argmin. (Retrieval has its own tie handling, see `byov.eval.retrieval`.)
"""
from __future__ import annotations

import numpy as np


def _duplicate_map(c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(first-occurrence rows, inverse map) when `c` (M, D) has bit-identical rows, else None."""
    if len(c) < 2:
        return None
    rows = np.ascontiguousarray(c).view(np.dtype((np.void, c.dtype.itemsize * c.shape[1])))
    _, first, inverse = np.unique(rows.ravel(), return_index=True, return_inverse=True)
    if len(first) == len(c):
        return None
    return first, inverse.reshape(-1)


class SquaredDistances:
    """Distances from query rows to a fixed candidate set.

    Args:
        candidates: (M, D) array; converted to float64 once.
    Call with queries (B, D) to get (B, M) float64 squared distances (clipped at 0).
    """

    def __init__(self, candidates: np.ndarray):
        c = np.ascontiguousarray(candidates, dtype=np.float64)
        dup = _duplicate_map(c)
        self._inverse = None
        if dup is not None:
            first, self._inverse = dup
            c = np.ascontiguousarray(c[first])
        self._c = c
        self._c_sq = np.einsum("ij,ij->i", c, c)

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(queries, dtype=np.float64)
        d = q @ self._c.T
        d *= -2.0
        d += np.einsum("ij,ij->i", q, q)[:, None]
        d += self._c_sq[None, :]
        np.maximum(d, 0.0, out=d)
        if self._inverse is not None:
            d = d[:, self._inverse]
        return d
