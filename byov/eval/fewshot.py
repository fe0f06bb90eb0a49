"""Few-shot phase classification (docs/evaluation.md, "Few-shot"): the released intent, made
runnable (as released it unpacks four values from a function that returns one).

For k labelled train videos, episode i draws `random.Random(seed + i).sample(range(V), k)` (the
same draw as the released `random.seed(seed + i); random.sample(...)`, without touching global RNG
state), fits the classification SVM on all frames of those videos and scores weighted F1 and
accuracy on all eval frames (the Regular setting), plus accuracy on the unselected train frames
("propagation"; 0 when k = V). k in {1, 2, 3, 5, 10, int(0.5 V), V} with 50 / 10 / 1 episodes.
Runs only when asked (`--few_shot`).
"""
from __future__ import annotations

import random

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from tqdm import tqdm

from byov.eval.classification import default_jobs
from byov.eval.io import EvalInputError
from byov.eval.ovo_svm import make_svm
from byov.eval.pool import worker_threads
from byov.eval.svm_predict import svm_predict


def episode_plan(num_videos: int) -> list[tuple[int, int]]:
    """[(k, episodes)] in the released order; k values above V are left out by the caller."""
    v = num_videos
    return [(1, 50), (2, 50), (3, 50), (5, 50), (10, 50), (int(0.5 * v), 10), (v, 1)]


def select_videos(num_videos: int, k: int, seed: int) -> list[int]:
    """The released episode draw: k distinct video indices."""
    return random.Random(seed).sample(range(num_videos), k)


def _episode(train_x, train_y, offsets, eval_x, eval_y, k, seed):
    v = len(offsets) - 1
    chosen = np.zeros(len(train_x), dtype=bool)
    for i in select_videos(v, k, seed):
        chosen[offsets[i]:offsets[i + 1]] = True
    if len(np.unique(train_y[chosen])) < 2:
        return None  # an SVM cannot fit one phase; counted and reported by the caller
    model = make_svm().fit(train_x[chosen], train_y[chosen])
    pred = svm_predict(model, eval_x)
    prop = 0.0
    if not chosen.all():
        prop = accuracy_score(train_y[~chosen], svm_predict(model, train_x[~chosen]))
    return (f1_score(eval_y, pred, average="weighted"), accuracy_score(eval_y, pred), prop)


def few_shot_classification(train_x: np.ndarray, train_y: np.ndarray, train_lengths,
                            eval_x: np.ndarray, eval_y: np.ndarray, seed: int = 42,
                            n_jobs: int | None = None, progress: bool = False
                            ) -> tuple[list[dict], list[str]]:
    """Few-shot F1 per k.

    Args:
        train_x: (N_train, D); train_y: (N_train,); train_lengths: (V,) frames per train video,
            in row order. eval_x: (N_eval, D); eval_y: (N_eval,).
    Returns:
        (entries, notes). One entry per k: {"k", "episodes", "f1_mean", "f1_std" (population),
        "eval_acc_mean", "propagation_acc_mean", "skipped_single_phase"} (fractions); notes
        explain skipped k values or episodes.
    """
    lengths = np.asarray(train_lengths, dtype=np.int64)
    if lengths.sum() != len(train_x):
        raise EvalInputError(f"few-shot: train lengths sum to {lengths.sum()} but there are "
                             f"{len(train_x)} train rows")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    v = len(lengths)
    notes, plan = [], []
    for k, episodes in episode_plan(v):
        if k < 1 or k > v:
            notes.append(f"few_shot: k={k} skipped, the train split has {v} videos")
        else:
            plan.append((k, episodes))
    jobs = [(k, seed + i) for k, n in plan for i in range(n)]

    def run(job):
        return _episode(train_x, train_y, offsets, eval_x, eval_y, *job)

    workers = n_jobs or default_jobs()
    with worker_threads(workers) as pool:
        results = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="few-shot",
                            unit="episode", disable=not progress))
    entries, pos = [], 0
    for k, episodes in plan:
        res = results[pos:pos + episodes]
        pos += episodes
        ok = np.array([r for r in res if r is not None], dtype=np.float64).reshape(-1, 3)
        skipped = episodes - len(ok)
        if skipped:
            notes.append(f"few_shot: k={k}: {skipped} of {episodes} episodes drew videos with a "
                         f"single phase and were left out")
        stats = {"f1_mean": None, "f1_std": None, "eval_acc_mean": None,
                 "propagation_acc_mean": None}
        if len(ok):
            stats = {"f1_mean": float(ok[:, 0].mean()), "f1_std": float(ok[:, 0].std()),
                     "eval_acc_mean": float(ok[:, 1].mean()),
                     "propagation_acc_mean": float(ok[:, 2].mean())}
        entries.append({"k": k, "episodes": episodes, **stats, "skipped_single_phase": skipped})
    return entries, notes
