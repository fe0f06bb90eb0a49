"""Content fingerprints: a copy (new path, new mtimes) keeps them, any edit changes them."""
import os
import shutil

import pytest

from byov.data.fingerprint import BLOCK, data_fingerprint, file_fingerprint
from byov.data.layout import DataError, load_labels
from data_helpers import make_csv_dataset, write_labels, write_mp4

ALL = ("train", "val", "test")


def _bump_mtime(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))


@pytest.mark.parametrize("size", [10, 3 * BLOCK, 3 * BLOCK + 1, 10 * BLOCK + 7])
def test_file_fingerprint_follows_content_not_path_or_mtime(tmp_path, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    a = tmp_path / "a.bin"
    a.write_bytes(data)
    fp = file_fingerprint(str(a))
    assert fp.startswith(f"{size}:")
    b = tmp_path / "sub" / "b.bin"
    b.parent.mkdir()
    shutil.copyfile(a, b)  # new path, new mtime
    _bump_mtime(b)
    assert file_fingerprint(str(b)) == fp
    # one byte changed at the start, in the middle block, at the end: each changes it
    for at in (0, (size - min(size, BLOCK)) // 2 + min(size, BLOCK) // 2, size - 1):
        edited = bytearray(data)
        edited[at] ^= 0xFF
        b.write_bytes(bytes(edited))
        assert file_fingerprint(str(b)) != fp, at
    b.write_bytes(data + b"\0")  # one byte longer
    assert file_fingerprint(str(b)) != fp
    with pytest.raises(DataError, match="cannot read"):
        file_fingerprint(str(tmp_path / "missing.bin"))


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "one"
    make_csv_dataset(root, {("ego", "train"): [("a.mp4", 4), ("b.mp4", 5)]})
    return str(root)


def test_data_fingerprint_survives_cp_r(data_root, tmp_path):
    fp = data_fingerprint(data_root, "synthetic", ALL)
    assert fp.startswith("blake2b:")
    copy = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(data_root, copy, copy_function=shutil.copyfile)  # cp -r: new mtimes
    for dirpath, _, files in os.walk(copy):
        for f in files:
            _bump_mtime(os.path.join(dirpath, f))
    assert data_fingerprint(str(copy), "synthetic", ALL) == fp
    assert data_fingerprint(str(copy), "synthetic", ("train",)) != fp  # another set of splits


def test_data_fingerprint_changes_with_labels_split_lines_and_videos(data_root):
    data = os.path.join(data_root, "synthetic")
    fp = data_fingerprint(data_root, "synthetic", ALL)
    # a label edited
    labels = {k: list(map(int, v)) for k, v in load_labels(data_root, "synthetic").items()}
    saved = dict(labels)
    labels["a"] = [0, 1, 1, 1]
    write_labels(data, labels)
    assert data_fingerprint(data_root, "synthetic", ALL) != fp
    write_labels(data, saved)
    assert data_fingerprint(data_root, "synthetic", ALL) == fp
    # a split line removed
    csv = os.path.join(data, "ego", "train.csv")
    original = open(csv, "rb").read()
    with open(csv, "w") as f:
        f.write("a.mp4\n")
    assert data_fingerprint(data_root, "synthetic", ALL) != fp
    with open(csv, "wb") as f:
        f.write(original)
    assert data_fingerprint(data_root, "synthetic", ALL) == fp
    # a video re-encoded with the same frame count
    video = os.path.join(data, "ego", "b.mp4")
    write_mp4(video, 5, seed=123)
    assert data_fingerprint(data_root, "synthetic", ALL) != fp


def test_data_fingerprint_of_listed_videos_equals_listing_here(data_root):
    from byov.data.validate import validate_dataset

    videos = validate_dataset(data_root, "synthetic", ALL)
    assert data_fingerprint(data_root, "synthetic", ALL, videos) == \
        data_fingerprint(data_root, "synthetic", ALL)
