"""The AE2 downstream evaluation (docs/evaluation.md): four tasks on per-frame embeddings.

`evaluate_embeddings(train, evl)` returns a dict with the keys of the parity fixture
(`classification_f1`, `retrieval_map10`, `progression_r2`, `progression_r2_with_time_feature`,
`kendalls_tau`; fractions) for the tasks run, extended with `retrieval_map` (@5/10/15),
`kendalls_tau_by_view`, `progression_headline`, `few_shot` (when asked), `seconds` (wall time
per task) and `notes`.

"n/a" policy: a value the splits cannot support is None with a `notes` entry saying why, and
every other value is still computed: a cross-view setting when a split has no ego or no exo
videos; an SVM setting whose training frames hold a single class; retrieval @K when some query
keeps fewer than K candidates; progression when a train phase is missing from either split (or
has a single eval frame); progression and Kendall's tau when phases repeat or re-order within a
video of a split they read (`monotonic.py`); Kendall's tau with no defined pair; and, as a last
resort, a task that fails for any other reason (the note names the error). Input that is wrong rather than small
raises EvalInputError before any task runs: row counts that disagree, NaN/inf embeddings, bad
views, labels below -1, splits of different widths.
"""
from __future__ import annotations

import time
import warnings
from typing import Sequence

import numpy as np

from byov.eval.io import EvalInputError, SplitData, load_split, save_split
from byov.eval.pool import worker_threads

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


def _classification(train, evl, notes, n_jobs, progress):
    from byov.eval import classification

    run = _settings(classification.unavailable_settings(train.labels, train.is_ego, evl.is_ego),
                    "classification_f1", notes)
    notes.extend(classification.unseen_label_notes(train.labels, train.is_ego, evl.labels,
                                                   evl.is_ego, run))
    res = classification.phase_classification(train.embeds, train.labels, train.is_ego,
                                              evl.embeds, evl.labels, evl.is_ego,
                                              settings=run, n_jobs=n_jobs, progress=progress)
    return {"classification_f1": {s: res.get(s) for s in SETTINGS}}


def _retrieval(evl, notes, ks, progress):
    from byov.eval import retrieval

    run = _settings(retrieval.unavailable_settings(evl.is_ego), "retrieval_map", notes)
    for s, by_k in retrieval.unsupported_ks(evl.video_ids, evl.is_ego, ks, run).items():
        for k, why in by_k.items():
            notes.append(f"retrieval_map.{k}.{s}: n/a, {why}")
    res = retrieval.frame_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego, ks=ks,
                                    settings=run, progress=progress, missing="null")
    return {"retrieval_map10": {s: res[10].get(s) for s in SETTINGS},
            "retrieval_map": {str(k): {s: res[k].get(s) for s in SETTINGS} for k in ks}}


def _progression(train, evl, notes, time_feature):
    from byov.eval import monotonic, progression

    out = {"progression_r2": None, "progression_r2_with_time_feature": None,
           "progression_headline": ("progression_r2_with_time_feature" if time_feature
                                    else "progression_r2")}
    why = progression.unavailable_reason(train.labels, train.videos, evl.labels, evl.videos)
    why = why or monotonic.unavailable_reason(
        [(train.split, train.labels, train.videos), (evl.split, evl.labels, evl.videos)],
        "progression")
    if why:
        notes.append(f"progression_r2: n/a, {why}")
        return out
    extra = progression.unscored_eval_phases(train.labels, evl.labels)
    if extra:
        notes.append(f"progression_r2: eval phase(s) {extra} are above the train split's "
                     f"phases and are not scored (as released)")

    def run(tf):
        return progression.phase_progression(train.embeds, train.labels, train.videos,
                                             evl.embeds, evl.labels, evl.videos, tf)

    # both variants always; LAPACK releases the GIL, so they overlap, one BLAS thread each
    with worker_threads(2) as pool:
        out["progression_r2"], out["progression_r2_with_time_feature"] = pool.map(
            run, (False, True))
    return out


def _kendall(evl, notes, progress):
    from byov.eval import kendall, monotonic

    why = monotonic.unavailable_reason([(evl.split, evl.labels, evl.videos)], "Kendall's tau")
    if why:
        notes.append(f"kendalls_tau: n/a, {why}")
        return _FAILED["kendall"](())
    tau, by_view = kendall.kendalls_tau(evl.embeds, evl.videos, progress=progress)
    if np.isnan(tau):
        notes.append(f"kendalls_tau: n/a, no pair of '{evl.split}' videos gives a defined "
                     f"tau (needs 2+ videos with 2+ frames after stride 5, and a "
                     f"non-constant nearest-neighbour sequence)")
        tau = None
    return {"kendalls_tau": tau, "kendalls_tau_by_view": by_view}


def _few_shot(train, evl, notes, n_jobs, progress):
    from byov.eval import fewshot

    entries, fs_notes = fewshot.few_shot_classification(
        train.embeds, train.labels, train.lengths, evl.embeds, evl.labels, n_jobs=n_jobs,
        progress=progress)
    notes.extend(fs_notes)
    return {"few_shot": entries}


# what a task writes when it fails unexpectedly: its keys, all None
_FAILED = {
    "classification": lambda ks: {"classification_f1": dict.fromkeys(SETTINGS)},
    "retrieval": lambda ks: {"retrieval_map10": dict.fromkeys(SETTINGS),
                             "retrieval_map": {str(k): dict.fromkeys(SETTINGS) for k in ks}},
    "progression": lambda ks: {"progression_r2": None,
                               "progression_r2_with_time_feature": None},
    "kendall": lambda ks: {"kendalls_tau": None, "kendalls_tau_by_view": dict.fromkeys(
        ("ego-ego", "exo-exo", "ego-exo", "exo-ego"))},
    "few_shot": lambda ks: {"few_shot": None},
}


def evaluate_embeddings(train: SplitData, evl: SplitData, tasks: Sequence[str] | str = TASKS,
                        time_feature: bool = False, few_shot: bool = False,
                        ks: Sequence[int] = (5, 10, 15), progress: bool = True,
                        n_jobs: int | None = None) -> dict:
    """Run the requested tasks (train split fits; eval split scores).

    Args:
        train, evl: validated here; they must share the embedding width. Labels are phase ids,
            -1 for background frames (treated as the released code does: a class for the SVM,
            a label like any other for retrieval, no phase for progression).
        tasks: names or the digit string (see parse_tasks).
        time_feature: which progression variant is the headline (both are always computed);
            True for pour_liquid.
        few_shot: also run the few-shot protocol (slow; docs/evaluation.md).
        ks: retrieval cut-offs; 10 (the headline) is always included.
        n_jobs: threads for the SVM work (default: the usable CPUs). Above 1, classification's
            fits run while the other tasks run (one BLAS thread for all meanwhile; the numbers
            equal a sequential run's); 1 runs everything in turn.
    Returns:
        the metrics dict described in the module docstring; a task that cannot run on these
        splits, or fails, leaves None values and a note, and the other tasks still run.
    Raises:
        EvalInputError: wrong input (see the module docstring), before any task runs.
    """
    train.validate()
    evl.validate()
    if train.embeds.shape[1] != evl.embeds.shape[1]:
        raise EvalInputError(f"train embeddings are {train.embeds.shape[1]}-dim but "
                             f"'{evl.split}' embeddings are {evl.embeds.shape[1]}-dim; both "
                             f"splits must come from the same model")
    tasks = parse_tasks(tasks)
    ks = sorted(set(int(k) for k in ks) | {10})
    out: dict = {}
    notes: list[str] = []
    seconds: dict[str, float] = {}
    jobs = {
        "classification": lambda n: _classification(train, evl, n, n_jobs, progress),
        "retrieval": lambda n: _retrieval(evl, n, ks, progress),
        "progression": lambda n: _progression(train, evl, n, time_feature),
        "kendall": lambda n: _kendall(evl, n, progress),
        "few_shot": lambda n: _few_shot(train, evl, n, n_jobs, progress),
    }
    todo = tasks + (["few_shot"] if few_shot else [])
    results: dict[str, dict] = {}
    task_notes: dict[str, list[str]] = {t: [] for t in todo}

    def run(task: str) -> None:
        t0 = time.perf_counter()
        mine = task_notes[task]
        try:
            results[task] = jobs[task](mine)
        except Exception as e:  # noqa: BLE001 -- one task's failure must not lose the others
            results[task] = _FAILED[task](ks)
            mine.append(f"{task}: n/a, failed with {type(e).__name__}: {e}")
            warnings.warn(f"evaluation task {task} failed ({type(e).__name__}: {e}); its "
                          f"values are null and the other tasks still run", RuntimeWarning)
        seconds[task] = time.perf_counter() - t0

    from byov.eval.classification import default_jobs
    if "classification" in todo and len(todo) > 1 and (n_jobs or default_jobs()) > 1:
        # libsvm releases the GIL: the SVM fits run in their threads while the other tasks run
        # here. One BLAS thread for the whole overlap, so every task computes exactly as it does
        # alone at one thread (the results do not depend on the overlap's timing).
        with worker_threads(1) as pool:
            svm = pool.submit(run, "classification")
            for task in todo:
                if task != "classification":
                    run(task)
            svm.result()
    else:
        for task in todo:
            run(task)
    for task in todo:  # in task order, whatever order they finished in
        out.update(results[task])
        notes.extend(task_notes[task])
    if "progression" in tasks:
        out.setdefault("progression_headline", "progression_r2_with_time_feature"
                       if time_feature else "progression_r2")
    out["seconds"] = seconds
    out["notes"] = notes
    return out
