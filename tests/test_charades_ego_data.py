"""Charades-Ego data: the release csv / class file / video layout, its checks, the val split."""
import os
import shutil

import numpy as np
import pytest

from byov.data.charades_ego import (CLASSES_FILE, TEST_CSV, TRAIN_CSV, VIDEO_DIR, Row, carve_val,
                                    load_charades_ego, parse_actions, read_classes, view_of)
from byov.data.layout import DataError


@pytest.fixture(scope="module")
def ce_root(tmp_path_factory):
    """dataset_root of a tiny generated Charades-Ego folder: 10 train + 4 test scripts."""
    from byov.data.synthetic_charades import generate
    root = tmp_path_factory.mktemp("ce")
    generate(str(root), seed=0, scripts=(10, 4), size=32, frames=(8, 10), empty_every=5)
    return str(root)


@pytest.fixture
def ce_copy(ce_root, tmp_path):
    shutil.copytree(ce_root, tmp_path / "r")
    return str(tmp_path / "r"), str(tmp_path / "r" / "charades_ego")


def _edit_csv(path, old, new):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert old in text
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))


def test_views_pairs_targets_and_splits(ce_root):
    import csv
    data = load_charades_ego(ce_root, ("train", "val", "test"))
    base = os.path.join(ce_root, "charades_ego")
    with open(os.path.join(base, TRAIN_CSV), encoding="utf-8") as f:
        train_rows = {r["id"]: r for r in csv.DictReader(f)}
    ids = {s: [v.name for v in data.videos[s]] for s in data.videos}
    assert sorted(ids["train"] + ids["val"]) == sorted(train_rows)
    assert not set(ids["train"]) & set(ids["val"]) and ids["val"]
    for split in ("train", "val"):  # a video and its partner sit on the same side
        for vid in ids[split]:
            partner = vid[:-3] if vid.endswith("EGO") else vid + "EGO"
            assert partner in ids[split]
    for split, videos in data.videos.items():
        views = [v.view for v in videos]
        assert views == sorted(views)  # ego first
        for v in videos:
            assert v.view == ("ego" if v.name.endswith("EGO") else "exo")
            assert v.path.endswith(os.path.join(VIDEO_DIR, v.name + ".mp4"))
    targets = data.targets()
    classes = [c for c, _ in data.classes]
    for vid, row in train_rows.items():
        want = sorted({classes.index(a.split()[0]) for a in row["actions"].split(";") if a})
        assert np.flatnonzero(targets[vid]).tolist() == want
    empty = [vid for vid, row in train_rows.items() if not row["actions"]]
    assert empty and all(targets[v].sum() == 0 for v in empty)


def test_parse_actions_cells():
    index = {"c000": 0, "c092": 1, "c147": 2}
    assert parse_actions("c092 11.90 21.20;c147 0.00 12.60", index, "x") == (1, 2)
    assert parse_actions("c147 1 2;c092 0 1;c147 3 4", index, "x") == (1, 2)
    assert parse_actions("", index, "x") == () and parse_actions("  ", index, "x") == ()
    assert parse_actions(None, index, "x") == ()
    bad = {"c092 11.90": "not 'cNNN start end'", "c092 1 2;": "not 'cNNN start end'",
           "92 1 2": "not a class id", "c092 a 2": "not a number", "c092 1 nan": "not a number",
           "c155 1 2": "class c155, which the class file does not list"}
    for cell, message in bad.items():
        with pytest.raises(DataError, match=message) as e:
            parse_actions(cell, index, "F.csv, row 3 (line 4)")
        assert "F.csv, row 3 (line 4)" in str(e.value)


def test_view_of():
    assert view_of("005BUEGO") == "ego" and view_of("005BU") == "exo"
    assert view_of("EGO05") == "exo"


def test_carve_val_keeps_pairs_and_scripts_together():
    rows = [Row(f"V{i}{s}", "ego" if s else "exo", f"V{i}", f"script {i % 7}", (), 2)
            for i in range(30) for s in ("", "EGO")]
    train, val = carve_val(rows, 0.2, seed=3)
    assert carve_val(rows, 0.2, seed=3) == (train, val)  # seeded
    assert carve_val(rows, 0.2, seed=4) != (train, val)
    assert len(train) + len(val) == len(rows) and val
    train_scripts, val_scripts = {r.script for r in train}, {r.script for r in val}
    assert not train_scripts & val_scripts  # 7 scripts: whole scripts move
    assert {r.pair for r in train}.isdisjoint({r.pair for r in val})
    with pytest.raises(DataError, match="at least 2"):
        carve_val(rows[:2], 0.5)


def test_read_classes_errors(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("c000 Holding some clothes\nc001 Putting clothes somewhere\n\n")
    assert read_classes(str(p)) == [("c000", "Holding some clothes"),
                                    ("c001", "Putting clothes somewhere")]
    p.write_text("c000 a\nHolding b\n")
    with pytest.raises(DataError, match="line 2"):
        read_classes(str(p))
    p.write_text("c000 a\nc000 b\n")
    with pytest.raises(DataError, match="listed again"):
        read_classes(str(p))


@pytest.mark.parametrize("remove,message", [(TRAIN_CSV, "split file .*CharadesEgo_v1_train.csv "
                                             "is missing"),
                                            (CLASSES_FILE, "class file .* is missing"),
                                            (VIDEO_DIR, "video folder .* is missing")])
def test_missing_files(ce_copy, remove, message):
    root, base = ce_copy
    path = os.path.join(base, remove)
    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    with pytest.raises(DataError, match=message):
        load_charades_ego(root, ("train", "val"))


def test_missing_and_unreadable_video_name_the_row(ce_copy):
    root, base = ce_copy
    os.remove(os.path.join(base, VIDEO_DIR, "S0011EGO.mp4"))  # a test video (train: S0000-9)
    with pytest.raises(DataError, match=r"CharadesEgo_v1_test.csv, line \d+ \(id S0011EGO\): "
                                        r"video .*S0011EGO.mp4 does not exist"):
        load_charades_ego(root, ("test",))
    load_charades_ego(root, ("train",))  # train does not read the test csv's videos
    with open(os.path.join(base, VIDEO_DIR, "S0002.mp4"), "wb") as f:
        f.write(b"not a video at all" * 10)
    with pytest.raises(DataError, match=r"line \d+ \(id S0002\): cannot open video"):
        load_charades_ego(root, ("train",))


def test_malformed_csv_rows(ce_copy):
    root, base = ce_copy
    train = os.path.join(base, TRAIN_CSV)
    with open(train, encoding="utf-8") as f:
        original = f.read()
    cell = original.splitlines()[1].split(",")[-3]  # the first row's actions cell
    assert cell.startswith("c")
    cases = {cell.split(";")[0]: ("c999 0.00 1.00", "class c999, which the class file does not "
                                  "list"),
             cell.split(" ")[1]: ("x", "not a number")}
    for old, (new, message) in cases.items():
        _edit_csv(train, old, new)
        with pytest.raises(DataError, match=rf"CharadesEgo_v1_train.csv, row 1 \(line 2\).*"
                                            rf"{message}"):
            load_charades_ego(root, ("train",))
        with open(train, "w", encoding="utf-8") as f:
            f.write(original)
    lines = original.splitlines(keepends=True)
    for cut, message in ((lines[2].rsplit(",", 3)[0] + "\n", "fewer fields than the header"),
                         (lines[2].rstrip("\n") + ",x,y\n", "more fields than the header")):
        with open(train, "w", encoding="utf-8") as f:
            f.write("".join(lines[:2] + [cut] + lines[3:]))
        with pytest.raises(DataError, match=rf"row 2 \(line 3\): the row has {message}"):
            load_charades_ego(root, ("train",))
    with open(train, "w", encoding="utf-8") as f:
        f.write(original)
    _edit_csv(train, "S0001,", "S0000,")
    with pytest.raises(DataError, match="id S0000 is listed again"):
        load_charades_ego(root, ("val",))
    with open(train, "w", encoding="utf-8") as f:
        f.write(original.replace("actions,", "labels,", 1))
    with pytest.raises(DataError, match="lacks the column.*actions"):
        load_charades_ego(root, ("train",))


def test_fingerprint_follows_csv_and_classes(ce_copy):
    from byov.data.fingerprint import data_fingerprint
    from byov.data.validate import load_validated
    root, base = ce_copy
    videos, labels = load_validated(root, "charades_ego", ("train", "val"), None)
    assert set(labels) == {v.name for s in videos.values() for v in s}
    first = data_fingerprint(root, "charades_ego", ("train", "val"))
    assert first == data_fingerprint(root, "charades_ego", ("train", "val"), videos)
    with open(os.path.join(base, TEST_CSV), "a", encoding="utf-8") as f:
        f.write("\n")  # the test csv is not part of the train/val data
    assert data_fingerprint(root, "charades_ego", ("train", "val")) == first
    with open(os.path.join(base, CLASSES_FILE), "a", encoding="utf-8") as f:
        f.write("c008 a new class\n")
    assert data_fingerprint(root, "charades_ego", ("train", "val")) != first


def test_frame_cache_and_list_videos(ce_copy, tmp_path):
    from byov.data.frame_cache import ensure_frame_cache, frame_cache_path, read_frames
    from byov.data.layout import list_videos
    root, _ = ce_copy
    video = list_videos(root, "charades_ego", "test")[0]
    path = frame_cache_path(video, root, "charades_ego", str(tmp_path / "fc"))
    assert path == str(tmp_path / "fc" / "charades_ego" / VIDEO_DIR / (video.name + ".h5"))
    ensure_frame_cache(video, path)
    assert read_frames(path, np.arange(video.num_frames)).shape == (video.num_frames, 256, 256, 3)


def test_frame_cache_is_written_in_chunks(ce_copy, tmp_path, monkeypatch):
    """A video longer than the write chunk is cached frame-exact, chunk boundaries included."""
    import byov.data.frame_cache as fc
    from byov.data.layout import list_videos
    from byov.data.video import decode_frames
    root, _ = ce_copy
    video = list_videos(root, "charades_ego", "test")[0]
    monkeypatch.setattr(fc, "WRITE_CHUNK", 3)
    assert video.num_frames % 3 != 0 or video.num_frames > 3
    path = fc.ensure_frame_cache(video, str(tmp_path / "v.h5"))
    np.testing.assert_array_equal(fc.read_frames(path, np.arange(video.num_frames)),
                                  decode_frames(video.path)[:video.num_frames])


def test_generator_ensure_reuses_refuses_and_configs_resolve(tmp_path):
    import json

    from byov.data.synthetic_charades import STAMP_FILE, ensure
    from conftest import ROOT
    from utils.config import load_config
    root = tmp_path / "r"
    assert ensure(str(root), scripts=(3, 2), size=32, frames=(8, 9))
    assert not ensure(str(root))  # its own current output: reused
    stamp = root / "charades_ego" / STAMP_FILE
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "version": 0}))
    with pytest.raises(DataError, match="remove the folder to regenerate"):
        ensure(str(root))
    stamp.unlink()
    with pytest.raises(DataError, match="not written by byov.data.synthetic_charades"):
        ensure(str(root))
    real = load_config(["--config", os.path.join(ROOT, "configs", "charades_ego.yaml")])[0]
    assert (real.dataset, real.num_frames, real.backbone, real.vision_encoder_path,
            real.hidden_dim) == ("charades_ego", 32, "clip", "openai/clip-vit-base-patch16", 768)
    assert (real.lr, real.wd, real.batch_size) == (1e-5, 5e-6, 4)  # the released settings
    demo = load_config(["--config", os.path.join(ROOT, "configs", "charades_ego", "demo.yaml"),
                        "--best_metric",
                        "video_map.ego2exo"])[0]
    assert demo.dataset == "charades_ego" and demo.probe_c == 1.0
