"""Progression and Kendall's tau are n/a, with the reason, when phases repeat or re-order within
a video (byov/eval/monotonic.py); classification and retrieval are still scored, and monotonic
splits give the same numbers as before."""
import numpy as np
import pytest

from byov.eval import SplitData, evaluate_embeddings
from byov.eval.monotonic import nonmonotonic_videos, order_violation, phase_sequence


@pytest.mark.parametrize("labels, why", [
    ([0, 0, 1, 1, 2], None),
    ([-1, 0, -1, 0, 1, -1], None),  # background between two stretches of phase 0
    ([0, 2, 2], None),  # a skipped phase
    ([-1, -1], None),  # background only
    ([0, 1, 0], "phase 0 repeats after phase 1"),
    ([1, 1, -1, 0, 2], "phase 0 comes after phase 1"),
])
def test_order_violation(labels, why):
    assert order_violation(np.array(labels)) == why


def test_phase_sequence_drops_background_and_collapses_runs():
    assert phase_sequence(np.array([-1, 0, 0, -1, 0, 2, 2, 1])).tolist() == [0, 2, 1]


def _split(name, sequences, seed):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.asarray(s) for s in sequences])
    videos = [{"name": f"{name}{i}", "view": "ego" if i % 2 == 0 else "exo",
               "num_frames": len(s)} for i, s in enumerate(sequences)]
    # embeddings that follow the phase, with noise, so every task has something to score
    embeds = labels[:, None] + 0.3 * rng.standard_normal((len(labels), 4))
    return SplitData(embeds.astype(np.float32), labels, videos, name)


ORDERED = [[0] * 6 + [1] * 6 + [2] * 6, [0] * 5 + [1] * 7 + [2] * 8,
           [0] * 7 + [1] * 5 + [2] * 6, [0] * 4 + [1] * 8 + [2] * 7]


def test_nonmonotonic_videos_names_each_one():
    split = _split("val", ORDERED[:2] + [[0] * 4 + [1] * 4 + [0] * 4 + [2] * 4], 0)
    assert nonmonotonic_videos(split.labels, split.videos) == [
        ("val2", "phase 0 repeats after phase 1")]


def test_evaluation_reports_na_for_order_metrics_only():
    train = _split("train", ORDERED, 0)
    ordered = evaluate_embeddings(train, _split("test", ORDERED, 1), progress=False)
    assert isinstance(ordered["progression_r2"], float)
    assert isinstance(ordered["kendalls_tau"], float)
    assert not any("repeat or re-order" in n for n in ordered["notes"])

    repeated = ORDERED[:3] + [[0] * 5 + [2] * 5 + [1] * 5 + [2] * 4]
    got = evaluate_embeddings(train, _split("test", repeated, 1), progress=False)
    assert got["progression_r2"] is None and got["progression_r2_with_time_feature"] is None
    assert got["kendalls_tau"] is None
    assert set(got["kendalls_tau_by_view"].values()) == {None}
    assert isinstance(got["classification_f1"]["regular"], float)
    assert isinstance(got["retrieval_map10"]["regular"], float)
    why = ("phases repeat or re-order in 1 of 4 'test' videos (e.g. 'test3': phase 1 comes "
           "after phase 2)")
    assert f"kendalls_tau: n/a, {why}" in " ".join(got["notes"])
    assert f"progression_r2: n/a, {why}" in " ".join(got["notes"])

    # progression also reads the train split: a repeat there makes it n/a, tau stays scored
    got = evaluate_embeddings(_split("train", repeated, 0), _split("test", ORDERED, 1),
                              progress=False)
    assert got["progression_r2"] is None and isinstance(got["kendalls_tau"], float)
    assert "1 of 4 'train' videos" in " ".join(got["notes"])
