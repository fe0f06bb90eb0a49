"""What to do when the loss becomes NaN or inf: advice that leads somewhere.

A `--resume` replays the same seeded pairs and masks from the same weights (the run's
randomness is indexed by the step), so it diverges again at the same step, and a resume with a
lower `--lr` is refused (lr is a resume key, byov/spec/keys.py). What works is a NEW run with
a lower learning rate, from weights that still gave a finite loss: `--init_from <checkpoint>
--lr <lower>` into another `--output_dir` (fresh optimizer, schedules from step 0). A checkpoint
whose next step is the one that diverged holds the weights that produced the NaN, so it is not
advised; an earlier one is, or a fresh start when there is none (tests/test_no_nameless_crash.py
follows the advice and trains past the step that diverged).
"""
from __future__ import annotations

import os
import shlex


def _checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """(step, path) of the run's readable checkpoints, newest step first."""
    from byov.checkpoint import CheckpointError, load_checkpoint

    folder = os.path.join(output_dir, "checkpoints")
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".pth"))
    except OSError:
        return []
    found = {}
    for name in names:
        path = os.path.join(folder, name)
        try:
            step = int(load_checkpoint(path)["step"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            continue
        # one path per step: last.pth, then best.pth, then the epoch file
        rank = (name != "last.pth", name != "best.pth", name)
        if step not in found or rank < found[step][0]:
            found[step] = (rank, path)
    return [(step, found[step][1]) for step in sorted(found, reverse=True)]


def nan_advice(run, optim, step: int) -> str:
    """The advice printed with a non-finite loss at `step` of a run (its `byov.spec.RunSpec`
    and `OptimSpec`)."""
    out, lr = run.output_dir, float(optim.lr)
    lower = f"{lr / 10:g}"
    new_dir = f"{out.rstrip(os.sep)}_lr{lower}"
    precision = (" (add --precision fp32 if it ran in bf16/fp16 on a GPU)"
                 if run.precision != "fp32" else "")
    # a checkpoint saved just before `step` holds the weights whose loss was not finite
    usable = [(s, p) for s, p in _checkpoints(out) if s < step]
    replay = (f"A --resume would replay the same pairs and masks from the same weights and "
              f"diverge again at step {step}. ")
    if not usable:
        return (replay + f"No checkpoint before step {step} holds weights that still gave a "
                f"finite loss: start a new run with a lower learning rate: `--lr {lower} "
                f"--output_dir {shlex.quote(new_dir)}`{precision}")
    start, path = usable[0]
    return (replay + f"Start a new run from the last weights that gave a finite loss (step "
            f"{start}) with a lower learning rate: `--init_from {shlex.quote(path)} --lr "
            f"{lower} --output_dir {shlex.quote(new_dir)}`{precision}")
