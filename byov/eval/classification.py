"""Task 1, action phase classification F1 (docs/evaluation.md, "Phase classification").

An RBF SVM at sklearn's defaults (`SVC(decision_function_shape='ovo')`, no feature scaling) is fit
on train-split frames and scored with weighted F1 on eval-split frames (AE2's released
`evaluation/classification.py`, shared by BYOV): Regular (all -> all), Ego2Exo (train ego -> eval
exo), Exo2Ego (train exo -> eval ego). Labels are classes as they are, so background frames (-1)
form one more class, as in the released code.

libsvm releases the GIL while fitting, so the three fits run in threads (each is deterministic,
so the result equals the sequential one), and each model predicts as soon as it is fit, through
`svm_predict` (BLAS kernel blocks, libsvm's exact predictions).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from byov.eval.io import EvalInputError
from byov.eval.svm_predict import svm_predict

SETTINGS = ("regular", "ego2exo", "exo2ego")


def default_jobs() -> int:
    """Threads for the SVM work: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def make_svm() -> SVC:
    """The released classifier: sklearn defaults (RBF, C=1, gamma='scale') with ovo decisions."""
    return SVC(decision_function_shape="ovo")


def setting_masks(train_is_ego: np.ndarray, eval_is_ego: np.ndarray
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{setting: (train row mask, eval row mask)}."""
    tr, ev = np.asarray(train_is_ego, dtype=bool), np.asarray(eval_is_ego, dtype=bool)
    return {"regular": (np.ones_like(tr), np.ones_like(ev)),
            "ego2exo": (tr, ~ev), "exo2ego": (~tr, ev)}


def unavailable_settings(train_y: np.ndarray, train_is_ego: np.ndarray,
                         eval_is_ego: np.ndarray) -> dict[str, str]:
    """Settings that cannot be scored on these splits, with the reason (for an "n/a" entry)."""
    train_y = np.asarray(train_y)
    out = {}
    for s, (tr, ev) in setting_masks(train_is_ego, eval_is_ego).items():
        train_view = {"regular": "", "ego2exo": "ego ", "exo2ego": "exo "}[s]
        eval_view = {"regular": "", "ego2exo": "exo ", "exo2ego": "ego "}[s]
        phases = np.unique(train_y[tr])
        if not tr.any():
            out[s] = f"the train split has no {train_view}videos to fit on"
        elif not ev.any():
            out[s] = f"the eval split has no {eval_view}videos to score"
        elif len(phases) < 2:
            out[s] = (f"the train split's {train_view}frames hold a single phase "
                      f"({int(phases[0])}); an SVM needs at least two")
    return out


def unseen_label_notes(train_y: np.ndarray, train_is_ego: np.ndarray, eval_y: np.ndarray,
                       eval_is_ego: np.ndarray, settings: Sequence[str] = SETTINGS) -> list[str]:
    """A note for each scored setting whose eval frames carry labels that no training frame of
    that setting has (e.g. a wholly background (-1) eval video): the SVM can never predict them,
    so the F1 there says little. The numbers are not changed."""
    train_y, eval_y = np.asarray(train_y), np.asarray(eval_y)
    notes = []
    for s, (tr, ev) in setting_masks(train_is_ego, eval_is_ego).items():
        if s not in settings or not ev.any():
            continue
        unseen = np.setdiff1d(np.unique(eval_y[ev]), np.unique(train_y[tr]))
        if unseen.size:
            share = 100.0 * np.isin(eval_y[ev], unseen).mean()
            notes.append(f"classification_f1.{s}: {share:.1f}% of the eval frames carry "
                         f"label(s) {[int(u) for u in unseen]} that no training frame of this "
                         f"setting has; the SVM can never predict them (e.g. an eval video that "
                         f"is all background, -1)")
    return notes


def phase_classification(train_x: np.ndarray, train_y: np.ndarray, train_is_ego: np.ndarray,
                         eval_x: np.ndarray, eval_y: np.ndarray, eval_is_ego: np.ndarray,
                         settings: Sequence[str] = SETTINGS, n_jobs: int | None = None,
                         progress: bool = False) -> dict[str, float]:
    """Weighted F1 (fraction) of the released SVM for each requested setting.

    Args:
        train_x: (N_train, D); train_y: (N_train,); train_is_ego: (N_train,) bool.
        eval_x: (N_eval, D); eval_y: (N_eval,); eval_is_ego: (N_eval,) bool.
        settings: a subset of SETTINGS.
        n_jobs: threads (default: the usable CPUs); 1 runs everything sequentially.
        progress: a tqdm bar over the fits and predictions.
    Raises:
        EvalInputError: a requested setting is unavailable (see `unavailable_settings`).
    """
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise EvalInputError(f"classification: unknown setting(s) {bad}; valid: {SETTINGS}")
    train_x, eval_x = np.asarray(train_x), np.asarray(eval_x)
    train_y, eval_y = np.asarray(train_y), np.asarray(eval_y)
    if train_x.ndim != 2 or eval_x.ndim != 2 or train_x.shape[1] != eval_x.shape[1]:
        raise EvalInputError(f"classification: train and eval embeddings must be (N, D) with "
                             f"the same D; got {train_x.shape} and {eval_x.shape}")
    na = unavailable_settings(train_y, train_is_ego, eval_is_ego)
    for s in settings:
        if s in na:
            raise EvalInputError(f"classification {s}: {na[s]}")
    masks = setting_masks(train_is_ego, eval_is_ego)
    jobs = n_jobs or default_jobs()

    def fit(s):
        tr = masks[s][0]
        return make_svm().fit(train_x[tr], train_y[tr])

    def f1(s, pred):
        return float(f1_score(eval_y[masks[s][1]], pred, average="weighted"))

    bar = tqdm(total=2 * len(settings), desc="classification", unit="step",
               disable=not progress)
    if jobs == 1:
        out = {}
        for s in settings:
            model = fit(s)
            bar.update()
            out[s] = f1(s, svm_predict(model, eval_x[masks[s][1]]))
            bar.update()
        bar.close()
        return out
    # one BLAS thread per worker: the workers are the parallelism, and oversubscribed
    # OpenBLAS threads spin against each other on a busy machine
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(jobs) as pool:
        # largest fit first; each prediction is queued as soon as its model is fit, so it
        # overlaps with the fits still running
        order = sorted(settings, key=lambda s: -int(masks[s][0].sum()))
        fits = {pool.submit(fit, s): s for s in order}
        preds = {}
        for done in as_completed(fits):
            s = fits[done]
            preds[s] = pool.submit(svm_predict, done.result(), eval_x[masks[s][1]])
            bar.update()
        for _ in as_completed(list(preds.values())):
            bar.update()
        bar.close()
        return {s: f1(s, preds[s].result()) for s in settings}
