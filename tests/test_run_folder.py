"""A run folder is one run: lock, dead runs, resume rules, weights-only checkpoints, epochs."""
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from byov.checkpoint import CheckpointError
from byov.folderlock import FolderLock, FolderLockedError
from train_helpers import (ROOT, epoch_summaries, load_ckpt, read_log, subprocess_env,
                           train_in_process)


def test_a_second_training_process_into_the_same_folder_refuses(args, tmp_path):
    """The folder is locked by a live process: the second run stops at once, naming the folder
    and the holder, and writes nothing (no config.yaml, log or checkpoint)."""
    run = tmp_path / "run"
    with FolderLock(str(run)):
        with pytest.raises(FolderLockedError, match=rf"{run} is in use by another training "
                                                        rf"process \(pid {os.getpid()}"):
            train_in_process(args("run"))
    assert sorted(os.listdir(run)) == [".lock"]
    train_in_process(args("run"))  # the lock died with its holder: the folder is usable again
    assert os.path.isfile(run / "checkpoints" / "last.pth")


def test_a_lock_held_by_another_process_is_seen_and_released_when_it_dies(tmp_path):
    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from byov.folderlock import "
            "FolderLock; FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "r"), ROOT],
                            stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=rf"pid {proc.pid}"):
            FolderLock(str(tmp_path / "r")).acquire()
    finally:
        proc.kill()
        proc.wait()
    FolderLock(str(tmp_path / "r")).acquire().release()  # killed holder: no stale lock


def test_a_fresh_run_never_appends_to_a_dead_runs_log(args, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 7, "train/loss": 9.0}\n')
    train_in_process(args("run"))
    records = read_log(str(run))
    assert all(r.get("train/loss") != 9.0 for r in records) and records[0]["step"] == 1
    aside = [n for n in os.listdir(run) if n.startswith("log.jsonl.abandoned-")]
    assert len(aside) == 1 and "9.0" in (run / aside[0]).read_text()  # kept, not deleted


@pytest.mark.parametrize("key, value", [("batch_size", 2), ("lr", 0.01), ("seed", 3),
                                        ("wd", 0.1), ("mask_ratio", 0.25), ("grad_clip", 0.5)])
def test_resume_with_a_changed_schedule_or_data_key_is_refused(args, tmp_path, key, value):
    train_in_process(args("run"))
    with pytest.raises(CheckpointError, match=rf"different settings that change what a training "
                                              rf"step computes:\n  "
                                              rf"{key}: checkpoint"):
        train_in_process(args("run", epochs=2, resume="auto", **{key: value}))
    assert len(epoch_summaries(read_log(str(tmp_path / "run")))) == 1


def test_epochs_may_grow_on_resume_with_a_constant_schedule_but_not_with_cosine(args, tmp_path):
    train_in_process(args("const"))
    train_in_process(args("const", epochs=2, resume="auto"))
    assert load_ckpt(str(tmp_path / "const"))["epoch"] == 1
    train_in_process(args("cos", lr_schedule="cosine"))
    with pytest.raises(CheckpointError, match=r"epochs: checkpoint 1, current 2"):
        train_in_process(args("cos", lr_schedule="cosine", epochs=2, resume="auto"))


def test_a_slimmed_checkpoint_names_what_is_missing_and_init_from_starts_a_new_run(args,
                                                                                 tmp_path):
    train_in_process(args("run"))
    ckpt = load_ckpt(str(tmp_path / "run"))
    slim = str(tmp_path / "slim.pth")
    torch.save({k: v for k, v in ckpt.items() if k not in ("optimizer", "rng")}, slim)
    with pytest.raises(CheckpointError, match=r"no 'optimizer' / 'rng' entry.*--init_from "
                                              rf"{slim}"):
        train_in_process(args("resumed", resume=slim))
    assert not (tmp_path / "resumed").exists()
    train_in_process(args("new", init_from=slim, lr=0.0))  # lr 0: weights stay as loaded
    new = load_ckpt(str(tmp_path / "new"))
    assert new["step"] == ckpt["step"] and new["epoch"] == 0  # a new run: step counted from 0
    for part in ("encoder", "decoder"):
        for k, v in ckpt[part].items():
            assert torch.equal(new[part][k], v), (part, k)


def test_an_epoch_draws_one_pair_per_train_video_with_a_partial_last_batch(args, tmp_path):
    """Released: V pairs per epoch (3 train videos, batch 2 -> steps of 2 and 1 pairs)."""
    from byov.spec import ScheduleSpec
    from byov.training.assembly import epoch_length

    def sched(batch, steps):
        return ScheduleSpec(epochs=1, batch_size=batch, steps_per_epoch=steps,
                            lr_schedule="constant", warmup_epochs=0, min_lr=0.0)
    assert epoch_length(sched(2, 0), 3, 1) == (3, 2)
    assert epoch_length(sched(4, 0), 118, 1) == (118, 30)
    assert epoch_length(sched(2, 0), 5, 2) == (5, 2)
    assert epoch_length(sched(2, 5), 3, 2) == (20, 5)
    summary = train_in_process(args("run", batch_size=2))
    assert summary["step"] == 2
    pairs = [r["train/pairs_per_s"] for r in read_log(str(tmp_path / "run")) if "train/lr" in r]
    assert len(pairs) == 2


def test_yaml_numbers_written_as_users_write_them(tmp_path):
    from utils.config import ConfigError, load_config
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-5\nwd: 5E-6\nmin_lr: ' 0.5e-7 '\n")  # YAML 1.1 reads 1e-5 as text
    cfg, _ = load_config(["--config", str(path)])
    assert (cfg.lr, cfg.wd, cfg.min_lr) == (1e-5, 5e-6, 0.5e-7)
    for bad in ("lr: fast\n", "lr: nan\n", "lr: .inf\n"):
        path.write_text(bad)
        with pytest.raises(ConfigError, match="'lr' must be float"):
            load_config(["--config", str(path)])


def test_train_help_gives_every_key_a_meaning():
    from utils.config import used_keys
    out = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=60).stdout
    flat = " ".join(out.split())
    for key in used_keys("train"):  # the others are evaluate.py's, refused by train.py
        assert re.search(rf"^  --{key}\b", out, re.M), key
    assert "training objective: byov, or AE2's tcc" in flat
    assert "learning rate (Adam) (default 1e-05)" in flat


def test_evaluate_ckpt_follows_edited_labels_and_splits(args, tmp_path):
    """Embeddings reused by evaluate.py --ckpt are keyed by the data: a removed val video and an
    edited label.pickle re-embed, and the metrics use the current labels and videos."""
    import evaluate
    from byov.data.layout import list_videos

    root = tmp_path / "data"
    shutil.copytree(_synthetic_of(args), root / "synthetic")
    train_in_process(args("run", dataset_root=str(root)))
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.pth")
    common = ["--ckpt", ckpt, "--eval_mode", "val", "--eval_task", "1", "--dataset_root",
              str(root)]
    evaluate.main(common)
    videos_json = tmp_path / "run" / "eval" / "last" / "train_videos.json"
    before = videos_json.read_text()
    train = list_videos(str(root), "synthetic", "train")
    gone = [v for v in train if v.is_ego][0]  # the train split has two ego videos
    csv = root / "synthetic" / "ego" / "train.csv"
    csv.write_text("".join(line for line in csv.read_text().splitlines(True)
                           if gone.name not in line))
    evaluate.main(common)
    assert videos_json.read_text() != before and gone.name not in videos_json.read_text()
    with open(root / "synthetic" / "label.pickle", "rb") as f:
        labels = pickle.load(f)
    first = list_videos(str(root), "synthetic", "val")[0].name
    labels[first] = np.zeros_like(np.asarray(labels[first]))  # every frame phase 0 now
    with open(root / "synthetic" / "label.pickle", "wb") as f:
        pickle.dump(labels, f)
    evaluate.main(common)
    saved = np.load(tmp_path / "run" / "eval" / "last" / "val_label.npy")
    assert (saved[:len(labels[first])] == 0).all()


def _synthetic_of(args):
    argv = args("x")
    return os.path.join(argv[argv.index("--dataset_root") + 1], "synthetic")


def test_resume_on_other_data_is_refused(args, tmp_path):
    """The checkpoint records the train/val data's content fingerprint: resuming after the data
    changed would silently continue on other data."""
    root = tmp_path / "data"
    shutil.copytree(_synthetic_of(args), root / "synthetic")
    train_in_process(args("run", dataset_root=str(root)))
    assert load_ckpt(str(tmp_path / "run"))["data_fingerprint"].startswith("blake2b:")
    copy = tmp_path / "copy"  # same bytes elsewhere: the same data, resumable
    shutil.copytree(root, copy)
    train_in_process(args("run", dataset_root=str(copy), epochs=2, resume="auto"))
    with open(copy / "synthetic" / "label.pickle", "rb") as f:
        labels = pickle.load(f)
    name = sorted(labels)[0]
    labels[name] = np.zeros_like(np.asarray(labels[name]))
    with open(copy / "synthetic" / "label.pickle", "wb") as f:
        pickle.dump(labels, f)
    with pytest.raises(CheckpointError, match=r"the data changed since .*--init_from"):
        train_in_process(args("run", dataset_root=str(copy), epochs=3, resume="auto"))
    assert load_ckpt(str(tmp_path / "run"))["epoch"] == 1


def test_a_run_starts_the_same_whether_or_not_its_feature_cache_existed(args, tmp_path):
    """Training builds a missing token cache (drawing from the global RNG); the model must not
    start differently because of it. evaluate.py then builds the test split's entries itself."""
    import evaluate

    cache = str(tmp_path / "features")
    train_in_process(args("first", features="tokens", feature_cache_dir=cache))
    train_in_process(args("second", features="tokens", feature_cache_dir=cache))
    a, b = load_ckpt(str(tmp_path / "first")), load_ckpt(str(tmp_path / "second"))
    for part in ("encoder", "decoder"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    metrics = evaluate.main(["--ckpt", str(tmp_path / "first" / "checkpoints" / "last.pth"),
                             "--eval_task", "1"])
    assert 0 <= metrics["classification_f1"]["regular"] <= 1  # test entries were extracted


def test_files_written_atomically_get_the_usual_permissions(tmp_path):
    from byov.atomic import atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_write_text(str(tmp_path / "a.yaml"), "x: 1\n")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.yaml").st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_temp_files_of_a_killed_writer_are_removed_not_those_of_a_live_one(tmp_path):
    import time

    from byov.atomic import remove_orphan_temps
    target = str(tmp_path / "v.npy")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = f"{target}.tmp.{dead.pid}.0123abcd"
    live = f"{target}.tmp.{os.getpid()}.89abcdef"
    for path in (orphan, live):
        with open(path, "wb") as f:
            f.write(b"partial")
        old = time.time() - 7200
        os.utime(path, (old, old))
    assert remove_orphan_temps(target) == [orphan]
    assert not os.path.exists(orphan) and os.path.exists(live)


def test_ae2_settings_do_not_trip_byov_only_checks():
    from utils.config import ConfigError, load_config
    cfg, _ = load_config(["--method", "tcc", "--num_frames", "4"])  # mcm_ratio 0.8 is byov's
    assert cfg.num_frames == 4
    with pytest.raises(ConfigError, match="mcm_ratio"):
        load_config(["--num_frames", "4"])
