"""validate_dataset: what the released loader accepts is accepted, what is wrong is refused up front
with the file/video named; split csv files from Windows tools are read; .MP4 is found."""
import os
import pickle

import numpy as np
import pytest

from byov.data.layout import DataError, list_videos, load_labels, read_split_csv
from byov.data.validate import validate_dataset
from data_helpers import make_csv_dataset, write_labels, write_mp4

ALL = ("train", "val", "test")


@pytest.fixture
def data(tmp_path):
    """A small valid csv-layout dataset (one 4-frame video per view and split)."""
    return make_csv_dataset(tmp_path, {})


def test_valid_dataset_returns_the_listed_videos(data, tmp_path):
    videos = validate_dataset(str(tmp_path), "synthetic", ALL)
    assert set(videos) == set(ALL)
    for split in ALL:
        assert [v.name for v in videos[split]] == [f"ego_{split}", f"exo_{split}"]
        assert videos[split] == list_videos(str(tmp_path), "synthetic", split)


def test_same_name_ego_and_exo_share_one_label_entry(tmp_path):
    make_csv_dataset(tmp_path, {("ego", "train"): [("s01.mp4", 5)],
                                ("exo", "train"): [("s01.mp4", 5)]})
    videos = validate_dataset(str(tmp_path), "synthetic", ("train",))["train"]
    assert [(v.name, v.view, v.num_frames) for v in videos] == [("s01", "ego", 5),
                                                                ("s01", "exo", 5)]


def test_same_name_with_different_frame_counts_names_both(tmp_path):
    data = make_csv_dataset(tmp_path, {("ego", "train"): [("s01.mp4", 5)],
                                       ("exo", "train"): [("s01.mp4", 6)]})
    with pytest.raises(DataError) as e:
        validate_dataset(str(tmp_path), "synthetic", ("train",))
    msg = str(e.value)
    assert os.path.join(data, "ego", "s01.mp4") in msg and "5 frames" in msg
    assert os.path.join(data, "exo", "s01.mp4") in msg and "6 frames" in msg


def test_background_minus_one_labels_are_accepted_and_kept(data, tmp_path):
    labels = load_labels(str(tmp_path), "synthetic")
    labels["ego_train"] = [-1, 0, 1, -1]
    write_labels(data, {k: list(map(int, v)) for k, v in labels.items()})
    validate_dataset(str(tmp_path), "synthetic", ALL)
    assert load_labels(str(tmp_path), "synthetic")["ego_train"].tolist() == [-1, 0, 1, -1]


def test_one_based_phase_ids_are_refused(data, tmp_path):
    labels = {k: [i + 1 for i in v] for k, v in load_labels(str(tmp_path), "synthetic").items()}
    write_labels(data, labels)
    with pytest.raises(DataError) as e:
        validate_dataset(str(tmp_path), "synthetic", ("train",))
    msg = str(e.value)
    assert os.path.join(data, "label.pickle") in msg
    assert "1-based (1, 2)" in msg and "0..1" in msg and "Subtract 1" in msg


def test_phase_ids_with_a_gap_are_refused(data, tmp_path):
    labels = {k: list(map(int, v)) for k, v in load_labels(str(tmp_path), "synthetic").items()}
    labels["exo_test"] = [0, 0, 3, 3]  # ids 0, 1, 3: 2 never used
    write_labels(data, labels)
    with pytest.raises(DataError, match=r"phase ids are 0, 1, 3.*ids 2 are never used"):
        validate_dataset(str(tmp_path), "synthetic", ("train",))
    labels["exo_test"] = [0, -2, 1, 1]
    write_labels(data, labels)
    with pytest.raises(DataError, match=r"\[-2\] are below -1 \(in 'exo_test'\)"):
        validate_dataset(str(tmp_path), "synthetic", ("train",))


@pytest.mark.parametrize("extra, how", [(1, "1 label too many"), (-1, "1 label too few")])
def test_label_count_off_by_one_names_video_and_counts(data, tmp_path, extra, how):
    labels = {k: list(map(int, v)) for k, v in load_labels(str(tmp_path), "synthetic").items()}
    labels["exo_val"] = [0, 0, 1, 1, 1][:4 + extra]
    write_labels(data, labels)
    with pytest.raises(DataError) as e:
        validate_dataset(str(tmp_path), "synthetic", ("train", "val"))
    msg = str(e.value)
    assert os.path.join(data, "exo", "exo_val.mp4") in msg
    assert f"has {4 + extra} labels but the video has 4 frames" in msg and how in msg


@pytest.mark.parametrize("content, expect", [
    ("truncated", r"cannot be read \((EOFError|UnpicklingError)"),
    ("list", "holds a list, expected a dict"),
    ("2d", r"entry 'ego_train' is not a 1-D sequence .*shape \(2, 2\)"),
    ("strings", r"entry 'ego_train' is not a 1-D list of integer .*'crack'"),
    ("fractions", r"entry 'ego_train' is not a 1-D list of integer .*frame 1 has 0.5"),
])
def test_damaged_label_pickle_is_refused_naming_the_file(data, tmp_path, content, expect):
    path = os.path.join(data, "label.pickle")
    labels = {k: list(map(int, v)) for k, v in load_labels(str(tmp_path), "synthetic").items()}
    if content == "truncated":
        raw = pickle.dumps(labels)
        with open(path, "wb") as f:
            f.write(raw[: len(raw) // 2])
    else:
        bad = {"list": list(labels.values()),
               "2d": {**labels, "ego_train": [[0, 0], [1, 1]]},
               "strings": {**labels, "ego_train": ["crack", "crack", "pour", "pour"]},
               "fractions": {**labels, "ego_train": [0.0, 0.5, 1.0, 1.0]}}[content]
        write_labels(data, bad)
    with pytest.raises(DataError, match=expect) as e:
        validate_dataset(str(tmp_path), "synthetic", ("train",))
    assert path in str(e.value)


def test_whole_number_float_labels_are_read_as_integers(data, tmp_path):
    labels = {k: [float(i) for i in v] for k, v in load_labels(str(tmp_path), "synthetic").items()}
    write_labels(data, labels)
    validate_dataset(str(tmp_path), "synthetic", ALL)
    assert load_labels(str(tmp_path), "synthetic")["ego_train"].dtype == np.int64


def test_one_frame_video_is_refused_by_name(tmp_path):
    data = make_csv_dataset(tmp_path, {("exo", "val"): [("short.mp4", 1)]})
    with pytest.raises(DataError) as e:
        validate_dataset(str(tmp_path), "synthetic", ("train", "val"))
    msg = str(e.value)
    assert os.path.join(data, "exo", "short.mp4") in msg and "has 1 frame " in msg
    assert "at least 2" in msg
    validate_dataset(str(tmp_path), "synthetic", ("train", "test"))  # val not touched: fine


def test_upper_case_mp4_is_found_in_both_layouts(tmp_path):
    data = make_csv_dataset(tmp_path, {("ego", "train"): [("Cam1.MP4", 4), ("cam2.Mp4", 4)]})
    videos = validate_dataset(str(tmp_path), "synthetic", ("train",))["train"]
    assert [v.name for v in videos[:2]] == ["Cam1", "cam2"]
    # the csv may spell the extension differently from the file on disk
    with open(os.path.join(data, "ego", "train.csv"), "w") as f:
        f.write("Cam1.mp4\ncam2.MP4\n")
    videos = validate_dataset(str(tmp_path), "synthetic", ("train",))["train"]
    assert [os.path.basename(v.path) for v in videos[:2]] == ["Cam1.MP4", "cam2.Mp4"]
    # folder layout
    root = tmp_path / "f"
    folder = root / "synthetic"
    labels = {}
    for split in ALL:
        for view in ("ego", "exo"):
            name = f"{view}_{split}"
            write_mp4(folder / split / view / (name + (".MP4" if view == "ego" else ".mp4")), 3)
            labels[name] = [0, 1, 1]
    write_labels(str(folder), labels)
    videos = validate_dataset(str(root), "synthetic", ("val",))["val"]
    assert [os.path.basename(v.path) for v in videos] == ["ego_val.MP4", "exo_val.mp4"]
    assert [v.name for v in videos] == ["ego_val", "exo_val"]


def test_names_differing_only_in_case_are_an_error(tmp_path):
    data = make_csv_dataset(tmp_path, {("ego", "train"): [("a.mp4", 4)]})
    write_mp4(os.path.join(data, "ego", "A.MP4"), 4, seed=9)
    write_mp4(os.path.join(data, "ego", "A.mp4"), 4, seed=8)
    with open(os.path.join(data, "ego", "train.csv"), "w") as f:
        f.write("a.MP4\n")
    with pytest.raises(DataError, match=r"differ only in letter case"):
        validate_dataset(str(tmp_path), "synthetic", ("train",))


WINDOWS_CSVS = {
    "utf8-bom": "\ufeffego_val.mp4\r\nextra.mp4\r\n".encode("utf-8"),
    "utf16-bom-crlf": "\ufeffego_val.mp4\r\nextra.mp4\r\n".encode("utf-16-le"),
    "utf16-be": "\ufeffego_val.mp4\nextra.mp4\n".encode("utf-16-be"),
    "crlf": b"ego_val.mp4\r\nextra.mp4\r\n",
    "whitespace": b"  ego_val.mp4 \t\n\n\textra.mp4\n \n\n",
    "no-final-newline": b"ego_val.mp4\nextra.mp4",
}


@pytest.mark.parametrize("kind", sorted(WINDOWS_CSVS))
def test_split_csv_from_windows_tools_is_read(tmp_path, kind):
    data = make_csv_dataset(tmp_path, {("ego", "val"): [("ego_val.mp4", 4), ("extra.mp4", 3)]})
    csv = os.path.join(data, "ego", "val.csv")
    with open(csv, "wb") as f:
        f.write(WINDOWS_CSVS[kind])
    assert [name for _, name in read_split_csv(csv)] == ["ego_val.mp4", "extra.mp4"]
    videos = validate_dataset(str(tmp_path), "synthetic", ("val",))["val"]
    assert [v.name for v in videos] == ["ego_val", "extra", "exo_val"]


def test_undecodable_csv_is_refused_naming_file_and_encoding(data, tmp_path):
    csv = os.path.join(data, "exo", "train.csv")
    with open(csv, "wb") as f:
        f.write("exo_train.mp4\ncaf\u00e9.mp4\n".encode("cp1252"))  # Latin-1 'é' = 0xE9
    with pytest.raises(DataError) as e:
        validate_dataset(str(tmp_path), "synthetic", ("train",))
    msg = str(e.value)
    assert csv in msg and "cannot be decoded as UTF-8" in msg and "Save it as UTF-8" in msg
    assert not isinstance(e.value, UnicodeError)
    with open(csv, "wb") as f:
        f.write("exo_train.mp4\n".encode("utf-16-le"))  # UTF-16 without its byte-order mark
    with pytest.raises(DataError, match=r"NUL characters: it is probably UTF-16") as e:
        validate_dataset(str(tmp_path), "synthetic", ("train",))
    assert csv in str(e.value)


def test_unwritable_frame_cache_folder_is_found_before_decoding(data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the cache folder should go")
    with pytest.raises(DataError, match=r"is not writable.*--frame_cache_dir"):
        validate_dataset(str(tmp_path), "synthetic", ("train",), str(blocker / "caches"))
    # None: the run reads a feature cache, frame caches are not checked
    validate_dataset(str(tmp_path), "synthetic", ("train",), None)
