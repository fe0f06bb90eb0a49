"""evaluate.py end to end, run as a user would (subprocess, project root as cwd)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, ROOT

from byov.eval import SplitData, save_split

PY = sys.executable  # the venv's python: the tests run inside it


def run(*args):
    return subprocess.run([PY, "evaluate.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def write_fixture_folder(directory):
    data = np.load(os.path.join(FIXTURES, "eval_parity.npz"))
    for src, dst in (("train", "train"), ("val", "test")):
        videos = [{"name": os.path.splitext(os.path.basename(p))[0],
                   "view": os.path.basename(os.path.dirname(p)), "num_frames": int(n)}
                  for p, n in zip(data[f"{src}_paths"], data[f"{src}_video_len"])]
        save_split(directory, dst, SplitData(data[f"{src}_embeds"], data[f"{src}_label"],
                                             videos, dst))


def test_embeddings_folder_to_json(tmp_path):
    folder = tmp_path / "emb"
    write_fixture_folder(str(folder))
    out = tmp_path / "out.json"
    proc = run("--embeddings", str(folder), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(FIXTURES, "eval_parity.expected.json")) as f:
        expected = json.load(f)
    with open(out) as f:
        got = json.load(f)
    for key, want in expected.items():
        if isinstance(want, dict):
            for s, v in want.items():
                assert got[key][s] == pytest.approx(v, abs=1e-9)
        else:
            assert got[key] == pytest.approx(want, abs=1e-6)
    assert "| Phase classification, F1 (x100) | 81.18 | 50.14 | 49.08 |" in proc.stdout
    meta = json.loads((folder / "metrics.json").read_text())["meta"]
    assert meta["eval_split"] == "test" and meta["metadata"].endswith("test_videos.json")
    assert "Kendall's tau" in (folder / "metrics.md").read_text()
    # no --dataset: the folder is labelled as no dataset, not as the config's default
    assert meta["dataset"] is None
    assert (folder / "metrics.md").read_text().startswith("# AE2 evaluation: embeddings\n")


def test_missing_metadata_and_bad_task_are_clear_errors(tmp_path):
    folder = tmp_path / "emb"
    write_fixture_folder(str(folder))
    os.remove(folder / "test_videos.json")
    proc = run("--embeddings", str(folder))
    assert proc.returncode == 2
    assert "test_videos.json does not exist" in proc.stderr
    assert "--dataset_root/--dataset" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("--embeddings", str(folder), "--eval_task", "19")
    assert proc.returncode == 2 and "'9'" in proc.stderr


def test_released_folder_with_val_files_as_test(tmp_path, synthetic_root):
    from byov.data.layout import list_videos, load_labels
    root, dataset = os.path.dirname(synthetic_root), "synthetic"
    labels = load_labels(root, dataset)
    folder = tmp_path / "ae2_eval"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, prefix in (("train", "train"), ("test", "val")):  # AE2: val_* = test split
        videos = list_videos(root, dataset, split)
        y = np.concatenate([labels[v.name] for v in videos])
        x = rng.normal(size=(len(y), 8)) + 2 * np.eye(8)[y]
        np.save(folder / f"{prefix}_embeds.npy", x.astype(np.float32))
        np.save(folder / f"{prefix}_label.npy", y)
    out = tmp_path / "m.json"
    proc = run("--embeddings", str(folder), "--val_files_are_test", "--dataset", dataset,
               "--dataset_root", root, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert set(got["classification_f1"]) == {"regular", "ego2exo", "exo2ego"}
    assert all(v is not None for v in got["retrieval_map10"].values())
    meta = json.loads((folder / "metrics.json").read_text())["meta"]
    assert meta["dataset"] == dataset  # named with --dataset
    assert meta["files"].startswith("train_*, val_* (val_* = test split)")
    assert "dataset synthetic" in meta["metadata"] and "(test)" in meta["metadata"]
    # val_* with the val split's metadata would not line up: --eval_mode val is refused
    proc = run("--embeddings", str(folder), "--val_files_are_test", "--dataset", dataset,
               "--dataset_root", root, "--eval_mode", "val")
    assert proc.returncode == 2 and "needs --eval_mode test" in proc.stderr


def test_checkpoint_without_a_model(tmp_path):
    import torch
    ckpt = tmp_path / "run" / "checkpoints" / "last.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save({"format_version": 1, "config": {}}, ckpt)
    proc = run("--ckpt", str(ckpt))
    assert proc.returncode == 2
    assert "no model in this checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("--ckpt", str(ckpt), "--embeddings", str(tmp_path))
    assert proc.returncode == 2 and "exactly one of" in proc.stderr


def test_default_embed_dir():
    sys.path.insert(0, ROOT)
    from evaluate import default_embed_dir
    assert default_embed_dir("/r/run1/checkpoints/epoch_0010.pth") == "/r/run1/eval/epoch_0010"
    assert default_embed_dir("/r/model.pth") == "/r/eval/model"


def test_a_second_evaluation_into_a_busy_embed_dir_is_refused(tmp_path, synthetic_root):
    """Two evaluations into one --embed_dir would leave one model's key over the other's
    embeddings (newcomer trial): the second refuses at once, naming the folder and the flag."""
    from byov.folderlock import FolderLock

    root, folder = os.path.dirname(synthetic_root), str(tmp_path / "eval")
    args = ("--baseline", "time", "--dataset", "synthetic", "--dataset_root", root,
            "--embed_dir", folder)
    with FolderLock(folder, "embedding folder", "evaluation", "--embed_dir"):  # the first one
        proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    assert f"embedding folder {folder} is in use by another evaluation (pid {os.getpid()}" \
        in proc.stderr and "choose another --embed_dir" in proc.stderr
    assert not os.path.exists(os.path.join(folder, "train_embeds.npy"))
    proc = run(*args)  # once it is free
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(os.path.join(folder, "metrics.json"))


def test_scoring_a_folder_another_evaluation_is_writing_is_refused(tmp_path):
    """`--embeddings E` while an `evaluate.py --ckpt` re-embeds E would read the old splits and
    write their metrics beside the new ones (newcomer trial): it waits for no one, it refuses."""
    from byov.folderlock import FolderLock

    folder = tmp_path / "emb"
    write_fixture_folder(str(folder))
    with FolderLock(str(folder), "embedding folder", "evaluation", "--embed_dir"):
        proc = run("--embeddings", str(folder))
    assert proc.returncode == 2 and "is in use by another evaluation" in proc.stderr
    assert not (folder / "metrics.json").exists()
