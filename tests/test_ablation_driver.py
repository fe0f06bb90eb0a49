"""bench/ablation.py's own arithmetic: the view / phase variance shares, the best-epoch rule (as
the trainer's best.pth: highest val_score, the first on ties) and the finished-run check."""
import importlib.util
import json
import os

import numpy as np
import pytest

from byov.eval.io import SplitData, save_split

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location(
        "bench_ablation", os.path.join(ROOT, "bench", "ablation.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split(tmp_path, offset):
    # one ego and one exo video of 4 frames, phases 0 0 1 1; dim 0 = +-offset by view, dim 1 =
    # -1 / +1 by phase: total variance 8 (offset^2 + 1), between the views 8 offset^2
    phase = np.array([-1.0, -1.0, 1.0, 1.0])
    embeds = np.concatenate([np.stack([np.full(4, offset), phase], 1),
                             np.stack([np.full(4, -offset), phase], 1)]).astype(np.float32)
    videos = [{"name": "ego_a", "view": "ego", "num_frames": 4},
              {"name": "exo_a", "view": "exo", "num_frames": 4}]
    save_split(str(tmp_path), "test", SplitData(embeds, np.array([0, 0, 1, 1] * 2), videos, "test"))
    return str(tmp_path)


def test_view_share_is_the_between_view_fraction_of_variance(ablation, tmp_path):
    stats = ablation.view_stats(_split(tmp_path, 2.0), "test")
    assert stats["view_share"] == pytest.approx(4.0 / 5.0)
    # with the view means removed, all that is left is the phase signal
    assert stats["phase_share"] == pytest.approx(1.0)


def test_view_share_is_zero_when_the_views_coincide(ablation, tmp_path):
    assert ablation.view_stats(_split(tmp_path, 0.0), "test")["view_share"] == pytest.approx(0.0)


def test_best_epoch_takes_the_first_of_equal_scores_and_respects_the_limit(ablation):
    rows = [{"epoch": 4, "val/val_score": 0.5}, {"epoch": 9, "val/val_score": 0.5},
            {"epoch": 14, "val/val_score": 0.4}, {"epoch": 19, "val/val_score": 0.9}]
    assert ablation.best_epoch(rows, upto=19) == 4
    assert ablation.best_epoch(rows, upto=20) == 19
    with pytest.raises(RuntimeError):
        ablation.best_epoch([{"epoch": 3, "val/val_score": None}], upto=20)


def test_finished_needs_the_last_epoch_and_last_checkpoint(ablation, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with open(run / "log.jsonl", "w") as f:
        f.write(json.dumps({"epoch": 0, "step": 2, "train/loss": 1.0}) + "\n")  # a step line
        f.write(json.dumps({"epoch": 0, "epoch_seconds": 1.0}) + "\n")
        f.write(json.dumps({"epoch": 1, "epoch_seconds": 1.0}) + "\n")
    assert not ablation.finished(str(run), epochs=2)  # no last.pth
    (run / "checkpoints" / "last.pth").write_bytes(b"")
    assert ablation.finished(str(run), epochs=2)
    assert not ablation.finished(str(run), epochs=3)
