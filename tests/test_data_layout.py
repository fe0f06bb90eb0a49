"""Split discovery, order, view assignment, labels and the data errors (docs/released_code.md#data-layout)."""
import dataclasses
import os
import pickle
import shutil

import numpy as np
import pytest

from byov.data.layout import (DATASETS, DataError, check_labels, dataset_path,
                              detect_layout, frame_count, list_videos, load_labels)
from byov.data.synthetic import generate


@pytest.fixture(scope="module")
def folders_root(tmp_path_factory):
    """dataset_root of a tiny synthetic dataset in the folder layout."""
    root = tmp_path_factory.mktemp("folders")
    generate(str(root / "synthetic"), layout="folders", seed=1, videos_per_split=(3, 2, 2),
             min_frames=20, max_frames=30, size=64)
    return str(root)


@pytest.fixture
def copy_root(synthetic_root, tmp_path):
    """A private, writable copy of the session dataset: returns its dataset_root."""
    shutil.copytree(synthetic_root, tmp_path / "synthetic")
    return str(tmp_path)


def test_csv_layout_discovery_order_and_views(synthetic_root):
    root = os.path.dirname(synthetic_root)
    assert "ego" in root  # the root contains "ego": views must still come from the parent folder
    assert detect_layout(synthetic_root, "synthetic") == "csv"
    videos = list_videos(root, "synthetic", "train")
    assert [v.name for v in videos] == ["ego_train_000", "ego_train_001", "exo_train_000"]
    assert [v.view for v in videos] == ["ego", "ego", "exo"]
    assert [v.is_ego for v in videos] == [True, True, False]
    assert [v.path for v in videos] == sorted(v.path for v in videos)
    for v in videos:
        assert os.path.isabs(v.path) and v.path.endswith(f"/{v.view}/{v.name}.mp4")
        assert v.split == "train" and v.num_frames == frame_count(v.path)
        assert 20 <= v.num_frames <= 40
    test = list_videos(root, "synthetic", "test")
    assert [(v.name, v.view) for v in test] == [("ego_test_000", "ego"), ("exo_test_000", "exo")]


def test_folder_layout_discovery(folders_root):
    data = dataset_path(folders_root, "synthetic")
    assert detect_layout(data, "synthetic") == "folders"
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        videos = list_videos(folders_root, "synthetic", split)
        assert len(videos) == n
        assert [v.view for v in videos] == ["ego"] * ((n + 1) // 2) + ["exo"] * (n // 2)
        assert all(os.path.dirname(v.path) == os.path.join(data, split, v.view) for v in videos)
    check_labels(list_videos(folders_root, "synthetic", "val"),
                 load_labels(folders_root, "synthetic"))


def test_released_layouts_fixed_per_dataset(tmp_path):
    assert detect_layout(str(tmp_path), "break_eggs") == "csv"
    assert detect_layout(str(tmp_path), "pour_liquid") == "folders"
    with pytest.raises(DataError, match="neither ego/train.csv"):
        detect_layout(str(tmp_path), "synthetic")


def test_duplicate_csv_lines_appear_once(copy_root):
    csv = os.path.join(copy_root, "synthetic", "ego", "train.csv")
    with open(csv, "a") as f:
        f.write("ego_train_000.mp4\n")
    assert len(list_videos(copy_root, "synthetic", "train")) == 3


def test_labels_load_and_check(synthetic_root):
    root = os.path.dirname(synthetic_root)
    labels = load_labels(root, "synthetic")
    videos = [v for s in ("train", "val", "test") for v in list_videos(root, "synthetic", s)]
    assert set(labels) == {v.name for v in videos}
    check_labels(videos, labels)
    for lab in labels.values():
        assert lab.dtype == np.int64 and lab.ndim == 1
        assert lab[0] == 0 and lab[-1] == 3 and np.all(np.diff(lab) >= 0)


def test_error_missing_root(tmp_path):
    with pytest.raises(DataError) as e:
        list_videos(str(tmp_path / "nowhere"), "break_eggs", "train")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg
    assert "dataset_root in utils/config.py or pass --dataset_root" in msg
    assert "train.csv" in msg and "label.pickle" in msg  # the expected tree


def test_error_missing_dataset_folder(tmp_path):
    with pytest.raises(DataError) as e:
        load_labels(str(tmp_path), "pour_milk")
    msg = str(e.value)
    assert str(tmp_path / "pour_milk") in msg and "--dataset_root" in msg
    assert "train/" in msg and "exo/*.mp4" in msg


def test_error_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="valid names: " + ", ".join(DATASETS)):
        list_videos(str(tmp_path), "break_egg", "train")


def test_error_missing_split_csv(copy_root):
    csv = os.path.join(copy_root, "synthetic", "exo", "val.csv")
    os.remove(csv)
    with pytest.raises(DataError, match=f"split file {csv} is missing"):
        list_videos(copy_root, "synthetic", "val")


@pytest.mark.parametrize("line, expect", [("exo_train_999.mp4", "exo_train_999.mp4 does not exist"),
                                          ("sub/exo_train_000.mp4", "not a bare file name"),
                                          ("name", "not a bare file name ending in .mp4")])
def test_error_bad_csv_line(copy_root, line, expect):
    csv = os.path.join(copy_root, "synthetic", "exo", "train.csv")
    with open(csv, "a") as f:
        f.write(line + "\nexo_train_000.mp4\n")
    with pytest.raises(DataError, match=expect) as e:
        list_videos(copy_root, "synthetic", "train")
    assert csv in str(e.value)


def test_error_empty_view_folder(folders_root, tmp_path):
    shutil.copytree(os.path.join(folders_root, "synthetic"), tmp_path / "synthetic")
    exo = tmp_path / "synthetic" / "val" / "exo"
    for f in os.listdir(exo):
        os.remove(exo / f)
    with pytest.raises(DataError, match=f"folder {exo} holds no"):
        list_videos(str(tmp_path), "synthetic", "val")


def test_error_missing_label_file(copy_root):
    path = os.path.join(copy_root, "synthetic", "label.pickle")
    os.remove(path)
    with pytest.raises(DataError, match=f"label file {path} is missing"):
        load_labels(copy_root, "synthetic")


def test_error_video_missing_from_labels(synthetic_root):
    root = os.path.dirname(synthetic_root)
    videos = list_videos(root, "synthetic", "val")
    labels = load_labels(root, "synthetic")
    del labels["exo_val_000"]
    with pytest.raises(DataError, match="no entry 'exo_val_000' in label.pickle"):
        check_labels(videos, labels)


def test_error_label_length_mismatch(synthetic_root):
    root = os.path.dirname(synthetic_root)
    video = list_videos(root, "synthetic", "val")[0]
    labels = {video.name: np.zeros(video.num_frames + 2, np.int64)}
    with pytest.raises(DataError) as e:
        check_labels([video], labels)
    msg = str(e.value)
    assert video.path in msg and f"{video.num_frames + 2} labels" in msg
    assert f"{video.num_frames} frames" in msg


def test_error_bad_label_values(copy_root):
    path = os.path.join(copy_root, "synthetic", "label.pickle")
    with open(path, "wb") as f:
        pickle.dump({"a": [0.5, 1.0]}, f)
    with pytest.raises(DataError, match="'a' is not a 1-D list of integer"):
        load_labels(copy_root, "synthetic")


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 100])
def test_error_unreadable_video(copy_root, content):
    path = os.path.join(copy_root, "synthetic", "exo", "exo_val_000.mp4")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(DataError, match=path):
        list_videos(copy_root, "synthetic", "val")
    with pytest.raises(DataError, match="does not exist"):
        frame_count(path + ".missing")


def test_view_from_parent_folder_not_name(copy_root):
    exo = os.path.join(copy_root, "synthetic", "exo")
    shutil.copy(os.path.join(exo, "exo_test_000.mp4"), os.path.join(exo, "ego_lookalike.mp4"))
    with open(os.path.join(exo, "test.csv"), "a") as f:
        f.write("ego_lookalike.mp4\n")
    videos = list_videos(copy_root, "synthetic", "test")
    assert [(v.name, v.view) for v in videos] == [
        ("ego_test_000", "ego"), ("ego_lookalike", "exo"), ("exo_test_000", "exo")]
    with pytest.raises(dataclasses.FrozenInstanceError):
        videos[0].view = "exo"
