"""Evaluation speed without other numbers: the SVM fits overlapping the other tasks give the
sequential run's numbers exactly, and `evaluate.py --embeddings` never imports torch."""
import json
import subprocess
import sys

import numpy as np

from byov.eval import SplitData, evaluate_embeddings, save_split
from conftest import ROOT


def _split(rng, n_videos, name):
    xs, ys, videos = [], [], []
    for v in range(n_videos):
        n = int(rng.integers(30, 50))
        y = np.repeat(np.arange(3), [n // 3, n // 3, n - 2 * (n // 3)])
        xs.append((y[:, None] * 0.7 + rng.normal(size=(n, 8))).astype(np.float32))
        ys.append(y)
        videos.append({"name": f"v{v}", "view": ("ego", "exo")[v % 2], "num_frames": n})
    return SplitData(np.concatenate(xs), np.concatenate(ys), videos, name)


def test_overlapping_tasks_give_the_sequential_numbers():
    rng = np.random.default_rng(0)
    train, evl = _split(rng, 8, "train"), _split(rng, 6, "test")
    one = evaluate_embeddings(train, evl, progress=False, n_jobs=1)
    many = evaluate_embeddings(train, evl, progress=False, n_jobs=3)
    for m in (one, many):
        m.pop("seconds")
    assert json.dumps(one, sort_keys=True) == json.dumps(many, sort_keys=True)
    assert one["classification_f1"]["regular"] is not None


def test_evaluate_embeddings_path_imports_no_torch(tmp_path):
    rng = np.random.default_rng(1)
    save_split(str(tmp_path), "train", _split(rng, 4, "train"))
    save_split(str(tmp_path), "test", _split(rng, 4, "test"))
    code = ("import sys, evaluate\n"
            "evaluate.main(['--embeddings', sys.argv[1], '--json', sys.argv[1] + '/m.json'])\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "TORCH False" in proc.stdout
    assert json.loads((tmp_path / "m.json").read_text())["kendalls_tau"] is not None
