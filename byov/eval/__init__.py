"""The AE2 downstream evaluation (REFERENCE §6): four tasks on per-frame embeddings.

`evaluate_embeddings(train, evl)` returns a dict with the keys of the parity fixture
(`classification_f1`, `retrieval_map10`, `progression_r2`, `progression_r2_with_time_feature`,
`kendalls_tau`; fractions) for the tasks run, extended with `retrieval_map` (@5/10/15),
`kendalls_tau_by_view`, `progression_headline`, `few_shot` (when asked), `seconds` (wall time
per task) and `notes`.

"n/a" policy: a setting the splits cannot support (a cross-view setting when a split has no ego
or no exo videos; an SVM setting whose training frames hold a single phase; Kendall's tau with
no defined pair) gets the value None and a `notes` entry saying why. Inputs that are wrong rather
than merely small (row-count mismatch, NaN/inf, bad views, fewer retrieval candidates than K,
phases missing from a split for progression) raise EvalInputError.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from byov.eval.io import EvalInputError, SplitData, load_split, save_split

TASKS = ("classification", "retrieval", "progression", "kendall")
SETTINGS = ("regular", "ego2exo", "exo2ego")

__all__ = ["TASKS", "SETTINGS", "EvalInputError", "SplitData", "evaluate_embeddings",
           "load_split", "parse_tasks", "save_split"]


def parse_tasks(spec: str | Sequence[str]) -> list[str]:
    """The released digit string ("1234", "13") or task names ("classification,kendall").

    Returns the tasks in TASKS order without duplicates; raises ValueError on anything else.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    wanted = set()
    for item in items:
        text = str(item).strip()
        if text.isdigit():
            for ch in text:
                if ch not in "1234":
                    raise ValueError(f"eval_task digit {ch!r} in {spec!r} is not a task: use "
                                     f"1=classification 2=retrieval 3=progression 4=kendall")
                wanted.add(TASKS[int(ch) - 1])
            continue
        for name in filter(None, (p.strip() for p in text.split(","))):
            if name not in TASKS:
                raise ValueError(f"unknown eval task {name!r} in {spec!r}; use digits 1-4 or "
                                 f"names: {', '.join(TASKS)}")
            wanted.add(name)
    if not wanted:
        raise ValueError(f"eval_task {spec!r} names no task; use e.g. '1234' or "
                         f"'classification,retrieval'")
    return [t for t in TASKS if t in wanted]


def _settings(unavailable: dict[str, str], key: str, notes: list[str]) -> list[str]:
    for s, why in unavailable.items():
        notes.append(f"{key}.{s}: n/a, {why}")
    return [s for s in SETTINGS if s not in unavailable]


def evaluate_embeddings(train: SplitData, evl: SplitData, tasks: Sequence[str] | str = TASKS,
                        time_feature: bool = False, few_shot: bool = False,
                        ks: Sequence[int] = (5, 10, 15), progress: bool = True,
                        n_jobs: int | None = None) -> dict:
    """Run the requested tasks (train split fits; eval split scores).

    Args:
        train, evl: validated here; they must share the embedding width.
        tasks: names or the digit string (see parse_tasks).
        time_feature: which progression variant is the headline (both are always computed,
            DEC 22); True for pour_liquid.
        few_shot: also run the §6.3 few-shot protocol (slow).
        ks: retrieval cut-offs; 10 (the headline) is always included.
    """
    from byov.eval import classification, fewshot, kendall, progression, retrieval

    train.validate()
    evl.validate()
    if train.embeds.shape[1] != evl.embeds.shape[1]:
        raise EvalInputError(f"train embeddings are {train.embeds.shape[1]}-dim but "
                             f"'{evl.split}' embeddings are {evl.embeds.shape[1]}-dim; both "
                             f"splits must come from the same model")
    tasks = parse_tasks(tasks)
    out: dict = {}
    notes: list[str] = []
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if "classification" in tasks:
        run = _settings(classification.unavailable_settings(train.labels, train.is_ego,
                                                            evl.is_ego),
                        "classification_f1", notes)
        res = classification.phase_classification(train.embeds, train.labels, train.is_ego,
                                                  evl.embeds, evl.labels, evl.is_ego,
                                                  settings=run, n_jobs=n_jobs,
                                                  progress=progress)
        out["classification_f1"] = {s: res.get(s) for s in SETTINGS}
        seconds["classification"] = time.perf_counter() - t0
    if "retrieval" in tasks:
        t0 = time.perf_counter()
        ks = sorted(set(int(k) for k in ks) | {10})
        run = _settings(retrieval.unavailable_settings(evl.is_ego), "retrieval_map", notes)
        res = retrieval.frame_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego,
                                        ks=ks, settings=run, progress=progress)
        out["retrieval_map10"] = {s: res[10].get(s) for s in SETTINGS}
        out["retrieval_map"] = {str(k): {s: res[k].get(s) for s in SETTINGS} for k in ks}
        seconds["retrieval"] = time.perf_counter() - t0
    if "progression" in tasks:
        t0 = time.perf_counter()

        def prog(tf):
            return progression.phase_progression(train.embeds, train.labels, train.videos,
                                                 evl.embeds, evl.labels, evl.videos, tf)

        # both variants always (DEC 22); LAPACK releases the GIL, so they overlap, one BLAS
        # thread each
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(2) as pool:
            plain, timed = pool.map(prog, (False, True))
        out["progression_r2"], out["progression_r2_with_time_feature"] = plain, timed
        out["progression_headline"] = ("progression_r2_with_time_feature" if time_feature
                                       else "progression_r2")
        seconds["progression"] = time.perf_counter() - t0
    if "kendall" in tasks:
        t0 = time.perf_counter()
        tau, by_view = kendall.kendalls_tau(evl.embeds, evl.videos, progress=progress)
        if np.isnan(tau):
            notes.append(f"kendalls_tau: n/a, no pair of '{evl.split}' videos gives a defined "
                         f"tau (needs 2+ videos with 2+ frames after stride 5, and a "
                         f"non-constant nearest-neighbour sequence)")
            tau = None
        out["kendalls_tau"] = tau
        out["kendalls_tau_by_view"] = by_view
        seconds["kendall"] = time.perf_counter() - t0
    if few_shot:
        t0 = time.perf_counter()
        out["few_shot"], fs_notes = fewshot.few_shot_classification(
            train.embeds, train.labels, train.lengths, evl.embeds, evl.labels,
            n_jobs=n_jobs, progress=progress)
        notes.extend(fs_notes)
        seconds["few_shot"] = time.perf_counter() - t0
    out["seconds"] = seconds
    out["notes"] = notes
    return out
