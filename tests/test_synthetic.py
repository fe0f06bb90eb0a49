"""The synthetic ego/exo dataset [DEC 16]: layout, labels, frame counts, and views that differ."""
import os
import pickle
import time

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from byov.data.layout import (SPLITS, VIEWS, DataError, check_labels, frame_count, list_videos,
                              load_labels)
from byov.data.synthetic import NUM_PHASES, ensure_synthetic, generate, main
from byov.data.video import decode_frames


@pytest.fixture(scope="module")
def default_root(tmp_path_factory):
    """dataset_root holding the default dataset, made through the CLI; also its run time."""
    root = tmp_path_factory.mktemp("default")
    start = time.time()
    main(["--out", str(root / "synthetic")])
    return str(root), time.time() - start


def test_default_dataset_fast_and_complete(default_root):
    root, seconds = default_root
    assert seconds < 60
    labels = load_labels(root, "synthetic")
    lengths = []
    for split, n in zip(SPLITS, (24, 6, 6)):
        videos = list_videos(root, "synthetic", split)
        assert len(videos) == n and sum(v.is_ego for v in videos) == n // 2
        check_labels(videos, labels)
        lengths += [v.num_frames for v in videos]
    assert 48 <= min(lengths) and max(lengths) <= 160 and len(set(lengths)) > 20
    assert len(labels) == 36


def test_every_video_counts_decodes_and_labels_agree(synthetic_root):
    labels = load_labels(os.path.dirname(synthetic_root), "synthetic")
    names = set()
    for view in VIEWS:
        folder = os.path.join(synthetic_root, view)
        for split in SPLITS:
            with open(os.path.join(folder, f"{split}.csv")) as f:
                listed = f.read().splitlines()
            assert listed and all(n.startswith(f"{view}_{split}_") for n in listed)
            for file in listed:
                name = file[:-4]
                path = os.path.join(folder, file)
                L = frame_count(path)
                assert len(decode_frames(path, 32)) == L == len(labels[name])
                lab = labels[name]
                # all K phases, in order, each lasting a few frames
                assert np.array_equal(np.unique(lab), np.arange(NUM_PHASES))
                assert np.all(np.diff(lab) >= 0) and np.bincount(lab).min() >= 3
                names.add(name)
    assert len(names) == 7 and not any("ego" in n for n in names if n.startswith("exo"))


def test_phase_durations_vary(synthetic_root):
    labels = load_labels(os.path.dirname(synthetic_root), "synthetic")
    fractions = {tuple(np.round(np.bincount(v) / len(v), 2)) for v in labels.values()}
    assert len(fractions) == len(labels)


def test_folder_layout(tmp_path):
    out = generate(str(tmp_path / "synthetic"), layout="folders", videos_per_split=(2, 2, 2),
                   min_frames=16, max_frames=20, size=32)
    assert sorted(os.listdir(out)) == ["label.pickle", "test", "train", "val"]
    for split in SPLITS:
        assert sorted(os.listdir(os.path.join(out, split))) == ["ego", "exo"]
        assert os.listdir(os.path.join(out, split, "exo")) == [f"exo_{split}_000.mp4"]


def _pixels(root, split):
    """16x16 grayscale pixels and phase labels per view of a split."""
    labels = load_labels(root, "synthetic")
    out = {v: ([], []) for v in VIEWS}
    for video in list_videos(root, "synthetic", split):
        frames = decode_frames(video.path, 16)
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames])
        out[video.view][0].append(gray.reshape(len(gray), -1) / 255.0)
        out[video.view][1].append(labels[video.name])
    return {v: (np.concatenate(x), np.concatenate(y)) for v, (x, y) in out.items()}


def test_views_differ_for_a_pixel_classifier(default_root):
    """Phases are learnable within a view, but a raw-pixel classifier transfers poorly across."""
    root, _ = default_root
    train, test = _pixels(root, "train"), _pixels(root, "test")
    for src, dst in (("ego", "exo"), ("exo", "ego")):
        x, y = train[src]
        mu, sd = x.mean(0), x.std(0) + 1e-6
        clf = LogisticRegression(max_iter=2000).fit((x - mu) / sd, y)
        within = clf.score((test[src][0] - mu) / sd, test[src][1])
        cross = clf.score((test[dst][0] - mu) / sd, test[dst][1])
        assert within > 0.55, (src, within)
        assert within - cross > 0.25, (src, within, cross)


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "synthetic"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="not an empty folder"):
        generate(str(out), videos_per_split=(2, 2, 2), min_frames=16, max_frames=16, size=32)
    with pytest.raises(DataError, match="will not be touched"):
        ensure_synthetic(str(out))
    with pytest.raises(SystemExit) as e:
        main(["--out", str(out)])
    assert e.value.code == 2
    assert os.listdir(out) == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"


def test_ensure_synthetic_generates_once(tmp_path):
    out = str(tmp_path / "data" / "synthetic")
    kw = dict(videos_per_split=(2, 2, 2), min_frames=16, max_frames=20, size=32)
    assert ensure_synthetic(out, layout="folders", seed=4, **kw) is True
    assert os.listdir(tmp_path / "data") == ["synthetic"]  # the temp folder is gone
    label_file = os.path.join(out, "label.pickle")
    stamp = os.stat(label_file).st_mtime_ns
    assert ensure_synthetic(out, **kw) is False
    assert os.stat(label_file).st_mtime_ns == stamp
    with open(label_file, "rb") as f:
        assert len(pickle.load(f)) == 6
    assert len(list_videos(os.path.dirname(out), "synthetic", "train")) == 2
