import argparse
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

from byov import checkpoint as ckpt
from byov.checkpoint import (ARCH_KEYS, CheckpointError, CheckpointManager, capture_rng_state,
                             check_compatible, check_plain, load_checkpoint, load_state_strict,
                             resolve_resume, restore_rng_state, save_checkpoint)


def _state(step=7, **extra):
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"format_version": ckpt.FORMAT_VERSION, "config": {"n_layers": 3, "lr": 1e-5},
             "encoder": model.state_dict(), "decoder": nn.Linear(2, 2).state_dict(),
             "optimizer": opt.state_dict(), "step": step, "epoch": 1, "rng": capture_rng_state(),
             "val_metrics": {"val_score": 0.5}}
    state.update(extra)
    return state


def _draws():
    # gauss / randn read the cached second normal of the pair, so that part of the state counts
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(3).tolist())


def test_rng_restore_reproduces_draws_after_weights_only_roundtrip(tmp_path):
    random.gauss(0, 1)  # leaves a cached gaussian in the python state
    np.random.randn()
    state = capture_rng_state()
    expected = _draws()
    path = str(tmp_path / "c.pth")
    save_checkpoint(path, _state(rng=state))
    loaded = torch.load(path, weights_only=True)["rng"]  # the loader check_plain promises
    _draws()  # move every generator on
    restore_rng_state(loaded)
    assert _draws() == expected


def test_rng_restore_rejects_malformed_state():
    with pytest.raises(CheckpointError, match="malformed rng state"):
        restore_rng_state({"python": [3]})


def test_save_load_roundtrip(tmp_path):
    path = str(tmp_path / "deep" / "dir" / "c.pth")  # folders are created
    state = _state()
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == state["config"]
    assert torch.equal(loaded["encoder"]["weight"], state["encoder"]["weight"])
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert os.listdir(os.path.dirname(path)) == ["c.pth"]  # no temp file left


def test_check_plain_names_offending_key(tmp_path):
    bad = _state(config={"args": argparse.Namespace(lr=1)})
    with pytest.raises(CheckpointError, match=r"checkpoint\['config'\]\['args'\].*Namespace"):
        check_plain(bad)
    with pytest.raises(CheckpointError, match=r"\['val_metrics'\]\['f1'\].*\.item\(\)"):
        save_checkpoint(str(tmp_path / "c.pth"), _state(val_metrics={"f1": np.float64(0.3)}))
    assert not (tmp_path / "c.pth").exists()
    check_plain({"a": [1, 2.0, None, True, "s", (torch.zeros(1),)]})  # all plain: no error


def test_save_rejects_unknown_and_missing_keys(tmp_path):
    with pytest.raises(CheckpointError, match=r"unknown keys \['encodr'\]"):
        save_checkpoint(str(tmp_path / "c.pth"), {**_state(), "encodr": {}})
    state = _state()
    del state["epoch"]
    with pytest.raises(CheckpointError, match=r"missing keys \['epoch'\]"):
        save_checkpoint(str(tmp_path / "c.pth"), state)


def test_failed_save_keeps_previous_file_and_no_temp(tmp_path, monkeypatch):
    manager = CheckpointManager(str(tmp_path), save_every=1)
    manager.save(_state(step=1), epoch=0)
    before = (tmp_path / "checkpoints" / "last.pth").read_bytes()

    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        real_save(obj, f)
        f.truncate(100)  # a partial file, as a preempted job would leave
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(CheckpointError, match="last.pth.*No space left.*unchanged"):
        manager.save(_state(step=2), epoch=1)
    monkeypatch.undo()
    assert (tmp_path / "checkpoints" / "last.pth").read_bytes() == before
    assert load_checkpoint(manager.last_path)["step"] == 1
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch_0000.pth", "last.pth"]


def test_load_missing_and_corrupt(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="nope.pth is not found"):
        load_checkpoint(missing)
    corrupt = tmp_path / "bad.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pth is corrupt"):
        load_checkpoint(str(corrupt))
    good = str(tmp_path / "good.pth")
    save_checkpoint(good, _state())
    truncated = tmp_path / "trunc.pth"
    truncated.write_bytes(open(good, "rb").read()[:300])
    with pytest.raises(CheckpointError, match="trunc.pth is corrupt"):
        load_checkpoint(str(truncated))


def test_load_rejects_pickled_objects_and_foreign_checkpoints(tmp_path):
    pickled = str(tmp_path / "mae.pth")
    torch.save({"model": {}, "args": argparse.Namespace(lr=1)}, pickled)
    with pytest.raises(CheckpointError, match="mae.pth holds objects other than tensors and plain "
                                              "data \\(argparse.Namespace\\)"):
        load_checkpoint(pickled)
    foreign = str(tmp_path / "foreign.pth")
    torch.save({"state_dict": {}, "epoch": 3}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pth has format_version None"):
        load_checkpoint(foreign)
    no_encoder = str(tmp_path / "noenc.pth")
    torch.save({"format_version": 1, "config": {}, "step": 0, "epoch": 0}, no_encoder)
    with pytest.raises(CheckpointError, match=r"noenc.pth lacks the required keys \['encoder'\]"):
        load_checkpoint(no_encoder)


def test_resolve_resume(tmp_path):
    run = str(tmp_path / "run")
    assert resolve_resume("", run) is None
    assert resolve_resume("auto", run) is None  # fresh run: auto starts fresh
    manager = CheckpointManager(run, save_every=0)
    manager.save(_state(), epoch=0)
    assert resolve_resume("auto", run) == manager.last_path
    assert resolve_resume(manager.last_path, run) == manager.last_path
    with pytest.raises(CheckpointError, match="missing.pth: no such checkpoint file"):
        resolve_resume(str(tmp_path / "missing.pth"), run)
    with pytest.raises(CheckpointError, match="did you mean .*last.pth"):
        resolve_resume(run, run)  # a run folder, not a file


def test_check_compatible_lists_each_difference():
    saved = {k: 1 for k in ARCH_KEYS}
    saved.update(n_layers=12, compat_released_decoder=True, lr=1.0)
    current = dict(saved, n_layers=3, compat_released_decoder=False, hidden_dim=512, lr=2.0)
    with pytest.raises(CheckpointError) as err:
        check_compatible(saved, current, where="ck.pth")
    msg = str(err.value)
    assert "ck.pth" in msg and "lr" not in msg  # lr is not architecture
    assert "n_layers: checkpoint 12, current 3" in msg
    assert "hidden_dim: checkpoint 1, current 512" in msg
    assert "--n_layers 12" in msg and "--compat_released_decoder" in msg
    check_compatible(saved, dict(saved, lr=5.0))  # only non-arch keys differ: fine


def _blocks(depth, width=4):
    model = nn.Module()
    model.pos_embed = nn.Parameter(torch.zeros(1, 5, width))
    model.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
    return model


def test_load_state_strict_explains_depth_and_shape_mismatch():
    with pytest.raises(CheckpointError) as err:
        load_state_strict(_blocks(3), _blocks(12).state_dict(), "encoder", where="x.pth")
    msg = str(err.value)
    assert ("checkpoint has 12 encoder blocks ('blocks'), model has 3 (n_layers 3 in the config "
            "used)") in msg and "--n_layers" not in msg
    assert "unexpected in the checkpoint (18)" in msg and "x.pth" in msg
    with pytest.raises(CheckpointError, match=r"(?s)model has 12 \(n_layers_dec 12 in the config "
                                              r"used\).*missing from the checkpoint \(18\)"):
        load_state_strict(_blocks(12), _blocks(3).state_dict(), "decoder")
    with pytest.raises(CheckpointError, match=r"shape of pos_embed: checkpoint \(1, 5, 8\)"):
        load_state_strict(_blocks(2, width=4), _blocks(2, width=8).state_dict(), "encoder")
    target, source = _blocks(2), _blocks(2)
    load_state_strict(target, source.state_dict(), "encoder")
    assert torch.equal(target.blocks[1].weight, source.blocks[1].weight)


def test_load_state_strict_flags_ddp_prefix():
    wrapped = {f"module.{k}": v for k, v in _blocks(1).state_dict().items()}
    with pytest.raises(CheckpointError, match="DDP-wrapped"):
        load_state_strict(_blocks(1), wrapped, "encoder")


def test_manager_file_names(tmp_path):
    manager = CheckpointManager(str(tmp_path), save_every=2)
    written = [manager.save(_state(step=e), epoch=e, is_best=(e == 2)) for e in range(4)]
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["best.pth", "epoch_0001.pth", "epoch_0003.pth", "last.pth"]
    assert [len(w) for w in written] == [1, 2, 2, 2]
    assert load_checkpoint(manager.best_path)["step"] == 2
    assert load_checkpoint(manager.epoch_path(1))["step"] == 1
    assert load_checkpoint(manager.last_path)["step"] == 3
    assert not os.path.islink(manager.best_path)


def test_manager_keep_last_epoch_only_and_bad_save_every(tmp_path):
    manager = CheckpointManager(str(tmp_path), save_every=1, keep_all=False)
    for e in range(3):
        manager.save(_state(step=e), epoch=e)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch_0002.pth", "last.pth"]
    with pytest.raises(ValueError, match="save_every"):
        CheckpointManager(str(tmp_path), save_every=-1)
