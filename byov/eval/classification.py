"""Task 1, action phase classification F1 (docs/evaluation.md, "Phase classification").

An RBF SVM at sklearn's defaults (`SVC(decision_function_shape='ovo')`, no feature scaling) is fit
on train-split frames and scored with weighted F1 on eval-split frames (AE2's released
`evaluation/classification.py`, shared by BYOV): Regular (all -> all), Ego2Exo (train ego -> eval
exo), Exo2Ego (train exo -> eval ego). Labels are classes as they are, so background frames (-1)
form one more class, as in the released code.

Each setting's SVM is fit as its one-vs-one pair problems (`byov.eval.ovo_svm`: the same models
as one multi-class fit, bit for bit). libsvm releases the GIL while fitting, so all settings'
pairs run in threads, largest first (each fit is deterministic, so the result equals the
sequential one), and each setting predicts as soon as its last pair is fit, through
`vote_predict` (BLAS kernel blocks, libsvm's exact predictions).
"""
from __future__ import annotations

import os
from concurrent.futures import as_completed
from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score
from tqdm import tqdm

from byov.eval.io import EvalInputError
from byov.eval.ovo_svm import OneVsOneSVM, cache_mb, fit_pair, pair_problems, scale_gamma
from byov.eval.pool import worker_threads

SETTINGS = ("regular", "ego2exo", "exo2ego")


def default_jobs() -> int:
    """Threads for the SVM work: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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
    train_x = np.ascontiguousarray(train_x, dtype=np.float64)  # what libsvm reads

    # every setting's SVM as its one-vs-one pair problems (byov.eval.ovo_svm): the same
    # models as one multi-class fit, in pieces that share the workers
    fits = []  # (setting, problem index, problem)
    setup = {}
    for s in settings:
        tr = masks[s][0]
        x, y = train_x[tr], train_y[tr]
        classes, y_index = np.unique(y, return_inverse=True)
        problems = pair_problems(y_index, len(classes))
        setup[s] = (x, y_index, classes, problems, scale_gamma(x))
        fits += [(s, p, problem) for p, problem in enumerate(problems)]
    fits.sort(key=lambda f: -f[2].size)  # largest first: the longest jobs never start last
    eval_rows = {s: np.flatnonzero(masks[s][1]) for s in settings}

    def fit(s, problem):
        x, y_index, _, _, gamma = setup[s]
        return fit_pair(x, y_index, problem, gamma, cache_mb(problem.size, jobs))

    def model_of(s, models):
        x, _, classes, problems, gamma = setup[s]
        return OneVsOneSVM(classes, problems, [models[p] for p in range(len(problems))], x,
                           gamma)

    def f1(s, pred):
        return float(f1_score(eval_y[masks[s][1]], pred, average="weighted"))

    bar = tqdm(total=len(fits) + len(settings), desc="classification", unit="step",
               disable=not progress)
    if jobs == 1:
        models = {s: {} for s in settings}
        for s, p, problem in fits:
            models[s][p] = fit(s, problem)
            bar.update()
        out = {}
        for s in settings:
            out[s] = f1(s, model_of(s, models[s]).predict(eval_x[eval_rows[s]]))
            bar.update()
        bar.close()
        return out
    with worker_threads(jobs) as pool:  # one BLAS thread per worker (byov.eval.pool)
        pending = {pool.submit(fit, s, problem): (s, p) for s, p, problem in fits}
        models = {s: {} for s in settings}
        preds = {}
        for done in as_completed(pending):
            s, p = pending[done]
            models[s][p] = done.result()
            bar.update()
            if len(models[s]) == len(setup[s][3]):
                # a setting's prediction is queued as soon as its last pair is fit, in parts
                # so that the last setting's prediction uses every worker
                model = model_of(s, models[s])
                parts = np.array_split(eval_rows[s], max(1, min(jobs, len(eval_rows[s]) // 512)))
                preds[s] = [pool.submit(model.predict, eval_x[rows]) for rows in parts]
        out = {}
        for s in settings:
            out[s] = f1(s, np.concatenate([f.result() for f in preds[s]]))
            bar.update()
        bar.close()
        return out
