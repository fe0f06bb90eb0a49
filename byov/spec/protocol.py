"""The evaluation protocol's start-up checks: best.pth must be choosable, or the run says why not.

`--best_metric` picks best.pth among the epochs evaluated on val (every `--ds_every_n_epoch`),
from the val metrics of `--eval_task`'s tasks. A task list that never computes the metric would
leave best.pth unwritten without a word, and scripts/run.sh and the benchmark would then test
last.pth. `check_best_metric` refuses that combination before any work, naming both flags and
the fix; `checkpoint_plan` says, at start-up, which checkpoint the run will leave to be tested.
"""
from __future__ import annotations

from byov.errors import ByovError

# the tasks (byov.eval.TASKS) of which at least one must run for a metric to have a value
_NEEDS = {"val_score": ("classification", "retrieval"), "kendalls_tau": ("kendall",),
          "progression_r2": ("progression",),
          "progression_r2_with_time_feature": ("progression",)}


class ProtocolError(ByovError, ValueError):
    """Settings under which the protocol cannot run as it says (the message names the fix)."""


def tasks_needed(best_metric: str) -> tuple[str, ...]:
    """The tasks of which one must run for `best_metric` (a `--best_metric` choice) to exist."""
    if best_metric in _NEEDS:
        return _NEEDS[best_metric]
    group = best_metric.split(".")[0]
    return {"classification_f1": ("classification",),
            "retrieval_map10": ("retrieval",)}.get(group, ())


def check_best_metric(eval_task: str, best_metric: str) -> None:
    """Raise ProtocolError when the tasks of `eval_task` can never compute `best_metric`.

    Raises:
        ProtocolError: naming --eval_task, --best_metric, the task needed and the fix.
        ValueError: `eval_task` is not a task list (byov.eval.parse_tasks).
    """
    from byov.eval import TASKS, parse_tasks

    tasks = parse_tasks(eval_task)
    needed = tasks_needed(best_metric)
    if not needed or any(t in tasks for t in needed):
        return
    digits = "".join(str(TASKS.index(t) + 1) for t in sorted(set(tasks) | {needed[0]},
                                                            key=TASKS.index))
    computable = [m for m in list(_NEEDS) + [f"{g}.regular" for g in ("classification_f1",
                                                                      "retrieval_map10")]
                  if any(t in tasks for t in tasks_needed(m))]
    raise ProtocolError(
        f"--eval_task {eval_task} ({', '.join(tasks)}) never computes --best_metric "
        f"{best_metric}, which needs {' or '.join(needed)}: best.pth would never be written "
        f"and the checkpoint tested would be last.pth. Add the task (e.g. --eval_task "
        f"{digits}), or choose a --best_metric that these tasks compute"
        + (f" ({', '.join(computable)})" if computable else ""))


def checkpoint_plan(spec) -> str:
    """One line saying which checkpoint the run leaves for testing (printed at start-up), for a
    `byov.spec.EvalSpec`."""
    if not spec.every_n_epochs:
        return ("no val evaluation during training (--ds_every_n_epoch 0): best.pth is not "
                "written; the checkpoint to test is last.pth (the final epoch, not chosen on "
                "val)")
    return (f"best.pth: the epoch with the highest val {spec.best_metric} among those "
            f"evaluated every {spec.every_n_epochs} epoch(s) (--eval_task {spec.eval_task})")


def check_training_protocol(spec) -> str:
    """`check_best_metric` for a training run's `byov.spec.EvalSpec` (when val evaluation runs
    at all); returns `checkpoint_plan`'s line."""
    if spec.every_n_epochs:
        check_best_metric(spec.eval_task, spec.best_metric)
    return checkpoint_plan(spec)
