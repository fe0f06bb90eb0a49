"""The synthetic ego/exo dataset: layout, labels, frame counts, views that differ, timing that does
not give the phase away, object states that follow the phase, the version stamp; and the time
baseline (t / L per frame)."""
import json
import os
import pickle

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from byov.data import synthetic
from byov.data.layout import (SPLITS, VIEWS, DataError, check_labels, frame_count, list_videos,
                              load_labels)
from byov.data.synthetic import (GENERATOR_VERSION, MIN_MOTION_FRAMES, NUM_PHASES,
                                 ensure_synthetic, generate, main, phase_timeline, render_video)
from byov.data.video import decode_frames
from byov.eval import EvalInputError, SplitData, evaluate_embeddings
from byov.eval.baselines import time_embeddings, time_split

TINY = dict(videos_per_split=(2, 2, 2), min_frames=16, max_frames=20, size=32)


@pytest.fixture(scope="module")
def default_root(tmp_path_factory):
    """dataset_root (str) holding the default dataset, made through the CLI."""
    root = tmp_path_factory.mktemp("default")
    main(["--out", str(root / "synthetic")])
    return str(root)


def _split(root, split):
    """SplitData of a split with zero embeddings (the baselines replace them)."""
    labels = load_labels(root, "synthetic")
    videos = list_videos(root, "synthetic", split)
    y = np.concatenate([labels[v.name] for v in videos]).astype(np.int64)
    meta = [{"name": v.name, "view": v.view, "num_frames": v.num_frames} for v in videos]
    return SplitData(np.zeros((len(y), 1)), y, meta, split)


def test_default_dataset_complete(default_root):
    labels = load_labels(default_root, "synthetic")
    lengths = []
    for split, n in zip(SPLITS, (24, 6, 6)):
        videos = list_videos(default_root, "synthetic", split)
        assert len(videos) == n and sum(v.is_ego for v in videos) == n // 2
        check_labels(videos, labels)
        lengths += [v.num_frames for v in videos]
    lo, hi = synthetic.MIN_FRAMES, synthetic.MAX_FRAMES
    assert lo <= min(lengths) and max(lengths) <= hi and len(set(lengths)) > 20
    assert len(labels) == 36
    with open(os.path.join(default_root, "synthetic", "generator.json")) as f:
        stamp = json.load(f)
    assert stamp["version"] == GENERATOR_VERSION and stamp["seed"] == 0
    assert stamp["idle_long"] == list(synthetic.IDLE_LONG)


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


def test_phase_durations_vary(default_root):
    """Per phase, frame counts differ at least 3-fold across the default videos and the phases'
    shares of their videos at least 2-fold: no two videos split their time alike."""
    labels = load_labels(default_root, "synthetic")
    counts = np.array([np.bincount(v, minlength=NUM_PHASES) for v in labels.values()])
    shares = counts / counts.sum(1, keepdims=True)
    assert np.all(counts.max(0) >= 3 * counts.min(0)), counts
    assert np.all(shares.max(0) >= 2 * shares.min(0)), shares
    assert len({tuple(np.round(s, 2)) for s in shares}) == len(labels)


def _draws(view, n, **knobs):
    out = []
    for k in range(n):
        rng = np.random.default_rng([7, k])
        L = int(rng.integers(synthetic.MIN_FRAMES, synthetic.MAX_FRAMES + 1))
        out.append(phase_timeline(view, L, rng, **knobs))
    return out


def test_timeline_idle_stretches_and_their_labels():
    """Idle frames exist; each carries the phase of the motion before it (phase 0 before the
    reach); exo recordings start with the long idle stretch, ego recordings end with it."""
    for view in VIEWS:
        for tl in _draws(view, 40):
            y, moving, progress = tl["labels"], tl["moving"], tl["progress"]
            L = len(y)
            assert y.dtype == np.int64 and np.all(np.diff(y) >= 0)
            assert np.array_equal(np.unique(y), np.arange(NUM_PHASES))
            assert np.array_equal(np.bincount(y[moving]), tl["motion_frames"])
            assert tl["motion_frames"].min() >= MIN_MOTION_FRAMES
            # the label of an idle frame: the phase of the last moving frame before it, else 0
            last = np.maximum.accumulate(np.where(moving, np.arange(L), -1))
            idle = ~moving
            assert idle.sum() > 0.15 * L
            expected = np.where(last[idle] >= 0, y[np.maximum(last[idle], 0)], 0)
            assert np.array_equal(y[idle], expected)
            assert np.all(progress[idle] == np.where(last[idle] >= 0, 1.0, 0.0))
            assert np.all((progress[moving] > 0) & (progress[moving] < 1))
            lead = np.argmax(moving)
            trail = L - 1 - np.flatnonzero(moving)[-1]
            assert (lead > trail) if view == "exo" else (trail > lead), (view, lead, trail)


def test_timeline_motion_durations_vary_and_knobs_off():
    frames = np.array([tl["motion_frames"] for tl in _draws("ego", 36)])
    assert np.all(frames.max(0) >= 3 * frames.min(0)), frames
    flat = _draws("exo", 10, phase_range=1.0, idle_between=(0, 0), idle_long=(0, 0),
                  idle_short=(0, 0))
    for tl in flat:  # no idle, four equal motions (up to the rounding of L / 4)
        assert tl["moving"].all()
        assert tl["motion_frames"].max() - tl["motion_frames"].min() <= 1
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="phase_range"):
        phase_timeline("ego", 60, rng, phase_range=0.5)
    with pytest.raises(ValueError, match="idle_between"):
        phase_timeline("ego", 60, rng, idle_between=(1.0, 0.5))
    with pytest.raises(ValueError, match="at least 12 frames"):
        phase_timeline("exo", 11, rng)
    with pytest.raises(ValueError, match="min_frames"):
        generate("unused", min_frames=8, max_frames=20)


@pytest.mark.parametrize("view", VIEWS)
def test_object_states_follow_the_phase(view):
    """Bowl fill and bottle level change the same way in both views, tied to the phase: empty
    bowl and full bottle until the pour, the bowl filling as the bottle empties during it, full
    bowl and empty bottle after it; the bottle leaves the table only in the lift."""
    rng = np.random.default_rng([3, VIEWS.index(view)])
    frames, y, st = render_video(view, 48, 32, rng, return_states=True)
    assert frames.shape == (48, 32, 32, 3) and np.array_equal(y, st["labels"])
    fill, level = st["bowl_fill"], st["bottle_level"]
    np.testing.assert_allclose(level, 1.0 - 0.85 * fill)
    assert np.all(fill[y <= 1] == 0) and np.all(fill[y == 3] == 1)
    pour = fill[y == 2]
    assert np.all(np.diff(pour) >= 0) and pour[0] == 0 and pour[-1] > 0.5
    assert np.all(st["lifted"][y == 0] == 0) and st["lifted"][y == 1][-1] > 0.2
    assert np.all(st["tilt"][y <= 1] == 0) and st["tilt"][y == 2][-1] > 90


@pytest.mark.parametrize("view", VIEWS)
def test_object_state_cue_is_visible(view):
    """The same frame drawn before and after the pour differs where the bottle and bowl are."""
    s = synthetic._scene(view, 128, 10, np.random.default_rng(1))
    pose = synthetic._pose(s, 1, 1.0)  # the bottle held up, upright, over the bowl
    poured = dict(pose, fill=s["fill"], level=0.15)
    a = synthetic._render(s, 0, pose, np.random.default_rng(2)).astype(int)
    b = synthetic._render(s, 0, poured, np.random.default_rng(2)).astype(int)
    changed = np.abs(a - b).max(-1) > 30
    assert changed.sum() >= 80, changed.sum()


def test_time_baseline_weak_on_default_data(default_root):
    """A feature that knows only t / L must not recognise phases across views (AE2 protocol: the
    SVM fit on train ego (exo) frames, weighted F1 on test exo (ego) frames)."""
    train, test = time_split(_split(default_root, "train")), time_split(_split(default_root,
                                                                             "test"))
    f1 = evaluate_embeddings(train, test, "classification", progress=False,
                             n_jobs=1)["classification_f1"]
    assert f1["ego2exo"] <= 0.45 and f1["exo2ego"] <= 0.45, f1


def _timeline_split(n, seed, **knobs):
    """SplitData of t / L features for n ego + n exo videos drawn by phase_timeline (no pixels)."""
    y, videos = [], []
    for k in range(2 * n):
        view = VIEWS[k % 2]
        rng = np.random.default_rng([seed, k])
        L = int(rng.integers(synthetic.MIN_FRAMES, synthetic.MAX_FRAMES + 1))
        y.append(phase_timeline(view, L, rng, **knobs)["labels"])
        videos.append({"name": f"{view}_{k}", "view": view, "num_frames": L})
    return time_split(SplitData(np.zeros((sum(map(len, y)), 1)), np.concatenate(y), videos))


def test_the_timing_knobs_are_what_defeats_the_time_baseline():
    """Labels only: with equal motions and no idle stretches t / L gives the phase away; with
    the default knobs it does not."""
    off = dict(phase_range=1.0, idle_between=(0, 0), idle_long=(0, 0), idle_short=(0, 0))
    for knobs, check in ((off, lambda f: f > 0.8), ({}, lambda f: f < 0.45)):
        f1 = evaluate_embeddings(_timeline_split(12, 0, **knobs), _timeline_split(6, 1, **knobs),
                                 "classification", progress=False, n_jobs=1)
        f1 = f1["classification_f1"]
        assert check(f1["ego2exo"]) and check(f1["exo2ego"]), (knobs, f1)


def test_time_embeddings_exact():
    videos = [{"name": "a", "view": "ego", "num_frames": 3},
              {"name": "b", "view": "exo", "num_frames": 1},
              {"name": "c", "view": "exo", "num_frames": 4}]
    x = time_embeddings(videos)
    assert x.dtype == np.float64 and x.shape == (8, 1)
    assert x[:, 0].tolist() == [0.0, 1 / 3, 2 / 3, 0.0, 0.0, 0.25, 0.5, 0.75]
    split = SplitData(np.ones((8, 5), np.float32), np.array([0, 1, 2, 0, 0, 1, 1, 2]), videos,
                      "test")
    out = time_split(split)
    assert out.embeds.shape == (8, 1) and np.array_equal(out.embeds, x)
    assert np.array_equal(out.labels, split.labels) and out.videos == videos
    assert out.split == "test" and out.validate() is out
    assert time_embeddings([]).shape == (0, 1)
    for bad in (0, 2.0, True, None):
        with pytest.raises(EvalInputError, match="num_frames"):
            time_embeddings([{"name": "a", "view": "ego", "num_frames": bad}])


def test_folder_layout(tmp_path):
    out = generate(str(tmp_path / "synthetic"), layout="folders", **TINY)
    assert sorted(os.listdir(out)) == ["generator.json", "label.pickle", "test", "train", "val"]
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
    train, test = _pixels(default_root, "train"), _pixels(default_root, "test")
    for src, dst in (("ego", "exo"), ("exo", "ego")):
        x, y = train[src]
        mu, sd = x.mean(0), x.std(0) + 1e-6
        with threadpool_limits(limits=1):  # a 256-wide fit: BLAS threads only spin on 2 cores
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
        generate(str(out), **TINY)
    with pytest.raises(DataError, match="will not be touched"):
        ensure_synthetic(str(out))
    with pytest.raises(SystemExit) as e:
        main(["--out", str(out)])
    assert e.value.code == 2
    assert os.listdir(out) == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"


def test_ensure_synthetic_generates_once(tmp_path):
    out = str(tmp_path / "data" / "synthetic")
    assert ensure_synthetic(out, layout="folders", seed=4, **TINY) is True
    assert os.listdir(tmp_path / "data") == ["synthetic"]  # the temp folder is gone
    label_file = os.path.join(out, "label.pickle")
    stamp = os.stat(label_file).st_mtime_ns
    assert ensure_synthetic(out, **TINY) is False
    assert os.stat(label_file).st_mtime_ns == stamp
    with open(label_file, "rb") as f:
        assert len(pickle.load(f)) == 6
    assert len(list_videos(os.path.dirname(out), "synthetic", "train")) == 2


@pytest.mark.parametrize("stamp", [None, {"version": 1}, "not json"])
def test_ensure_synthetic_stale_folder(tmp_path, stamp):
    """A folder from another generator version is refused, or replaced whole when asked."""
    out = str(tmp_path / "synthetic")
    generate(out, seed=3, **TINY)
    path = os.path.join(out, "generator.json")
    if stamp is None:
        os.remove(path)  # what generator version 1 wrote: no stamp
    else:
        with open(path, "w") as f:
            f.write(stamp if isinstance(stamp, str) else json.dumps(stamp))
    open(os.path.join(out, "ego", "ego_train_000.h5"), "w").close()  # a stale frame cache
    with pytest.raises(DataError, match="out of date.*rm -r"):
        ensure_synthetic(out, **TINY)
    assert os.path.isfile(os.path.join(out, "ego", "ego_train_000.h5"))  # untouched
    assert ensure_synthetic(out, replace_stale=True, **TINY) is True
    assert synthetic.read_stamp(out)["version"] == GENERATOR_VERSION
    assert not os.path.exists(os.path.join(out, "ego", "ego_train_000.h5"))
    assert sorted(os.listdir(tmp_path)) == ["synthetic"]  # no temp or stale folder left
    assert ensure_synthetic(out, replace_stale=True, **TINY) is False


def test_ensure_synthetic_replaces_only_its_own_data(tmp_path):
    out = tmp_path / "synthetic"
    out.mkdir()
    with open(out / "label.pickle", "wb") as f:
        pickle.dump({"my_video": [0, 1]}, f)
    with pytest.raises(DataError, match="names this generator does not write"):
        ensure_synthetic(str(out), replace_stale=True, **TINY)
    assert os.listdir(out) == ["label.pickle"]
