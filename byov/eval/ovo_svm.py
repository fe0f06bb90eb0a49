"""The released RBF SVM, fit as its one-vs-one binary problems so that they run in parallel.

libsvm trains a k-class C-SVC as k(k-1)/2 independent binary problems (libsvm's svm.cpp,
`svm_train`, "one-against-one"): pair (i, j), i < j, sees the rows of classes i and j grouped
by class, each class in data order, class i labelled +1, with the same C, tolerance, shrinking
and gamma (sklearn's gamma='scale' is computed once, from the whole training set). Fitting each
pair as its own two-class `SVC` with that gamma hands libsvm's solver the same problem, so it
returns the same alphas and rho bit for bit, and each pair model's decision values are the
multi-class model's for that pair (the zero coefficients of the other pairs' support vectors add
exact zeros). The votes then follow libsvm (`vote_predict`).

Why: one 10k-frame fit is a single libsvm call on one core (about 2 s of the whole evaluation
at AE2 scale); its pairs are k(k-1)/2 calls that share the cores with the other settings' pairs.
Tested against `SVC(decision_function_shape='ovo').fit(X, y).predict` (tests/test_eval_metrics.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.svm import SVC

from byov.eval.svm_predict import ovo_pairs, vote_predict

# libsvm's kernel cache (sklearn's default is 200 MB): a pair whose whole kernel (float32) fits
# in the cache computes each kernel row once. The cache holds values, so its size changes the
# speed only, never the solution.
_DEFAULT_CACHE_MB = 200.0


def make_svm() -> SVC:
    """The released classifier: sklearn defaults (RBF, C=1, gamma='scale') with ovo decisions
    (AE2's `evaluation/classification.py`); `fit_pair` fits its pairs."""
    return SVC(decision_function_shape="ovo")


def scale_gamma(x: np.ndarray) -> float:
    """sklearn's gamma='scale': 1 / (D * Var(x)) over all entries of x (N, D); 1.0 if Var is 0."""
    x = np.asarray(x, dtype=np.float64)
    var = x.var()
    return 1.0 / (x.shape[1] * var) if var != 0 else 1.0


def cache_mb(n_rows: int, workers: int, budget_mb: float = 2048.0) -> float:
    """libsvm cache (MB) for a pair problem of n_rows: its whole float32 kernel, at least
    sklearn's 200 MB, at most budget_mb shared among `workers` concurrent fits."""
    whole = n_rows * n_rows * 4 / 2**20
    return max(_DEFAULT_CACHE_MB, min(whole, budget_mb / max(1, workers)))


@dataclass
class PairProblem:
    """One binary problem: rows (global indices, data order) of classes first and second."""

    first: int
    second: int
    rows: np.ndarray

    @property
    def size(self) -> int:
        return len(self.rows)


def pair_problems(y_index: np.ndarray, n_class: int) -> list[PairProblem]:
    """The k(k-1)/2 problems of class indices y_index (N,) in libsvm's pair order."""
    return [PairProblem(i, j, np.flatnonzero((y_index == i) | (y_index == j)))
            for i, j in ovo_pairs(n_class)]


def fit_pair(x: np.ndarray, y_index: np.ndarray, problem: PairProblem, gamma: float,
             cache_size: float = _DEFAULT_CACHE_MB) -> SVC:
    """The released SVC (`make_svm`, with the whole set's gamma) on one pair: class `first` -> 0
    (libsvm's +1), `second` -> 1.

    x: (N, D) float64; y_index: (N,) class indices. Returns the fitted two-class SVC.
    """
    rows = problem.rows
    return make_svm().set_params(gamma=gamma, cache_size=cache_size).fit(
        x[rows], (y_index[rows] == problem.second).astype(np.int64))


class OneVsOneSVM:
    """A fitted one-vs-one RBF SVM assembled from its pair models; predicts as libsvm.

    Args:
        classes: (k,) sorted class labels; problems: the pair problems (libsvm's order);
        models: the fitted pair SVCs, one per problem; x: (N, D) float64 training frames;
        gamma: the kernel's gamma (all pairs share it).
    """

    def __init__(self, classes: np.ndarray, problems: list[PairProblem], models: list[SVC],
                 x: np.ndarray, gamma: float):
        self.classes_ = np.asarray(classes)
        self.gamma = float(gamma)
        self.models = models
        sv_rows = [p.rows[m.support_] for p, m in zip(problems, models)]
        union = np.unique(np.concatenate(sv_rows))
        self.support_vectors_ = x[union]
        self.w = np.zeros((len(union), len(problems)))
        for p, (rows, m) in enumerate(zip(sv_rows, models)):
            self.w[np.searchsorted(union, rows), p] = m._dual_coef_[0]  # libsvm's sv_coef
        self.intercept = np.array([m._intercept_[0] for m in models])  # -rho
        self.first = np.array([p.first for p in problems], dtype=np.int64)
        self.second = np.array([p.second for p in problems], dtype=np.int64)

    def _exact(self, x: np.ndarray) -> np.ndarray:
        """libsvm's own decision values, pair by pair, voted as libsvm votes."""
        votes = np.zeros((len(x), len(self.classes_)), dtype=np.int64)
        for p, m in enumerate(self.models):
            # a two-class SVC reports -dec (sklearn's sign convention); dec > 0 votes first
            pos = m.decision_function(x) < 0
            votes[:, self.first[p]] += pos
            votes[:, self.second[p]] += ~pos
        return votes.argmax(axis=1)

    def predict(self, x: np.ndarray, chunk: int = 512) -> np.ndarray:
        """(N,) labels, equal to the multi-class SVC's `predict(x)`; x: (N, D)."""
        idx = vote_predict(x, self.support_vectors_, self.w, self.intercept, self.first,
                           self.second, self.gamma, len(self.classes_), self._exact, chunk)
        return self.classes_[idx]
