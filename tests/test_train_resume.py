"""Resuming restores the whole run (docs/design.md#resume-and-per-step-schedules): a resumed run
ends bitwise where an uninterrupted one does, also after a SIGKILL; a resume that cannot be
honoured fails loudly."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from byov.training import loop as trainer
from byov.checkpoint import CheckpointError
from conftest import ROOT
from train_helpers import (epoch_summaries, load_ckpt, read_log, subprocess_env,
                           tensors_differing, train_in_process)

COMPARED = ("encoder", "decoder", "target", "backbone", "optimizer", "step", "epoch")


def assert_same_state(a: dict, b: dict):
    assert [k for k in COMPARED if k in a] == [k for k in COMPARED if k in b]
    diffs = [d for k in COMPARED if k in a for d in tensors_differing(a[k], b[k], prefix=k)]
    assert not diffs, diffs[:10]


def test_resume_continues_exactly(args, tmp_path):
    train_in_process(args("full", epochs=4, save_every=0))
    train_in_process(args("part", epochs=2, save_every=0))
    train_in_process(args("part", epochs=4, save_every=0, resume="auto"))
    full, part = load_ckpt(str(tmp_path / "full")), load_ckpt(str(tmp_path / "part"))
    assert (part["epoch"], part["step"]) == (3, 12)
    assert full["optimizer"]["state"]  # Adam moments exist and are compared
    assert_same_state(full, part)
    # the resumed folder's log continues the same loss curve
    losses = [[r["train/loss"] for r in epoch_summaries(read_log(str(tmp_path / d)))]
              for d in ("full", "part")]
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_worker_processes_draw_the_same_pairs_every_epoch(args, tmp_path):
    """Regression: with persistent DataLoader workers, PairDataset.set_epoch never reached the
    workers, so every epoch re-drew epoch 0's pairs (and a resumed run diverged)."""
    train_in_process(args("w0", epochs=2, save_every=0, num_workers=0))
    train_in_process(args("w1", epochs=2, save_every=0, num_workers=1))
    assert_same_state(load_ckpt(str(tmp_path / "w0")), load_ckpt(str(tmp_path / "w1")))


def test_killed_run_resumes_to_the_uninterrupted_result(args, tmp_path):
    """SIGKILL mid-run, then --resume auto: same weights, teacher and optimizer state as a run
    that was never interrupted (EMA teacher and cosine lr with warmup: per-step schedules)."""
    epochs, steps = 5, 20
    common = dict(epochs=epochs, steps_per_epoch=steps, target="ema", lr_schedule="cosine",
                  warmup_epochs=1, save_every=0, log_every=10)
    killed_dir = str(tmp_path / "killed")
    last = os.path.join(killed_dir, "checkpoints", "last.pth")
    proc = subprocess.Popen([sys.executable, "train.py", *args("killed", **common)], cwd=ROOT,
                            env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    saved_epoch = None
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if os.path.isfile(last):  # written atomically: a complete file or none
                saved_epoch = torch.load(last, weights_only=True)["epoch"]
                if saved_epoch >= 1:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and saved_epoch is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"run ended by itself: {stderr[-2000:]}"
    at_kill = torch.load(last, weights_only=True)["epoch"]
    assert 1 <= at_kill < epochs - 1, "the kill must land with epochs left to train"

    train_in_process(args("killed", **common, resume="auto"))
    train_in_process(args("whole", **common))
    resumed, whole = load_ckpt(killed_dir), load_ckpt(str(tmp_path / "whole"))
    assert (resumed["epoch"], resumed["step"]) == (epochs - 1, epochs * steps)
    assert_same_state(whole, resumed)
    # the log reads as one run: steps the killed run logged past its checkpoint are not repeated
    def step_lines(run):
        return [(r["step"], r["train/lr"]) for r in read_log(str(tmp_path / run))
                if "train/lr" in r]
    assert step_lines("killed") == step_lines("whole")


def test_fresh_run_refuses_a_folder_that_holds_a_run(args, tmp_path):
    train_in_process(args("run"))
    last = os.path.join(tmp_path, "run", "checkpoints", "last.pth")
    before = os.stat(last).st_mtime_ns
    with pytest.raises(CheckpointError, match=r"already holds a run[\s\S]*--resume auto"):
        train_in_process(args("run", epochs=2))
    assert os.stat(last).st_mtime_ns == before


def test_resume_refuses_a_changed_architecture(args, tmp_path):
    train_in_process(args("run"))
    last = os.path.join(tmp_path, "run", "checkpoints", "last.pth")
    before = os.stat(last).st_mtime_ns
    with pytest.raises(CheckpointError, match=r"n_layers: checkpoint 1, current 2[\s\S]*"
                                              r"--n_layers 1"):
        train_in_process(args("run", epochs=2, resume="auto", n_layers=2))
    # freeze_base decides which parameters the optimizer state belongs to
    with pytest.raises(CheckpointError, match=r"freeze_base: checkpoint True, current False"
                                              r"[\s\S]*--freeze_base"):
        train_in_process(args("run", epochs=2, resume="auto", freeze_base=False))
    assert os.stat(last).st_mtime_ns == before
    assert len(epoch_summaries(read_log(str(tmp_path / "run")))) == 1
    with open(tmp_path / "run" / "config.yaml") as f:  # a refused resume rewrites nothing
        assert "n_layers: 1\n" in f.read()


def test_resume_of_a_finished_run_trains_nothing(args, tmp_path, capsys):
    train_in_process(args("run", epochs=1))
    last = os.path.join(tmp_path, "run", "checkpoints", "last.pth")
    before = os.stat(last).st_mtime_ns
    train_in_process(args("run", epochs=1, resume="auto"))
    assert "nothing to train" in capsys.readouterr().out
    assert os.stat(last).st_mtime_ns == before


def test_fresh_run_ignores_a_missing_auto_checkpoint(args, tmp_path, monkeypatch):
    """--resume auto in an empty folder starts from scratch (and says nothing about resuming)."""
    calls = []
    original = trainer.train_one_epoch

    def counting(*a, **k):
        calls.append(a[1])  # start_step
        return original(*a, **k)

    monkeypatch.setattr(trainer, "train_one_epoch", counting)
    train_in_process(args("fresh", epochs=2, resume="auto"))
    assert calls == [0, 3]


def test_auto_resume_from_a_damaged_last_checkpoint_fails_loudly(args, tmp_path):
    """A truncated last.pth (e.g. a copy cut short) is an error naming it, never a fresh start."""
    train_in_process(args("run"))
    last = os.path.join(tmp_path, "run", "checkpoints", "last.pth")
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) // 2)
    with pytest.raises(CheckpointError, match=rf"{last} is corrupt"):
        train_in_process(args("run", epochs=2, resume="auto"))
    assert len(epoch_summaries(read_log(str(tmp_path / "run")))) == 1
