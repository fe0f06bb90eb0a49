"""The video-level (Charades-Ego) protocol: pooling, per-class AP and mAP, the probe, the
settings."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from byov.eval.video_level import (VideoLevelError, VideoSet, class_average_precision,
                                   evaluate_setting, evaluate_video_level, fit_probe, format_table,
                                   mean_average_precision, mean_pool)


def _thumos_ap(conf, labels):
    """Charades_v1_classify.m's per-class AP: precision summed at each positive / #positives."""
    order = np.argsort(-conf, kind="stable")
    tp = labels[order] == 1
    prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    return prec[tp].sum() / tp.sum()


def test_ap_hand_made_cases():
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    np.testing.assert_allclose(class_average_precision(scores, np.array([[1], [0], [1], [0]])),
                               [(1 + 2 / 3) / 2])
    np.testing.assert_allclose(class_average_precision(scores, np.array([[0], [0], [0], [1]])),
                               [0.25])
    np.testing.assert_allclose(class_average_precision(scores, np.array([[1], [1], [0], [0]])),
                               [1.0])


def test_map_matches_sklearn_and_the_official_sum_and_excludes_empty_classes():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(40, 6))
    targets = (rng.random((40, 6)) < 0.3).astype(int)
    targets[:, 4] = 0  # a class without positive test videos
    targets[0, :4] = 1
    value, ap = mean_average_precision(scores, targets)
    scored = [k for k in range(6) if targets[:, k].any()]
    assert np.isnan(ap[4]) and len(scored) == 5
    for k in scored:
        assert ap[k] == pytest.approx(average_precision_score(targets[:, k], scores[:, k]))
        assert ap[k] == pytest.approx(_thumos_ap(scores[:, k], targets[:, k]))
    assert value == pytest.approx(100 * average_precision_score(
        targets[:, scored], scores[:, scored], average="macro"))
    # sklearn's macro average over all columns would count the empty class as 0: not ours
    with pytest.warns(UserWarning):
        all_cols = 100 * average_precision_score(targets, scores, average="macro")
    assert all_cols < value
    assert mean_average_precision(scores[:, 4:5], targets[:, 4:5])[0] is None


def test_mean_pool():
    x = np.array([[1.0, 2.0], [3.0, 6.0]], np.float32)
    np.testing.assert_allclose(mean_pool(x), [2.0, 4.0])
    with pytest.raises(VideoLevelError):
        mean_pool(np.zeros((0, 3)))


def _set(embeds, targets, views):
    return VideoSet(np.asarray(embeds, np.float32), np.asarray(targets, np.float32), list(views),
                    [f"v{i}{'EGO' if v == 'ego' else ''}" for i, v in enumerate(views)])


def _views_data(rng, n, sign_exo):
    """n ego + n exo videos, 3 classes; features = class indicators (+ noise), times -1 for exo
    when sign_exo is -1 (the views disagree)."""
    y = (rng.random((2 * n, 3)) < 0.4).astype(np.float32)
    y[np.arange(2 * n), rng.integers(0, 3, 2 * n)] = 1
    x = y + 0.05 * rng.normal(size=y.shape)
    views = ["ego"] * n + ["exo"] * n
    x[n:] *= sign_exo
    return _set(x, y, views)


def test_probe_learns_and_takes_its_hyper_parameters():
    rng = np.random.default_rng(1)
    train, test = _views_data(rng, 30, 1), _views_data(rng, 10, 1)
    res = evaluate_setting(train, test, "logistic", c=1.0, max_iter=200)
    assert res["map"] == pytest.approx(100.0)
    model = fit_probe(train.embeds, train.targets, c=0.01, max_iter=7)
    lr = model[-1].estimator
    assert (lr.C, lr.max_iter) == (0.01, 7)
    with pytest.raises(VideoLevelError):
        fit_probe(train.embeds, train.targets, c=0.0)


def test_settings_train_and_test_on_the_right_views():
    rng = np.random.default_rng(2)
    train, test = _views_data(rng, 30, -1), _views_data(rng, 10, -1)
    out = evaluate_video_level(train, test, ["c000", "c001", "c002"], c=1.0, max_iter=500)
    vm = out["video_map"]
    # within a view the features are perfect; across views they are inverted
    assert vm["ego2exo"] < 60 and vm["exo2ego"] < 60
    for setting, (tr, te) in {"ego2exo": ("ego", "exo"), "exo2ego": ("exo", "ego")}.items():
        manual = evaluate_setting(train.select([tr]), test.select([te]), c=1.0, max_iter=500)
        assert vm[setting] == pytest.approx(manual["map"])
    assert out["num_videos"] == {"regular": [60, 20], "ego2exo": [30, 10], "exo2ego": [30, 10]}
    same = evaluate_video_level(train, _views_data(np.random.default_rng(3), 10, 1),
                                ["c000", "c001", "c002"], c=1.0, max_iter=500)
    assert same["video_map"]["ego2exo"] > 99  # exo test features now look like ego ones
    assert out["val_score"] == pytest.approx(np.mean(list(vm.values())))
    top = out["top_predictions"]
    assert set(top) == set(test.names) and all(len(v) == 3 for v in top.values())


def test_prior_baseline_is_test_prevalence_and_empty_classes_are_listed():
    rng = np.random.default_rng(4)
    train, test = _views_data(rng, 20, 1), _views_data(rng, 8, 1)
    test.targets[:, 2] = 0
    out = evaluate_video_level(train, test, ["c000", "c001", "c002"], probe="prior")
    for setting in ("regular", "ego2exo", "exo2ego"):
        te = test.select(["ego", "exo"] if setting == "regular" else
                         ["exo" if setting == "ego2exo" else "ego"])
        prevalence = te.targets.mean(0)
        ap = out["per_class_ap"][setting]
        assert ap["c002"] is None
        assert ap["c000"] == pytest.approx(100 * prevalence[0])
        assert out["classes_without_test_positives"][setting] == ["c002"]
        assert out["classes_scored"][setting] == 2
        assert out["video_map"][setting] == pytest.approx(100 * prevalence[:2].mean())


def test_bad_inputs_are_named():
    good = _set(np.zeros((2, 3)), np.zeros((2, 2)), ["ego", "exo"])
    with pytest.raises(VideoLevelError, match="views"):
        _set(np.zeros((2, 3)), np.zeros((2, 2)), ["ego", "side"]).validate()
    with pytest.raises(VideoLevelError, match="class ids"):
        evaluate_video_level(good, good, ["c000"])
    with pytest.raises(VideoLevelError, match="multi-hot"):
        _set(np.zeros((2, 3)), np.full((2, 2), 0.5), ["ego", "exo"]).validate()


def test_table_prints_published_numbers_beside_ours():
    text = format_table({"ours": {"video_map": {"regular": 12.345, "ego2exo": None,
                                                "exo2ego": 3.0}}})
    assert "| ours | 12.3 | n/a | 3.0 |" in text
    assert "| published: CLIP ViT-B/16 (frozen) | 13.7 | 8.3 | 10.7 |" in text
    assert "| published: BYOV ViT-B/16 | 31.8 | 26.5 | 27.3 |" in text
