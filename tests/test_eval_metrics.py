"""The four metrics on cases with known answers, and against plain / released-style references."""
import os
import random
import sys
import warnings

import numpy as np
import pytest
from conftest import ROOT
from scipy.stats import kendalltau
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from byov.eval import SplitData, evaluate_embeddings
import byov.eval.svm_predict as svm_predict_module
from byov.eval.classification import phase_classification, setting_masks
from byov.eval.fewshot import episode_plan, few_shot_classification, select_videos
from byov.eval.ovo_svm import (OneVsOneSVM, fit_pair, make_svm, pair_problems,
                               scale_gamma)
from byov.eval.kendall import kendalls_tau, tau_b_against_order
from byov.eval.progression import phase_progression, progression_targets
from byov.eval.retrieval import frame_retrieval
from byov.eval.svm_predict import svm_predict

sys.path.insert(0, os.path.join(ROOT, "bench"))
import released_eval  # noqa: E402  (the released-style loops, used here as a reference)


def random_split(rng, n_videos, dim=6, lo=20, hi=40, phases=3, name="s", walk=0.3):
    """Random-walk videos with ordered phases, alternating ego/exo."""
    xs, ys, videos = [], [], []
    protos = rng.normal(size=(phases, dim))
    for v in range(n_videos):
        n = int(rng.integers(lo, hi))
        labels = np.sort(rng.integers(0, phases, n))
        labels[:phases] = np.arange(phases)  # every phase present
        labels.sort()
        xs.append(protos[labels] + np.cumsum(rng.normal(scale=walk, size=(n, dim)), axis=0))
        ys.append(labels)
        videos.append({"name": f"{name}{v}", "view": ("ego", "exo")[v % 2], "num_frames": n})
    return SplitData(np.concatenate(xs).astype(np.float32), np.concatenate(ys), videos, name)


# -- retrieval ------------------------------------------------------------------------------------

def naive_retrieval(x, y, vid, ego, ks):
    """Per-query reference: exact float64 distances, stable sort (ties -> lower index)."""
    x = x.astype(np.float64)
    aps = {k: {"regular": [], "ego2exo": [], "exo2ego": []} for k in ks}
    for i in range(len(x)):
        order = np.argsort(((x - x[i]) ** 2).sum(axis=1), kind="stable")
        regular = [j for j in order if vid[j] != vid[i]]
        cross = [j for j in regular if ego[j] != ego[i]]
        for k in ks:
            for setting, cand in (("regular", regular),
                                  ("ego2exo" if ego[i] else "exo2ego", cross)):
                rel = (y[cand[:k]] == y[i]).astype(float)
                prec = np.cumsum(rel) / np.arange(1, k + 1)
                aps[k][setting].append((prec * rel).sum() / rel.sum() if rel.sum() else 0.0)
    return {k: {s: float(np.mean(v)) for s, v in d.items()} for k, d in aps.items()}


@pytest.mark.parametrize("block_size", [1, 7, 64, 100_000])
def test_blocked_retrieval_equals_naive_reference(block_size):
    evl = random_split(np.random.default_rng(0), 8, lo=15, hi=30)
    want = naive_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego, (5, 10, 15))
    got = frame_retrieval(evl.embeds, evl.labels, evl.video_ids, evl.is_ego,
                          ks=(5, 10, 15), block_size=block_size)
    for k in (5, 10, 15):
        for s in ("regular", "ego2exo", "exo2ego"):
            assert got[k][s] == pytest.approx(want[k][s], abs=1e-12), (k, s)


def test_retrieval_ties_equal_the_released_ranking():
    # integer embeddings: many exactly equal distances, including duplicated rows, with mixed
    # labels; scikit-learn orders equal distances neither by index nor stably, and the released
    # code takes its order
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(120, 2)).astype(np.float32)
    y = rng.integers(0, 3, size=120)
    lengths = np.array([20, 30, 25, 45])
    video_ego = np.array([True, False, True, False])
    vid, ego = np.repeat(np.arange(4), lengths), np.repeat(video_ego, lengths)
    info = {}
    with threadpool_limits(limits=1, user_api="openmp"):
        got = frame_retrieval(x, y, vid, ego, ks=(10,), block_size=16, info=info)[10]
        want = released_eval.retrieval(x, y, lengths, video_ego)
    assert [got[s] for s in ("regular", "ego2exo", "exo2ego")] == \
        pytest.approx([float(v) for v in want], abs=1e-12)
    assert info["released_ranking_queries"] > 0


def test_retrieval_on_a_hand_made_set():
    # rows: x, label, video, view -- the expected APs are worked out in the comments
    x = np.array([[0.], [10.], [1.], [11.], [2.], [12.]])
    y = np.array([0, 1, 1, 1, 0, 1])
    vid = np.array([0, 0, 1, 1, 2, 2])
    ego = np.array([True, True, False, False, False, False])
    got = frame_retrieval(x, y, vid, ego, ks=(1, 2))
    # regular @2: row0 [r2 x, r4 v] 0.5 | row1 [r3 v, r5 v] 1 | row2 [r0 x, r4 x] (tie at
    # distance 1 -> lower index first) 0 | row3 [r1 v, r5 v] 1 | row4 [r2 x, r0 v] 0.5 | row5 1
    assert got[2]["regular"] == pytest.approx(4 / 6)
    assert got[1]["regular"] == pytest.approx(3 / 6)
    # ego2exo @2: row0 [r2 x, r4 v] 0.5, row1 [r3 v, r5 v] 1
    assert got[2]["ego2exo"] == pytest.approx(0.75)
    assert got[1]["ego2exo"] == pytest.approx(0.5)
    # exo2ego @2: row2 [r0 x, r1 v] 0.5, rows 3, 4, 5 first hit relevant -> 1
    assert got[2]["exo2ego"] == pytest.approx(3.5 / 4)
    assert got[1]["exo2ego"] == pytest.approx(0.75)


# -- Kendall's tau ------------------------------------------------------------------------------

def test_tau_b_matches_scipy_with_ties_and_degenerate_columns():
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 7, 30):
        nn = rng.integers(0, 5, size=(n, 40))
        nn[:, 0] = 3  # constant -> NaN
        got = tau_b_against_order(nn)
        for m in range(nn.shape[1]):
            with warnings.catch_warnings():  # scipy warns on n = 1
                warnings.simplefilter("ignore")
                want = kendalltau(np.arange(n), nn[:, m]).statistic
            if np.isnan(want):
                assert np.isnan(got[m])
            else:
                assert got[m] == want  # same integer counts, same float formula


def test_tau_is_one_for_identical_videos_and_minus_one_for_reversed():
    rng = np.random.default_rng(3)
    n = 5 * 9 + 1  # so stride-5 sub-sampling of the reversed video is the reversed sub-sample
    base = np.cumsum(rng.normal(size=(n, 4)), axis=0) + np.linspace(0, 50, n)[:, None]
    x = np.concatenate([base, base, base[::-1]])
    videos = [{"name": n_, "view": v, "num_frames": n}
              for n_, v in (("a", "ego"), ("copy", "exo"), ("rev", "exo"))]
    mean, by_view = kendalls_tau(x, videos)
    # pairs: a<->copy = +1 (twice), every pair with the reversed video = -1 (four times)
    assert mean == pytest.approx((2 - 4) / 6)
    assert by_view["ego-exo"] == pytest.approx(0.0)  # a->copy +1, a->rev -1
    assert by_view["exo-exo"] == pytest.approx(-1.0)  # copy<->rev
    assert by_view["ego-ego"] is None  # a single ego video has no ego-ego pair
    two, _ = kendalls_tau(x[:2 * n], videos[:2])
    assert two == pytest.approx(1.0, abs=1e-15)


def test_kendall_drops_nan_pairs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 3))
    videos = [{"name": "a", "view": "ego", "num_frames": 30},
              {"name": "tiny", "view": "exo", "num_frames": 4},  # one sub-sampled frame
              {"name": "b", "view": "exo", "num_frames": 30}]
    mean, _ = kendalls_tau(x, videos)
    a_b = [kendalltau(np.arange(6), np.argmin(((q[:, None] - c[None]) ** 2).sum(-1), axis=1))
           .statistic for q, c in ((x[0:30:5], x[34:64:5]), (x[34:64:5], x[0:30:5]))]
    assert not np.isnan(a_b).any()  # the four pairs with "tiny" are NaN and dropped
    assert mean == pytest.approx(np.mean(a_b), abs=1e-12)


# -- classification / progression / few-shot --------------------------------------------------

def test_f1_is_one_on_separable_data():
    rng = np.random.default_rng(5)
    def split(n):
        y = rng.integers(0, 3, n)
        return rng.normal(scale=0.05, size=(n, 4)) + 5 * np.eye(4)[y], y, np.arange(n) % 2 == 0
    tr, ev = split(300), split(200)
    f1 = phase_classification(*tr, *ev)
    assert f1 == {"regular": 1.0, "ego2exo": 1.0, "exo2ego": 1.0}


def test_concurrent_classification_equals_sequential():
    rng = np.random.default_rng(6)
    train = random_split(rng, 10, lo=100, hi=140, walk=0.5)
    evl = random_split(rng, 20, lo=100, hi=140, walk=0.5, name="e")
    assert len(evl.embeds) > 2 * 1024  # several prediction chunks
    args = (train.embeds, train.labels, train.is_ego, evl.embeds, evl.labels, evl.is_ego)
    assert phase_classification(*args, n_jobs=1) == phase_classification(*args, n_jobs=3)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_blas_svm_predict_equals_libsvm(n_classes, monkeypatch):
    rng = np.random.default_rng(10)
    train = random_split(rng, 8, phases=n_classes, walk=0.6)
    evl = random_split(rng, 8, phases=n_classes, walk=0.6, name="e")
    model = make_svm().fit(train.embeds, train.labels)
    want = model.predict(evl.embeds)
    assert len(np.unique(want)) == n_classes  # a non-trivial classifier
    np.testing.assert_array_equal(svm_predict(model, evl.embeds, chunk=50), want)
    # with an absurd error bound every row goes back to libsvm: the fallback path agrees too
    monkeypatch.setattr(svm_predict_module, "_EPS", 1.0)
    np.testing.assert_array_equal(svm_predict(model, evl.embeds), want)


@pytest.mark.parametrize("n_classes,background", [(2, False), (3, True), (5, False)])
def test_one_vs_one_fit_equals_the_multiclass_svc(n_classes, background, monkeypatch):
    """Pairs fit one by one (ovo_svm) are libsvm's multi-class model, bit for bit: the same
    support vectors, decision values and predictions as SVC(decision_function_shape='ovo')."""
    rng = np.random.default_rng(11 + n_classes)
    train = random_split(rng, 8, phases=n_classes, walk=0.6)
    evl = random_split(rng, 8, phases=n_classes, walk=0.6, name="e")
    y = train.labels.copy()
    if background:  # a background class (-1) is a class like any other, as released
        y[::7] = -1
    # rows shuffled, the highest class first: libsvm's class order is the sorted one, not the
    # order of first appearance
    order = rng.permutation(len(y))
    order = np.concatenate([order[y[order] == y.max()][:1], order[y[order] != y.max()],
                            order[y[order] == y.max()][1:]])
    y, x32 = y[order], train.embeds[order]
    assert y[0] == y.max()
    x = x32.astype(np.float64)
    ref = make_svm().fit(x32, y)
    classes, y_index = np.unique(y, return_inverse=True)
    problems = pair_problems(y_index, len(classes))
    gamma = scale_gamma(x32)
    assert gamma == ref._gamma
    models = [fit_pair(x, y_index, p, gamma, cache_size=1.0) for p in problems]  # tiny cache
    model = OneVsOneSVM(classes, problems, models, x, gamma)
    np.testing.assert_array_equal(model.support_vectors_, ref.support_vectors_[
        np.argsort(ref.support_)])  # the same support vectors (ours in row order)
    z = evl.embeds.astype(np.float64)
    # each pair's decision values are the multi-class model's for that pair, exactly
    ref_dec = ref.decision_function(evl.embeds)  # libsvm's values; -dec for two classes
    ref_dec = -ref_dec[:, None] if ref_dec.ndim == 1 else ref_dec
    for p, m in enumerate(models):
        np.testing.assert_array_equal(-m.decision_function(z), ref_dec[:, p])
    want = ref.predict(evl.embeds)
    assert len(np.unique(want)) == n_classes + background  # a non-trivial classifier
    np.testing.assert_array_equal(model.predict(evl.embeds, chunk=50), want)
    monkeypatch.setattr(svm_predict_module, "_EPS", 1.0)  # every row by the exact path
    np.testing.assert_array_equal(model.predict(evl.embeds), want)


def test_classification_equals_the_released_svc_on_each_setting():
    rng = np.random.default_rng(12)
    train = random_split(rng, 10, phases=4, walk=0.6)
    evl = random_split(rng, 10, phases=4, walk=0.6, name="e")
    got = phase_classification(train.embeds, train.labels, train.is_ego, evl.embeds,
                               evl.labels, evl.is_ego, n_jobs=2)
    for s, (tr, ev) in setting_masks(train.is_ego, evl.is_ego).items():
        pred = make_svm().fit(train.embeds[tr], train.labels[tr]).predict(evl.embeds[ev])
        assert got[s] == f1_score(evl.labels[ev], pred, average="weighted")


def test_progression_targets_by_hand():
    y = progression_targets(np.array([0, 0, 1, 1, 1, 2, 2]), np.array([5, 2]), 3)
    np.testing.assert_allclose(y[:5, 0], [-0.2, 0, 0.2, 0.4, 0.6])  # last 0 at t=1, L=5
    np.testing.assert_allclose(y[:5, 1], [-0.8, -0.6, -0.4, -0.2, 0])
    assert (y[:5, 2] == -1).all()  # phase 2 absent from video 0
    np.testing.assert_allclose(y[5:, 2], [-0.5, 0])
    assert (y[5:, :2] == -1).all()


def test_progression_is_perfect_when_targets_are_linear_in_the_features():
    def split(rng, n_videos):
        xs, ys, videos = [], [], []
        for v in range(n_videos):
            n = int(rng.integers(20, 40))
            labels = np.repeat([0, 1, 2], [n // 3, n // 3, n - 2 * (n // 3)])
            last = np.array([np.flatnonzero(labels == c)[-1] for c in range(3)])
            t = np.arange(n)
            xs.append(np.column_stack([t / n, np.tile(last / n, (n, 1)), rng.normal(size=n)]))
            ys.append(labels)
            videos.append({"name": f"v{v}", "view": "ego", "num_frames": n})
        return np.concatenate(xs), np.concatenate(ys), videos
    rng = np.random.default_rng(7)
    tx, ty, tv = split(rng, 6)
    ex, ey, ev = split(rng, 4)
    for tf in (False, True):
        assert phase_progression(tx, ty, tv, ex, ey, ev, tf) == pytest.approx(1.0, abs=1e-9)


def test_task_values_match_the_released_style_loops():
    rng = np.random.default_rng(8)
    train = random_split(rng, 8)
    evl = random_split(rng, 6, name="e")
    m = evaluate_embeddings(train, evl, progress=False)
    with threadpool_limits(limits=1, user_api="openmp"):  # no idle OpenMP spinning, busy box
        ref_map = released_eval.retrieval(evl.embeds, evl.labels, evl.lengths, evl.video_is_ego)
    ref_f1 = released_eval.classification(train.embeds, train.labels, train.is_ego,
                                          evl.embeds, evl.labels, evl.is_ego)
    assert [m["classification_f1"][s] for s in ("regular", "ego2exo", "exo2ego")] == \
        pytest.approx(list(ref_f1), abs=1e-12)
    assert [m["retrieval_map10"][s] for s in ("regular", "ego2exo", "exo2ego")] == \
        pytest.approx([float(v) for v in ref_map], abs=1e-12)
    for key, tf in (("progression_r2", False), ("progression_r2_with_time_feature", True)):
        ref = released_eval.progression(train.embeds, train.labels, train.lengths,
                                        evl.embeds, evl.labels, evl.lengths, tf)
        assert m[key] == pytest.approx(ref, abs=1e-6 if not tf else 1e-9)
    assert m["kendalls_tau"] == pytest.approx(released_eval.kendall(evl.embeds, evl.lengths),
                                              abs=1e-12)


def test_few_shot_protocol():
    assert [k for k, _ in episode_plan(12)] == [1, 2, 3, 5, 10, 6, 12]
    assert [e for _, e in episode_plan(12)] == [50, 50, 50, 50, 50, 10, 1]
    random.seed(45)
    assert select_videos(12, 5, 45) == random.sample(range(12), 5)  # the released draw
    rng = np.random.default_rng(9)
    train = random_split(rng, 12, lo=12, hi=16, dim=3)
    evl = random_split(rng, 4, lo=12, hi=16, dim=3, name="e")
    entries, notes = few_shot_classification(train.embeds, train.labels, train.lengths,
                                             evl.embeds, evl.labels)
    assert [e["k"] for e in entries] == [1, 2, 3, 5, 10, 6, 12] and notes == []
    full = entries[-1]
    regular = phase_classification(train.embeds, train.labels, train.is_ego, evl.embeds,
                                   evl.labels, evl.is_ego, settings=("regular",))
    assert full["episodes"] == 1 and full["f1_std"] == 0.0
    assert full["f1_mean"] == pytest.approx(regular["regular"], abs=1e-12)
    assert full["propagation_acc_mean"] == 0.0
    assert all(0 <= e["f1_mean"] <= 1 and e["f1_std"] >= 0 for e in entries)


def test_progression_headline_time_feature_rule():
    from byov.eval.progression import headline_uses_time_feature
    assert headline_uses_time_feature("pour_liquid") is True  # the released quirk
    assert headline_uses_time_feature("break_eggs") is False
    assert headline_uses_time_feature("break_eggs", "on") is True
    assert headline_uses_time_feature("pour_liquid", "off") is False
    with pytest.raises(ValueError, match="auto, on or off"):
        headline_uses_time_feature("pour_liquid", "yes")


def test_eval_labels_no_training_frame_has_are_noted_not_changed():
    """An exo eval video that is all background (-1) while no ego train frame is: the ego2exo
    F1 cannot credit it, and the metrics say so in a note (numbers unchanged)."""
    from byov.eval import SplitData, evaluate_embeddings
    from byov.eval.classification import unseen_label_notes

    rng = np.random.default_rng(0)
    train_videos = [{"name": n, "view": v, "num_frames": 6} for n, v in
                    (("e0", "ego"), ("e1", "ego"), ("x0", "exo"), ("x1", "exo"))]
    eval_videos = [{"name": "e2", "view": "ego", "num_frames": 6},
                   {"name": "x2", "view": "exo", "num_frames": 6}]
    phases = np.array([0, 0, 0, 1, 1, 1])
    train = SplitData(rng.normal(size=(24, 4)).astype(np.float32), np.tile(phases, 4),
                      train_videos, "train")
    evl = SplitData(rng.normal(size=(12, 4)).astype(np.float32),
                    np.concatenate([phases, np.full(6, -1)]), eval_videos, "test")
    notes = unseen_label_notes(train.labels, train.is_ego, evl.labels, evl.is_ego)
    assert len(notes) == 2 and notes[0].startswith("classification_f1.regular: 50.0% of the")
    assert notes[1].startswith("classification_f1.ego2exo: 100.0% of the eval frames carry "
                               "label(s) [-1]")
    metrics = evaluate_embeddings(train, evl, ["classification"])
    assert [n for n in metrics["notes"] if n.startswith("classification_f1.")] == notes
    assert metrics["classification_f1"]["ego2exo"] == 0.0  # the number itself is not changed
    # every eval label seen in training: no note
    assert unseen_label_notes(train.labels, train.is_ego, train.labels, train.is_ego) == []
