"""Charades-Ego end to end on a tiny generated folder: training from the feature cache with the
video-level val metric choosing best.pth, then evaluate.py --ckpt and the baselines."""
import json
import os

import numpy as np
import pytest

from train_helpers import load_ckpt, read_log, train_args, train_in_process


@pytest.fixture(scope="module")
def ce_root(tmp_path_factory):
    from byov.data.synthetic_charades import generate
    root = tmp_path_factory.mktemp("ce_run")
    generate(str(root), seed=1, scripts=(8, 4), size=32, frames=(8, 10), empty_every=0)
    return str(root)


def _args(ce_root, clip_dir, tmp_path, **kw):
    args = train_args(os.path.join(ce_root, "charades_ego"), clip_dir, str(tmp_path / "run"),
                      str(tmp_path / "fc"), dataset="charades_ego", **kw)
    return args


def test_train_pick_best_on_val_map_then_evaluate(ce_root, tiny_clip_dir, tmp_path, capsys):
    import evaluate
    args = _args(ce_root, tiny_clip_dir, tmp_path, epochs=2, ds_every_n_epoch=1,
                 features="tokens", feature_cache_dir=str(tmp_path / "feat"),
                 best_metric="video_map.exo2ego", probe_max_iter=200)
    train_in_process(args)
    run = str(tmp_path / "run")
    summaries = [r for r in read_log(run) if "val/loss" in r]
    assert [r["epoch"] for r in summaries] == [0, 1]
    vals = [r["val/video_map/exo2ego"] for r in summaries]
    for r in summaries:
        assert {"val/video_map/regular", "val/video_map/ego2exo", "val/val_score"} <= set(r)
    for e in (0, 1):
        with open(os.path.join(run, "eval", f"epoch_{e:04d}", "metrics.json")) as f:
            saved = json.load(f)["metrics"]
        assert saved["video_map"]["exo2ego"] == pytest.approx(vals[e])
        assert saved["classes_scored"]["regular"] >= 1
    best = load_ckpt(run, "best.pth")
    assert best["val_metrics"]["video_map"]["exo2ego"] == pytest.approx(max(vals))
    assert best["epoch"] == int(np.argmax(vals))
    assert os.listdir(str(tmp_path / "feat"))  # trained from the feature cache

    ckpt = os.path.join(run, "checkpoints", "best.pth")
    out = str(tmp_path / "m.json")
    metrics = evaluate.main(["--ckpt", ckpt, "--json", out, "--probe_c", "0.5",
                             "--probe_max_iter", "300"])
    text = capsys.readouterr().out
    assert "embedded into" in text and "| published: BYOV ViT-B/16 | 31.8 | 26.5 | 27.3 |" in text
    with open(out) as f:
        saved = json.load(f)
    assert saved["video_map"] == metrics["video_map"]
    assert saved["probe"] == {"kind": "one-vs-rest logistic regression on standardised "
                                      "features", "C": 0.5, "max_iter": 300}
    classes = [f"c{k:03d}" for k in range(8)]
    for setting in ("regular", "ego2exo", "exo2ego"):
        assert set(saved["per_class_ap"][setting]) == set(classes)
    with open(os.path.join(run, "eval", "best", "test_videos.json")) as f:
        test_ids = json.load(f)
    assert set(saved["top_predictions"]) == {v["name"] for v in test_ids}
    assert saved["num_videos"]["ego2exo"][1] == sum(v["view"] == "exo" for v in test_ids)
    again = evaluate.main(["--embeddings", os.path.join(run, "eval", "best"), "--dataset",
                           "charades_ego", "--probe_c", "0.5", "--probe_max_iter", "300"])
    assert again["video_map"] == metrics["video_map"]  # a saved folder scores the same
    evaluate.main(["--ckpt", ckpt])  # same checkpoint and data: the pooled embeddings are reused
    assert "reusing the embeddings" in capsys.readouterr().out

    # the visual report: per-class AP and a few test videos with their top predicted classes
    from byov.cli.report import main as report_main
    from byov.report.video_level import build_video_level_report
    res = build_video_level_report(run, n_videos=2, n_strip=3, baselines=False)
    with open(res.index, encoding="utf-8") as f:
        page = f.read()
    assert "Per-class average precision" in page and "top predicted classes" in page
    assert all(os.path.isfile(p) for p in res.images) and len(res.shown) == 2
    with open(os.path.join(run, "eval", "best", "metrics.json")) as f:
        model = json.load(f)["metrics"]
    c0 = model["per_class_ap"]["regular"]["c000"]
    assert (f"{c0:.1f}" if c0 is not None else "n/a") in page
    assert "published: BYOV ViT-B/16" in page
    assert report_main([run, "--no-baselines"]) == 0  # the CLI dispatches on the dataset


def test_baselines(ce_root, tiny_clip_dir, tmp_path, capsys):
    import evaluate
    from utils.config import argv_for
    # the training arguments, without the flags evaluate.py refuses (as scripts/run.sh forwards)
    common = argv_for("evaluate", _args(ce_root, tiny_clip_dir, tmp_path, probe_max_iter=200))
    prior = evaluate.main(common + ["--baseline", "prior"])
    targets = np.load(str(tmp_path / "run" / "eval" / "baseline_prior" / "test_targets.npy"))
    present = targets.any(0)
    assert prior["video_map"]["regular"] == pytest.approx(100 * targets.mean(0)[present].mean())
    frozen = evaluate.main(common + ["--baseline", "frozen"])
    emb = np.load(str(tmp_path / "run" / "eval" / "baseline_frozen" / "test_video_embeds.npy"))
    assert emb.shape == (len(targets), 32)  # the backbone's merged features, d = 32
    assert all(v is not None for v in frozen["video_map"].values())
    with pytest.raises(SystemExit):
        evaluate.main(common + ["--baseline", "time"])
    assert "mean-pools to the same vector" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the chance baseline is video-level only
        evaluate.main(["--dataset", "synthetic", "--dataset_root", str(tmp_path), "--baseline",
                       "prior"])
    assert "video-level chance baseline" in capsys.readouterr().err


def test_bad_data_fails_before_training(ce_root, tiny_clip_dir, tmp_path):
    import shutil

    from byov.data.layout import DataError
    root = tmp_path / "bad"
    shutil.copytree(ce_root, root)
    path = root / "charades_ego" / "CharadesEgo_v1_train.csv"
    text = path.read_text()
    path.write_text(text.replace(";c", ";x", 1))
    args = train_args(str(root / "charades_ego"), tiny_clip_dir, str(tmp_path / "run"),
                      str(tmp_path / "fc"), dataset="charades_ego")
    with pytest.raises(DataError, match="CharadesEgo_v1_train.csv, row .*not a class id"):
        train_in_process(args)
    assert not os.path.exists(tmp_path / "fc")
