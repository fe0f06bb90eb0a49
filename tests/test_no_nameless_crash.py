"""No crash without a name: a video path that is not valid UTF-8 is refused naming the file (its
repr) and the fix before OpenCV sees it; read-only or full output folders are one "cannot write
here" error naming the path and the fix; the NaN-loss advice works when followed."""
import os
import shutil
import subprocess
import sys

import pytest

from byov.data.layout import DataError, check_video_path, list_videos
from conftest import ROOT
from data_helpers import make_csv_dataset, write_mp4

CP437_NAME = os.fsdecode(b"take\x81.mp4")  # 'ü' in cp437, not valid UTF-8


def _folder_dataset(root, bad_name):
    """A folder-layout dataset (pour_liquid) whose train/ego holds `bad_name`."""
    import pickle

    data = os.path.join(root, "pour_liquid")
    labels = {}
    for split in ("train", "val", "test"):
        for view in ("ego", "exo"):
            name = f"{view}_{split}.mp4"
            write_mp4(os.path.join(data, split, view, name), 4, seed=len(labels))
            labels[name[:-4]] = [0, 0, 1, 1]
    os.replace(os.path.join(data, "train", "ego", "ego_train.mp4"),
               os.path.join(data, "train", "ego", bad_name))
    labels[bad_name[:-4]] = labels.pop("ego_train")
    with open(os.path.join(data, "label.pickle"), "wb") as f:
        pickle.dump(labels, f)
    return data


def test_non_utf8_video_name_is_a_data_error_naming_it(tmp_path):
    _folder_dataset(str(tmp_path), CP437_NAME)
    with pytest.raises(DataError) as info:
        list_videos(str(tmp_path), "pour_liquid", "train")
    message = str(info.value)
    assert repr(os.path.join(str(tmp_path), "pour_liquid", "train", "ego", CP437_NAME)) in message
    assert "not valid UTF-8" in message and "Rename" in message
    message.encode("utf-8")  # printable: the bad byte is escaped


def test_non_utf8_dataset_root_is_refused_before_opencv(tmp_path):
    root = tmp_path / os.fsdecode(b"caf\x82")
    make_csv_dataset(tmp_path / "good", {})  # written under a UTF-8 name (OpenCV writes it)
    os.rename(tmp_path / "good", root)
    with pytest.raises(DataError, match="not valid UTF-8"):
        list_videos(str(root), "synthetic", "val")
    with pytest.raises(DataError, match="not valid UTF-8"):
        from byov.data.video import decode_frames
        decode_frames(str(root / "synthetic" / "ego" / "ego_val.mp4"))
    assert check_video_path("plain/ü.mp4") == "plain/ü.mp4"  # UTF-8 names are fine


def test_validation_cli_names_it_instead_of_dying(tmp_path):
    """The whole validation (a fresh process, as a user runs it) exits with the message."""
    _folder_dataset(str(tmp_path), CP437_NAME)
    code = ("import sys; from byov.data.validate import validate_dataset\n"
            "from byov.data.layout import DataError\n"
            "try:\n    validate_dataset(sys.argv[1], 'pour_liquid', ('train', 'val', 'test'))\n"
            "except DataError as e:\n    sys.exit(f'error: {e}')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "not valid UTF-8" in proc.stderr and "take\\udc81" in proc.stderr
    assert "byte b'\\x81'" in proc.stderr
