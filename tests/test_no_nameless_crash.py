"""No crash without a name: a video path that is not valid UTF-8 is refused naming the file (its
repr) and the fix before OpenCV sees it; read-only or full output folders are one "cannot write
here" error naming the path and the fix; the NaN-loss advice works when followed."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

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


# -- "cannot write here": one error, naming the path and the fix, before the first step --------

def _blocked(tmp_path):
    """A folder path that cannot be created (its parent is a file): unwritable even as root."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    return str(blocker / "out")


def test_train_unwritable_output_dir_fails_before_any_work(synthetic_root, tiny_clip_dir,
                                                           tmp_path):
    from byov.writable import CannotWriteError
    from train_helpers import train_args, train_in_process

    cache = tmp_path / "frame_cache"
    out = _blocked(tmp_path)
    with pytest.raises(CannotWriteError, match=rf"cannot write the run folder at '{out}'.*is a "
                                               rf"file, not a folder; give --output_dir a path"):
        train_in_process(train_args(synthetic_root, tiny_clip_dir, out, str(cache)))
    assert not cache.exists()  # no frame decoded, nothing built


def test_disk_full_while_writing_epoch_eval_is_the_same_error(args, tmp_path, monkeypatch):
    import errno

    from byov.eval import io as eval_io
    from byov.writable import CannotWriteError
    from train_helpers import train_in_process

    def full_disk(directory, name, data):
        os.makedirs(directory, exist_ok=True)
        raise OSError(errno.ENOSPC, "No space left on device",
                      os.path.join(directory, f"{name}_embeds.npy"))
    monkeypatch.setattr(eval_io, "save_split", full_disk)
    with pytest.raises(CannotWriteError) as info:
        train_in_process(args("run", ds_every_n_epoch=1))
    message = str(info.value)
    assert os.path.join("run", "eval", "epoch_0000", "train_embeds.npy") in message
    assert "No space left on device" in message and "free disk space" in message


def _tiny_embeddings(folder):
    from byov.eval import SplitData, save_split

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        videos = [{"name": f"{v}{i}", "view": v, "num_frames": 6} for v in ("ego", "exo")
                  for i in range(2)]
        save_split(str(folder), split, SplitData(rng.normal(size=(24, 4)).astype(np.float32),
                                                 np.tile([0, 0, 0, 1, 1, 1], 4), videos, split))


@pytest.mark.parametrize("flag", ["--embed_dir", "--json"])
def test_evaluate_unwritable_output_is_named_without_a_traceback(tmp_path, flag):
    folder = tmp_path / "emb"
    _tiny_embeddings(folder)
    target = _blocked(tmp_path)
    value = target if flag == "--embed_dir" else os.path.join(target, "m.json")
    proc = subprocess.run([sys.executable, "evaluate.py", "--embeddings", str(folder), flag,
                           value], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "cannot write" in proc.stderr and target in proc.stderr and flag in proc.stderr
    assert not (folder / "metrics.json").exists()  # refused before any task ran


def test_report_unwritable_out_is_refused_before_the_embeddings(tmp_path):
    from byov.report import build_report
    from byov.writable import CannotWriteError

    run = tmp_path / "run"
    run.mkdir()  # not even a run folder: the write check comes first, before gathering inputs
    out = _blocked(tmp_path)
    with pytest.raises(CannotWriteError, match=rf"cannot write the report at '{out}'.*--out"):
        build_report(str(run), out_dir=out)


def _advice(message):
    import shlex
    return shlex.split(message.split("lower learning rate: `")[1].split("`")[0])


def _without_output_dir(argv):
    i = argv.index("--output_dir")
    return argv[:i] + argv[i + 2:]


def test_following_the_nan_advice_trains_past_the_step(args, tmp_path):
    """lr 2000 (3 steps an epoch) diverges after a few epochs; a resume diverges again at the
    same step, and the message's advice, followed as printed (--init_from the newest checkpoint
    whose weights still gave a finite loss, --lr 10x lower, a new --output_dir), trains a new
    run past that step."""
    import re

    from byov.training.engine import NonFiniteLossError
    from train_helpers import train_in_process

    with pytest.raises(NonFiniteLossError) as info:
        train_in_process(args("run", lr=2000.0, epochs=8))
    message = str(info.value)
    step = int(re.search(r"at step (\d+)", message).group(1))
    assert step >= 4, message  # past a checkpoint, so there are weights to start from
    with pytest.raises(NonFiniteLossError, match=rf"at step {step}\b"):  # a resume: same step
        train_in_process(args("run", lr=2000.0, epochs=8, resume="auto"))
    advice = _advice(message)
    assert advice[0] == "--init_from" and advice[2:4] == ["--lr", "200"]
    start = torch.load(advice[1], weights_only=True)["step"]
    assert start < step  # not the checkpoint whose weights gave the NaN
    new_dir = advice[advice.index("--output_dir") + 1]
    train_in_process(_without_output_dir(args("run", epochs=8)) + advice)
    ckpt = torch.load(os.path.join(new_dir, "checkpoints", "last.pth"), weights_only=True)
    assert ckpt["step"] == 24 > step  # 8 epochs x 3 steps, no NaN


def test_nan_advice_without_a_usable_checkpoint_is_a_fresh_run(args, tmp_path):
    """lr 2500 diverges at the first step after epoch 0's checkpoint: those weights produced
    the NaN, so the advice is a new run with a lower lr, and following it trains past the step."""
    import re

    from byov.training.engine import NonFiniteLossError
    from train_helpers import train_in_process

    with pytest.raises(NonFiniteLossError) as info:
        train_in_process(args("run", lr=2500.0, epochs=3))
    message = str(info.value)
    step = int(re.search(r"at step (\d+)", message).group(1))
    advice = _advice(message)
    assert "--init_from" not in advice and advice[:2] == ["--lr", "250"]
    new_dir = advice[advice.index("--output_dir") + 1]
    train_in_process(_without_output_dir(args("run", epochs=3)) + advice)
    ckpt = torch.load(os.path.join(new_dir, "checkpoints", "last.pth"), weights_only=True)
    assert ckpt["step"] == 9 > step


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_failed_write_probe_names_the_folder_not_the_probe_file():
    """/proc exists but takes no new files: the error names the user's folder (newcomer
    trial: it named `.byov_write_probe.<pid>...`, a file the user never chose)."""
    from byov.writable import CannotWriteError, probe_writable

    with pytest.raises(CannotWriteError) as info:
        probe_writable("/proc", "the metrics file", "--json")
    message = str(info.value)
    assert message.startswith("cannot write the metrics file at '/proc' (") and "--json" in message
    assert "byov_write_probe" not in message and info.value.filename == "/proc"
