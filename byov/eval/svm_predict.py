"""SVC.predict for the released RBF SVM via BLAS, with libsvm's exact predictions.

libsvm predicts one frame at a time, one kernel value per support vector (a malloc and a BLAS
dot each): at AE2 scale that is most of the classification time. Here the kernel block comes
from one matrix product, K = exp(-gamma (|x|^2 + |s|^2 - 2 x.s)), the one-vs-one decision
values from a second, and the votes follow libsvm's rule (dec > 0 votes for the first class of
the pair; the first class with the most votes wins).

A prediction can differ from libsvm's only if some decision value changes sign under rounding.
For every row, a worst-case bound on |ours - libsvm's| is computed; rows with any decision value
inside it are predicted by libsvm itself. The result is therefore identical to `model.predict`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.svm import SVC

_EPS = np.finfo(np.float64).eps


def _ovo_weights(model: SVC) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W (n_SV, P), first (P,), second (P,)): decision values are K @ W + intercept, pair p
    compares class first[p] (vote if dec > 0) with class second[p]; libsvm's pair order."""
    n_sv = model.n_support_
    start = np.concatenate([[0], np.cumsum(n_sv)])
    dual = model._dual_coef_  # libsvm's sv_coef, before sklearn's binary sign flip
    pairs = ovo_pairs(len(n_sv))
    w = np.zeros((int(start[-1]), len(pairs)))
    for p, (i, j) in enumerate(pairs):
        w[start[i]:start[i + 1], p] = dual[j - 1, start[i]:start[i + 1]]
        w[start[j]:start[j + 1], p] = dual[i, start[j]:start[j + 1]]
    first, second = (np.array(c, dtype=np.int64) for c in zip(*pairs))
    return w, first, second


def ovo_pairs(n_class: int) -> list[tuple[int, int]]:
    """libsvm's one-vs-one pairs (i, j), i < j, in its order (svm.cpp, svm_train)."""
    return [(i, j) for i in range(n_class) for j in range(i + 1, n_class)]


def can_predict_fast(model: SVC) -> bool:
    """True for a fitted dense RBF SVC with the private attributes this module reads."""
    return (getattr(model, "kernel", None) == "rbf" and not getattr(model, "_sparse", True)
            and all(hasattr(model, a) for a in ("_dual_coef_", "_intercept_", "_gamma",
                                                 "support_vectors_", "n_support_"))
            and len(model.classes_) >= 2 and not model.break_ties)


def svm_predict(model: SVC, x: np.ndarray, chunk: int = 512) -> np.ndarray:
    """model.predict(x) (N,), computed with BLAS; see the module docstring.

    Args:
        model: a fitted SVC (RBF kernel, dense input).
        x: (N, D) frames.
        chunk: rows per kernel block (memory: chunk * n_SV * 8 bytes).
    """
    if not can_predict_fast(model):
        return model.predict(x)
    w, first, second = _ovo_weights(model)
    exact = lambda rows: np.searchsorted(model.classes_, model.predict(rows))  # noqa: E731
    out = vote_predict(x, model.support_vectors_, w, model._intercept_, first, second,
                       float(model._gamma), len(model.classes_), exact, chunk)
    return model.classes_[out]


def vote_predict(x: np.ndarray, sv: np.ndarray, w: np.ndarray, intercept: np.ndarray,
                 first: np.ndarray, second: np.ndarray, gamma: float, n_class: int,
                 exact: Callable[[np.ndarray], np.ndarray], chunk: int = 512) -> np.ndarray:
    """libsvm's one-vs-one vote for each row of x -> (N,) class indices.

    Args:
        x: (N, D) frames; sv: (S, D) support vectors; w: (S, P) each pair's sv_coef (0 where a
            vector is not a support vector of the pair); intercept: (P,) = -rho.
        first, second: (P,) the class indices each pair compares.
        gamma: the RBF kernel's gamma; n_class: the number of classes.
        exact: rows (M, D) -> (M,) class indices as libsvm predicts them; called for the rows
            whose decision values are too close to 0 to trust the BLAS ones.
        chunk: rows per kernel block (memory: chunk * S * 8 bytes).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    sv_sq = np.einsum("ij,ij->i", sv, sv)
    # Worst-case difference between our decision values and libsvm's (see module docstring):
    # squared distances |d2 - d2*| <= (D + 2) eps (|x| + |s|)^2 in each computation, K is
    # 1-Lipschitz in gamma * d2, and each sum of n terms is off by at most n eps sum |c|.
    coef_abs = np.abs(w).sum(axis=0).max()
    gamma_err = 2.0 * gamma * (x.shape[1] + 2) * _EPS
    sum_err = (2.0 * len(sv) + 4.0) * _EPS * coef_abs
    s_max = np.sqrt(sv_sq.max())
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), chunk):
        xc = x[s:s + chunk]
        x_sq = np.einsum("ij,ij->i", xc, xc)
        d2 = xc @ sv.T
        d2 *= -2.0
        d2 += x_sq[:, None]
        d2 += sv_sq[None, :]
        np.maximum(d2, 0.0, out=d2)
        d2 *= -gamma
        k = np.exp(d2, out=d2)
        dec = k @ w + intercept
        votes = np.zeros((len(xc), n_class), dtype=np.int64)
        pos = dec > 0
        for p in range(len(first)):
            votes[:, first[p]] += pos[:, p]
            votes[:, second[p]] += ~pos[:, p]
        out[s:s + len(xc)] = votes.argmax(axis=1)  # first maximum, as libsvm
        bound = coef_abs * gamma_err * (np.sqrt(x_sq) + s_max) ** 2 + sum_err
        unsure = np.flatnonzero((np.abs(dec) <= 4.0 * bound[:, None]).any(axis=1))
        if len(unsure):
            out[s + unsure] = exact(xc[unsure])
    return out
