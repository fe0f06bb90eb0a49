"""byov.report: the per-run visual report, built on a tiny run (2 epochs, val metrics each
epoch)."""
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from train_helpers import train_args, train_in_process


@pytest.fixture(scope="module")
def tiny_run(synthetic_root, tiny_clip_dir, train_cache_dir, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("report") / "run")
    train_in_process(train_args(synthetic_root, tiny_clip_dir, run_dir, train_cache_dir,
                                epochs=2, ds_every_n_epoch=1))
    return run_dir


@pytest.fixture(scope="module")
def report(tiny_run):
    from byov.report import build_report
    return build_report(tiny_run, "best", "test", max_points=500)


def _eval_folder_metrics(run_dir, sub):
    with open(os.path.join(run_dir, "eval", sub, "metrics.json")) as f:
        return json.load(f)["metrics"]


def test_page_references_existing_images_only(report, tiny_run):
    out = os.path.join(tiny_run, "report")
    assert report.index == os.path.join(out, "index.html")
    with open(report.index, encoding="utf-8") as f:
        page = f.read()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    # every figure family is on the page
    names = sorted(srcs)
    assert names == sorted(os.path.relpath(p, out) for p in report.images)
    for prefix in ("curves_losses", "curves_val_metrics", "alignment_0", "gallery_ego2exo",
                   "gallery_exo2ego", "embedding_map", "progression", "confusion"):
        assert any(n.startswith(prefix) for n in names), prefix
    for src in srcs:  # relative, local, and a real PNG
        assert not os.path.isabs(src) and "://" not in src and ".." not in src
        with Image.open(os.path.join(out, src)) as im:
            im.verify()
        with Image.open(os.path.join(out, src)) as im:
            assert im.format == "PNG" and min(im.size) > 100
    assert "<script" not in page.lower() and "http" not in page.lower()
    # the metrics table: the model's row, the frozen-features row, the config
    model = _eval_folder_metrics(tiny_run, "best")
    assert f"{100 * model['classification_f1']['ego2exo']:.2f}" in page
    assert "BYOV (best.pth)" in page and "frozen backbone features" in page
    assert "embedding_size: 32" in page  # the resolved config is on the page
    assert report.inputs.model.folder == os.path.join(tiny_run, "eval", "best")
    assert {b.kind for b in report.inputs.baselines} >= {"frozen"}
    assert report.seconds["total"] > 0


def test_alignment_outlines_agree_with_the_labels(report):
    from byov.report.style import AGREE_COLOR, DISAGREE_COLOR
    evl = report.inputs.model.evl
    assert report.alignments
    for al in report.alignments:
        assert al.ego["view"] == "ego" and al.exo["view"] == "exo"
        v = [x["name"] for x in evl.videos]
        ego = evl.embeds[evl.offsets[v.index(al.ego["name"])]:][:al.ego["num_frames"]]
        exo_i = [i for i, x in enumerate(evl.videos) if x["view"] == "exo"
                 and x["name"] == al.exo["name"]][0]
        exo = evl.embeds[evl.offsets[exo_i]:evl.offsets[exo_i + 1]]
        d = np.linalg.norm(ego[:, None, :].astype(np.float64) - exo[None], axis=2)
        np.testing.assert_allclose(al.distances, d, atol=1e-6)
        np.testing.assert_array_equal(al.nearest, np.argmin(d, axis=1))
        for i, t in enumerate(al.strip):
            same = al.ego_labels[t] == al.exo_labels[al.nearest[t]]
            assert al.outline_colors[i] == (AGREE_COLOR if same else DISAGREE_COLOR)
        assert os.path.isfile(al.path)


def test_alignment_on_a_known_pair():
    from byov.eval.io import SplitData
    from byov.report.alignment import align
    from byov.report.style import AGREE_COLOR as G, DISAGREE_COLOR as R

    # ego frames at 0..4 on a line; exo frames at 0.1, 3.9, 1.6; nearest: 0, 2, 2, 1, 1
    ego = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    exo = np.array([[0.1], [3.9], [1.6]])
    split = SplitData(np.concatenate([ego, exo]), np.array([0, 0, 1, 1, 2, 0, 2, 1]),
                      [{"name": "a", "view": "ego", "num_frames": 5},
                       {"name": "b", "view": "exo", "num_frames": 3}]).validate()
    al = align(split, 0, 1, n_strip=5)
    np.testing.assert_array_equal(al.nearest, [0, 2, 2, 1, 1])
    np.testing.assert_array_equal(al.strip, [0, 1, 2, 3, 4])
    # ego phases 0 0 1 1 2 vs retrieved exo phases 0 1 1 2 2
    assert al.outline_colors == [G, R, G, R, G]
    assert al.agreement == pytest.approx(3 / 5)


def _brute_force_ap(split, queries_ego: bool, k: int):
    x, y, ego = split.embeds.astype(np.float64), np.asarray(split.labels), split.is_ego
    q = np.flatnonzero(ego == queries_ego)
    c = np.flatnonzero(ego != queries_ego)
    aps = []
    for i in q:
        order = c[np.argsort(np.linalg.norm(x[c] - x[i], axis=1), kind="stable")][:k]
        rel = y[order] == y[i]
        hits = [rel[:r + 1].mean() for r in range(k) if rel[r]]
        aps.append(np.sum(hits) / rel.sum() if rel.sum() else 0.0)
    return np.asarray(aps)


def test_gallery_picks_the_best_and_worst_queries_by_ap(report, tiny_run):
    from byov.report.style import AGREE_COLOR, DISAGREE_COLOR
    evl = report.inputs.model.evl
    metrics = _eval_folder_metrics(tiny_run, "best")
    assert [g.ranking.direction for g in report.galleries] == ["ego2exo", "exo2ego"]
    for g in report.galleries:
        r = g.ranking
        ap = _brute_force_ap(evl, r.direction == "ego2exo", r.k)
        np.testing.assert_allclose(r.ap, ap, atol=1e-12)
        # the per-query APs average to the evaluation's mAP@10 for this direction
        assert r.ap.mean() == pytest.approx(metrics["retrieval_map10"][r.direction], abs=1e-9)
        assert r.ap[g.best[0]] == ap.max() and r.ap[g.worst[0]] == ap.min()
        assert r.ap[g.best].min() >= r.ap[g.worst].max()
        for row, pos in enumerate(g.rows):
            rel = np.asarray(evl.labels)[r.top[pos, :g.shown]] == evl.labels[r.queries[pos]]
            assert g.outline_colors[row] == [AGREE_COLOR if x else DISAGREE_COLOR for x in rel]


def test_progression_and_confusions_reproduce_the_metrics(report, tiny_run):
    metrics = _eval_folder_metrics(tiny_run, "best")
    assert report.progression.mean_r2 == pytest.approx(metrics["progression_r2"], abs=1e-6)
    evl = report.inputs.model.evl
    assert [c.setting for c in report.confusions] == ["ego2exo", "exo2ego"]
    for c in report.confusions:
        assert c.f1 == pytest.approx(metrics["classification_f1"][c.setting], abs=1e-12)
        target_ego = c.setting == "exo2ego"
        assert c.matrix.sum() == int(np.sum(evl.is_ego == target_ego))
        truth = np.asarray(evl.labels)[evl.is_ego == target_ego]
        np.testing.assert_array_equal(c.matrix.sum(axis=1), np.bincount(truth, minlength=len(
            c.matrix)))


def test_curves_plot_whatever_keys_a_method_logs(tmp_path):
    from byov.report.curves import classify_keys, plot_losses, plot_val_metrics
    records = [{"step": s, "epoch": 0, "time": 1.0, "train/tcc": 2.0 - s, "train/lr": 1e-3,
                "train/pairs_per_s": 5.0} for s in range(1, 4)]
    records.append({"step": 3, "epoch": 0, "epoch_seconds": 1.5, "train/tcc": 1.2,
                    "val/tcc": 1.4, "val/retrieval_map10/ego2exo": 0.3,
                    "val/retrieval_map10/exo2ego": 0.4, "val/kendalls_tau": 0.5,
                    "val/ignored": None, "val/name": "text"})
    keys = classify_keys(records)
    assert keys.loss_terms == ["tcc"]
    assert keys.other == ["train/lr", "train/pairs_per_s", "epoch_seconds"]
    assert keys.metric_groups == {"retrieval_map10": ["val/retrieval_map10/ego2exo",
                                                      "val/retrieval_map10/exo2ego"],
                                  "kendalls_tau": ["val/kendalls_tau"]}
    for path in (plot_losses(records, keys, str(tmp_path / "a.png")),
                 plot_val_metrics(records, keys, str(tmp_path / "b.png"))):
        with Image.open(path) as im:
            assert im.size[0] > 100
    assert plot_val_metrics(records[:3], classify_keys(records[:3]), str(tmp_path / "c.png")) \
        is None


def test_real_log_keys(report):
    from byov.report.curves import classify_keys
    keys = classify_keys(report.inputs.log)
    assert "loss" in keys.loss_terms and "msm" in keys.loss_terms
    assert len(keys.metric_groups["classification_f1"]) == 3


def test_evaluations_are_reused_until_the_checkpoint_content_changes(report, tiny_run):
    """Reuse follows content, never modification times: a touched checkpoint is reused, one
    with other weights at the same path is embedded again."""
    import torch

    from byov.report.inputs import gather
    embeds = os.path.join(tiny_run, "eval", "best", "test_embeds.npy")
    before = os.stat(embeds).st_mtime_ns
    inp = gather(tiny_run, "best", "test")  # the module's report made both folders
    assert inp.notes[0].startswith("BYOV (best.pth): reused")
    assert inp.notes[1].startswith("frozen backbone features: reused")
    assert os.stat(embeds).st_mtime_ns == before
    ckpt = os.path.join(tiny_run, "checkpoints", "best.pth")
    st = os.stat(ckpt)
    os.utime(ckpt, ns=(st.st_atime_ns, before + 10**9))  # newer, same bytes: still reused
    assert gather(tiny_run, "best", "test", baselines=False).notes[0].startswith(
        "BYOV (best.pth): reused") and os.stat(embeds).st_mtime_ns == before
    state = torch.load(ckpt, weights_only=True)
    original = {k: v.clone() for k, v in state["encoder"].items()}
    try:
        for v in state["encoder"].values():
            if v.is_floating_point():
                v.mul_(0.5)
        torch.save(state, ckpt)
        inp = gather(tiny_run, "best", "test", baselines=False)
        assert inp.notes[0].startswith("BYOV (best.pth): embedded and evaluated now")
        assert not np.allclose(inp.model.evl.embeds, report.inputs.model.evl.embeds)
    finally:
        state["encoder"] = original
        torch.save(state, ckpt)
    inp = gather(tiny_run, "best", "test", baselines=False)  # the original weights again
    np.testing.assert_allclose(inp.model.evl.embeds, report.inputs.model.evl.embeds, atol=1e-6)


def test_command_line(tiny_run, capsys):
    from byov.cli.report import main
    out = os.path.join(tiny_run, "report_cli")
    assert main([tiny_run, "--ckpt", "last", "--out", out, "--no-baselines",
                 "--max_points", "100"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {os.path.join(out, 'index.html')}" in text and "report_seconds:" in text
    with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
        page = f.read()
    assert "BYOV (last.pth)" in page and "frozen backbone features" not in page
    assert os.path.isfile(os.path.join(tiny_run, "eval", "last", "test_embeds.npy"))
    shutil.rmtree(out)


def test_errors_name_the_path_and_the_fix(tmp_path, tiny_run):
    from byov.report import ReportError, build_report
    with pytest.raises(ReportError, match="config.yaml does not exist"):
        build_report(str(tmp_path))
    with pytest.raises(ReportError, match=r"nope\.pth does not exist .*best\.pth"):
        build_report(tiny_run, ckpt=os.path.join(tiny_run, "checkpoints", "nope.pth"))
