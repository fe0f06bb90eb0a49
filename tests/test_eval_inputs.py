"""Bad or degenerate evaluation input: a clear EvalInputError, or a documented "n/a" + note."""
import json
import os

import numpy as np
import pytest

from byov.eval import EvalInputError, SplitData, evaluate_embeddings, parse_tasks
from byov.eval.classification import phase_classification
from byov.eval.io import load_split, save_split
from byov.eval.progression import phase_progression
from byov.eval.tables import format_table, write_metrics
from byov.eval.retrieval import frame_retrieval


def make_split(views, n=24, dim=4, seed=0, phases=3, name="s"):
    """One video per entry of `views`, n frames each, phases in order."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.repeat(np.arange(phases), n // phases), len(views))
    x = rng.normal(size=(len(labels), dim)) + 3 * np.eye(dim)[labels % dim]
    videos = [{"name": f"{name}{i}", "view": v, "num_frames": n} for i, v in enumerate(views)]
    return SplitData(x.astype(np.float32), labels.astype(np.int64), videos, name)


# -- validation -----------------------------------------------------------------------------

def test_row_count_mismatch_is_named():
    s = make_split(["ego", "exo"])
    bad = SplitData(s.embeds[:-1], s.labels, s.videos, "test")
    with pytest.raises(EvalInputError, match=r"split 'test'.*47 embedding rows, 48 labels, 48"):
        bad.validate()
    bad = SplitData(s.embeds, s.labels, s.videos + [{"name": "x", "view": "ego",
                                                     "num_frames": 3}], "test")
    with pytest.raises(EvalInputError, match="51 frames in the per-video metadata"):
        bad.validate()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_embeddings_name_split_and_count(value):
    s = make_split(["ego", "exo"], name="val")
    s.embeds[[3, 7]] = value
    with pytest.raises(EvalInputError, match=r"split 'val': 2 of 48 embedding rows contain NaN"):
        s.validate()


def test_bad_view_and_bad_labels():
    s = make_split(["ego", "top"])
    with pytest.raises(EvalInputError, match="view 'top'.*'ego' or 'exo'"):
        s.validate()
    s = make_split(["ego", "exo"])
    s.labels[0] = -1  # background: accepted
    s.validate()
    s.labels[0] = -2
    with pytest.raises(EvalInputError, match=r"phase ids >= 0 or -1 \(background\), found -2"):
        s.validate()
    s = make_split(["ego", "exo"])
    with pytest.raises(EvalInputError, match="train embeddings are 4-dim but 'e' embeddings"):
        evaluate_embeddings(s, make_split(["ego", "exo"], dim=5, name="e"), progress=False)


# -- n/a settings ---------------------------------------------------------------------------

def test_cross_view_without_ego_videos_is_na_with_notes():
    train = make_split(["ego", "exo", "ego", "exo"])
    evl = make_split(["exo", "exo", "exo"], seed=1, name="e")
    m = evaluate_embeddings(train, evl, progress=False)
    assert m["retrieval_map10"]["ego2exo"] is None and m["retrieval_map10"]["exo2ego"] is None
    assert m["retrieval_map10"]["regular"] is not None
    assert m["classification_f1"]["exo2ego"] is None  # no eval ego frames to score
    assert m["classification_f1"]["ego2exo"] is not None
    assert m["kendalls_tau_by_view"]["ego-exo"] is None
    assert m["kendalls_tau_by_view"]["exo-exo"] is not None
    assert any(n.startswith("retrieval_map.ego2exo: n/a") and "no ego videos" in n
               for n in m["notes"])
    assert any(n.startswith("classification_f1.exo2ego: n/a") for n in m["notes"])
    table = format_table(m)
    assert "n/a" in table and "Notes:" in table
    # the task functions themselves refuse with a clear error
    with pytest.raises(EvalInputError, match="no ego videos"):
        frame_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego)
    with pytest.raises(EvalInputError, match="exo2ego: the eval split has no ego videos"):
        phase_classification(train.embeds, train.labels, train.is_ego, evl.embeds, evl.labels,
                             evl.is_ego)


def test_single_phase_training_split_is_na():
    train = make_split(["ego", "exo"], phases=1)
    evl = make_split(["ego", "exo"], seed=1, name="e")
    m = evaluate_embeddings(train, evl, tasks="1", progress=False)
    assert m["classification_f1"] == {"regular": None, "ego2exo": None, "exo2ego": None}
    assert len(m["notes"]) == 3 and all("single phase (0)" in n for n in m["notes"])
    with pytest.raises(EvalInputError, match="an SVM needs at least two"):
        phase_classification(train.embeds, train.labels, train.is_ego, evl.embeds, evl.labels,
                             evl.is_ego, settings=("regular",))
    # only the ego training frames are single-phase: Ego2Exo alone is n/a
    train = make_split(["ego", "exo"])
    train.labels[:24] = 2
    m = evaluate_embeddings(train, evl, tasks="classification", progress=False)
    assert m["classification_f1"]["ego2exo"] is None
    assert m["classification_f1"]["regular"] is not None


def test_kendall_without_any_defined_pair_is_na():
    evl = make_split(["ego"], seed=1, name="e")  # one video: no pair
    m = evaluate_embeddings(make_split(["ego", "exo"]), evl, tasks="4", progress=False)
    assert m["kendalls_tau"] is None and "kendalls_tau: n/a" in m["notes"][0]


# -- errors ---------------------------------------------------------------------------------

def test_fewer_candidates_than_k():
    evl = make_split(["ego", "exo"], n=12)  # 12 candidates per query in every setting
    with pytest.raises(EvalInputError, match=r"regular: mAP@15 needs 15 candidates.*only 12"):
        frame_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego, ks=(5, 15))
    got = frame_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego, ks=(12,))
    assert set(got[12]) == {"regular", "ego2exo", "exo2ego"}
    # through evaluate_embeddings: @15 is n/a with a note, @5 and @10 are computed
    m = evaluate_embeddings(make_split(["ego", "exo"]), evl, tasks="2", progress=False)
    assert m["retrieval_map"]["15"] == {"regular": None, "ego2exo": None, "exo2ego": None}
    assert all(v is not None for k in ("5", "10") for v in m["retrieval_map"][k].values())
    assert m["retrieval_map10"] == m["retrieval_map"]["10"]
    assert len(m["notes"]) == 3 and all(n.startswith("retrieval_map.15.") and "only 12" in n
                                        for n in m["notes"])


def test_a_single_eval_video_leaves_retrieval_na_and_the_rest_computed():
    train = make_split(["ego", "exo"])
    evl = make_split(["ego"], seed=1, name="e")
    m = evaluate_embeddings(train, evl, progress=False)
    assert all(v is None for by_s in m["retrieval_map"].values() for v in by_s.values())
    assert any(n.startswith("retrieval_map.10.regular: n/a") and "only 0" in n
               for n in m["notes"])
    assert m["classification_f1"]["regular"] is not None
    assert m["progression_r2"] is not None
    assert m["kendalls_tau"] is None  # one video, no pair


def test_progression_phase_missing_from_the_eval_split_is_na():
    train = make_split(["ego", "exo", "ego"])
    evl = make_split(["ego", "exo"], seed=1, name="e")
    evl.labels[evl.labels == 1] = 0  # no eval video contains phase 1 (released: R^2 of nothing)
    m = evaluate_embeddings(train, evl, progress=False)
    assert m["progression_r2"] is None and m["progression_r2_with_time_feature"] is None
    assert [n for n in m["notes"] if n.startswith("progression_r2")] == [
        "progression_r2: n/a, phase(s) [1] of the train split's 0..2 occur in no eval video, "
        "so their R^2 cannot be scored"]
    # every other task still ran
    assert None not in m["classification_f1"].values()
    assert None not in m["retrieval_map10"].values() and m["kendalls_tau"] is not None
    evl.labels[evl.labels == 2] = 0  # the highest phase too (released: an IndexError)
    m = evaluate_embeddings(train, evl, tasks="3", progress=False)
    assert m["progression_r2"] is None and "phase(s) [1, 2]" in m["notes"][0]
    with pytest.raises(EvalInputError, match=r"progression: phase\(s\) \[1, 2\]"):
        phase_progression(train.embeds, train.labels, train.videos, evl.embeds, evl.labels,
                          evl.videos, False)


def test_progression_phase_missing_from_the_train_split_is_na():
    train = make_split(["ego", "exo"])
    train.labels[train.labels == 1] = 0  # phase 1 in no train video: nothing to fit
    m = evaluate_embeddings(train, make_split(["ego", "exo"], seed=1, name="e"), tasks="3",
                            progress=False)
    assert m["progression_r2"] is None
    assert m["notes"] == ["progression_r2: n/a, phase(s) [1] of 0..2 occur in no train video, "
                          "so their regressions cannot be fit"]


def test_progression_eval_phase_above_the_train_phases_is_left_out_as_released():
    import sys
    from conftest import ROOT
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import released_eval

    train = make_split(["ego", "exo"])
    evl = make_split(["ego", "exo"], phases=4, seed=1, name="e")
    m = evaluate_embeddings(train, evl, tasks="3", progress=False)
    for key, tf in (("progression_r2", False), ("progression_r2_with_time_feature", True)):
        want = released_eval.progression(train.embeds, train.labels, train.lengths, evl.embeds,
                                         evl.labels, evl.lengths, tf)
        assert m[key] == pytest.approx(want, abs=1e-6)
    assert m["notes"] == ["progression_r2: eval phase(s) [3] are above the train split's "
                          "phases and are not scored (as released)"]


def test_all_background_training_labels():
    train = make_split(["ego", "exo"])
    train.labels[:] = -1
    m = evaluate_embeddings(train, make_split(["ego", "exo"], seed=1, name="e"), tasks="13",
                            progress=False)
    assert m["classification_f1"] == {"regular": None, "ego2exo": None, "exo2ego": None}
    assert m["progression_r2"] is None
    assert "single phase (-1)" in m["notes"][0]
    assert m["notes"][-1] == ("progression_r2: n/a, the train split has no phase labels (every "
                              "frame is background, -1)")


def test_a_failing_task_loses_no_other_task(monkeypatch):
    import byov.eval.kendall

    def broken(*args, **kwargs):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(byov.eval.kendall, "kendalls_tau", broken)
    train = make_split(["ego", "exo"])
    with pytest.warns(RuntimeWarning, match="evaluation task kendall failed"):
        m = evaluate_embeddings(train, make_split(["ego", "exo"], seed=1, name="e"),
                                progress=False)
    assert m["kendalls_tau"] is None and set(m["kendalls_tau_by_view"].values()) == {None}
    assert m["notes"] == ["kendall: n/a, failed with RuntimeError: out of cheese"]
    assert None not in m["classification_f1"].values()
    assert None not in m["retrieval_map10"].values()
    assert m["progression_r2"] is not None
    json.dumps(m, allow_nan=False)  # still a valid metrics.json


def test_parse_tasks():
    assert parse_tasks("1234") == ["classification", "retrieval", "progression", "kendall"]
    assert parse_tasks("31") == ["classification", "progression"]
    assert parse_tasks("kendall, classification") == ["classification", "kendall"]
    assert parse_tasks(["retrieval"]) == ["retrieval"]
    for bad in ("15", "svm", "", ","):
        with pytest.raises(ValueError):
            parse_tasks(bad)


# -- files ----------------------------------------------------------------------------------

def test_save_load_round_trip_and_missing_metadata(tmp_path):
    s = make_split(["ego", "exo", "exo"], name="test")
    save_split(str(tmp_path), "test", s)
    assert sorted(os.listdir(tmp_path)) == ["test_embeds.npy", "test_label.npy",
                                            "test_videos.json"]
    back = load_split(str(tmp_path), "test")
    np.testing.assert_array_equal(back.embeds, s.embeds)
    np.testing.assert_array_equal(back.labels, s.labels)
    assert back.videos == s.videos and back.split == "test"
    np.testing.assert_array_equal(back.frame_idx[22:26], [22, 23, 0, 1])
    os.remove(tmp_path / "test_videos.json")
    with pytest.raises(EvalInputError, match="--dataset_root/--dataset"):
        load_split(str(tmp_path), "test")
    back = load_split(str(tmp_path), "test", videos=s.videos)  # metadata given explicitly
    assert back.videos == s.videos
    with pytest.raises(FileNotFoundError, match="val_embeds.npy"):
        load_split(str(tmp_path), "val")


def test_write_metrics(tmp_path):
    m = evaluate_embeddings(make_split(["ego", "exo"]), make_split(["ego", "exo"], seed=1),
                            tasks="34", progress=False)
    json_path, md_path = write_metrics(str(tmp_path), m, {"dataset": "pour_liquid"})
    with open(json_path) as f:
        assert json.load(f) == {"meta": {"dataset": "pour_liquid"}, "metrics": m}
    md = open(md_path).read()
    assert md.startswith("# AE2 evaluation: pour_liquid") and "Kendall's tau" in md
    # without a recorded headline, pour_liquid leads with the time-feature variant (docs/design.md#evaluation-protocol)
    del m["progression_headline"]
    assert "R^2 (with the time feature)" in format_table(m, "pour_liquid")
    assert "R^2 (plain)" in format_table(m, "break_eggs")
