"""best.pth is always the checkpoint the run records as chosen on val: a kill or a full disk
between writing last.pth and best.pth is repaired on `--resume auto` (rebuilt from the recorded
epoch's checkpoint) or refused naming both epochs, never carried on silently."""
import os
import shutil

import pytest
import torch

from byov import checkpoint as ckpt_lib
from byov.checkpoint import CheckpointError, CheckpointManager, load_checkpoint, verify_best
from train_helpers import load_ckpt, train_in_process


def _state(epoch, best):
    return {"config": {}, "encoder": {"w": torch.full((2,), float(epoch))}, "step": 10 * epoch,
            "epoch": epoch, "val_metrics": {"best": best}}


def _disk_full_on_best(monkeypatch):
    real = ckpt_lib._atomic_write

    def write(path, fn):
        if os.path.basename(path) == "best.pth":
            raise CheckpointError(f"could not write checkpoint {path} (OSError: [Errno 28] No "
                                  f"space left on device)")
        return real(path, fn)
    monkeypatch.setattr(ckpt_lib, "_atomic_write", write)


def test_disk_full_between_last_and_best_is_repaired_on_resume(tmp_path, monkeypatch, capsys):
    manager = CheckpointManager(str(tmp_path), save_every=0)
    manager.save(_state(0, 0.5), 0, is_best=True)
    with monkeypatch.context() as m:
        _disk_full_on_best(m)
        with pytest.raises(CheckpointError, match="No space left"):
            manager.save(_state(1, 0.7), 1, is_best=True)
    last = load_checkpoint(manager.last_path)
    assert last["val_metrics"]["best_record"] == {"epoch": 1, "step": 10}
    assert load_checkpoint(manager.best_path)["epoch"] == 0  # stale: the run's best is epoch 1
    best, record = verify_best(str(tmp_path), last, manager.last_path)
    assert (best, record) == (0.7, {"epoch": 1, "step": 10})
    assert load_checkpoint(manager.best_path)["epoch"] == 1
    assert "rebuilt it from" in capsys.readouterr().out


def test_stale_best_without_its_checkpoint_is_refused_naming_both_epochs(tmp_path, monkeypatch):
    manager = CheckpointManager(str(tmp_path), save_every=0)
    manager.save(_state(0, 0.5), 0, is_best=True)
    with monkeypatch.context() as m:
        _disk_full_on_best(m)
        with pytest.raises(CheckpointError):
            manager.save(_state(1, 0.7), 1, is_best=True)
    manager.save(_state(2, 0.7), 2)  # a later epoch (not best) overwrote last.pth
    last = load_checkpoint(manager.last_path)
    assert last["val_metrics"]["best_record"] == {"epoch": 1, "step": 10}  # carried on
    with pytest.raises(CheckpointError, match=r"holds epoch 0 \(step 0\).*records epoch 1 "
                                              r"\(step 10\).*Move .*best.pth aside"):
        verify_best(str(tmp_path), last, manager.last_path)
    # following the advice: best.pth moved aside -> the run goes on without a best so far
    os.replace(manager.best_path, str(tmp_path / "best.old"))
    assert verify_best(str(tmp_path), last, manager.last_path) == (None, None)


def test_stale_best_is_rebuilt_from_the_recorded_epoch_file(tmp_path):
    manager = CheckpointManager(str(tmp_path), save_every=1)
    manager.save(_state(0, 0.5), 0, is_best=True)
    manager.save(_state(1, 0.7), 1, is_best=True)
    manager.save(_state(2, 0.7), 2)
    shutil.copyfile(manager.epoch_path(0), manager.best_path)  # best.pth of the wrong epoch
    last = load_checkpoint(manager.last_path)
    assert verify_best(str(tmp_path), last, manager.last_path)[1] == {"epoch": 1, "step": 10}
    assert load_checkpoint(manager.best_path)["epoch"] == 1


def test_resume_auto_repairs_a_stale_best_pth_of_a_real_run(args, tmp_path, capsys):
    run = str(tmp_path / "run")
    train_in_process(args("run", epochs=2, ds_every_n_epoch=1, save_every=1))
    last = load_ckpt(run)
    record = last["val_metrics"]["best_record"]
    assert record is not None and last["val_metrics"]["best"] is not None
    best = load_ckpt(run, "best.pth")
    assert (best["epoch"], best["step"]) == (record["epoch"], record["step"])
    # the file of the other epoch in best.pth's place (what a kill mid-update leaves)
    other = 1 - record["epoch"]
    shutil.copyfile(os.path.join(run, "checkpoints", f"epoch_{other:04d}.pth"),
                    os.path.join(run, "checkpoints", "best.pth"))
    capsys.readouterr()
    train_in_process(args("run", epochs=3, ds_every_n_epoch=1, save_every=1, resume="auto"))
    assert "rebuilt it from" in capsys.readouterr().out
    last = load_ckpt(run)
    record = last["val_metrics"]["best_record"]
    best = load_ckpt(run, "best.pth")
    assert (best["epoch"], best["step"]) == (record["epoch"], record["step"])
