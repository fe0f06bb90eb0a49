"""Ctrl-C (SIGINT) or SIGTERM ends train.py with one line naming the signal and how to go on,
exit status 128 + signal, no traceback; the run then continues with --resume auto as told."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from train_helpers import load_ckpt, subprocess_env, train_in_process


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_says_so_and_resumes_as_advised(args, tmp_path, signum):
    common = dict(epochs=40, steps_per_epoch=5, save_every=0, log_every=5)
    run_dir = str(tmp_path / "run")
    last = os.path.join(run_dir, "checkpoints", "last.pth")
    proc = subprocess.Popen([sys.executable, "train.py", *args("run", **common)], cwd=ROOT,
                            env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if os.path.isfile(last):  # written atomically: the first epoch is done
                proc.send_signal(signum)
                break
            time.sleep(0.02)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    name = signal.Signals(signum).name
    assert f"train.py: interrupted by {name}" in stderr
    assert "--resume auto" in stderr
    stopped_at = torch.load(last, weights_only=True)["epoch"]
    assert stopped_at < common["epochs"] - 1  # stopped with epochs left
    # the advice works: the same arguments with --resume auto continue from that checkpoint
    train_in_process(args("run", **{**common, "epochs": stopped_at + 2}, resume="auto"))
    assert load_ckpt(run_dir)["epoch"] == stopped_at + 1


def test_evaluate_stopped_by_sigterm_says_so(tmp_path):
    """evaluate.py on a large embedding folder, stopped mid-way: one line, status 143."""
    import numpy as np

    from byov.eval import SplitData, save_split

    rng = np.random.default_rng(0)
    for split, per_video in (("train", 500), ("test", 248)):
        videos = [{"name": f"{split}{v}", "view": ("ego", "exo")[v % 2],
                   "num_frames": per_video} for v in range(20)]
        labels = np.tile(np.repeat(np.arange(4), per_video // 4), 20)
        n = len(labels)
        save_split(str(tmp_path), split, SplitData(
            rng.normal(size=(n, 64)).astype(np.float32), labels, videos, split))
    proc = subprocess.Popen([sys.executable, "evaluate.py", "--embeddings", str(tmp_path)],
                            cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # imports done, the SVM fits under way (noise: many support vectors)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "evaluate.py: interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert not os.path.exists(tmp_path / "metrics.json")  # nothing half-done was written
