"""Two-process DDP on the CPU (gloo) through torchrun: the run completes, rank 0 alone writes the
run folder, and an epoch is ceil(V / (batch * world)) steps (DECISIONS 8, STYLE practice 6)."""
import math
import os

from train_helpers import (CHECKPOINT_KEYS, epoch_summaries, load_ckpt, read_log, train_args,
                           train_cli)

TRAIN_VIDEOS, WORLD = 3, 2


def test_two_process_gloo_run(synthetic_root, tiny_clip_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    args = train_args(synthetic_root, tiny_clip_dir, run_dir, str(tmp_path / "frame_cache"),
                      epochs=1, ds_every_n_epoch=1, log_every=1)
    proc = train_cli(args, timeout=180, launcher=["-m", "torch.distributed.run", "--standalone",
                                                  f"--nproc_per_node={WORLD}"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"world size {WORLD}" in proc.stdout

    steps = math.ceil(TRAIN_VIDEOS / (1 * WORLD))
    records = read_log(run_dir)
    # one line per step and one epoch summary: a second writer would have duplicated them
    assert [r["step"] for r in records if "train/lr" in r] == list(range(1, steps + 1))
    assert [r["step"] for r in epoch_summaries(records)] == [steps]
    assert "val/val_score" in epoch_summaries(records)[0]  # rank 0 evaluated while rank 1 waited
    assert len(os.listdir(os.path.join(run_dir, "tb"))) == 1
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == [
        "best.pth", "epoch_0000.pth", "last.pth"]  # no temp files left by a second writer
    assert sorted(os.listdir(run_dir)) == [".lock", "checkpoints", "command.jsonl", "config.yaml",
                                           "eval", "log.jsonl", "tb"]
    ckpt = load_ckpt(run_dir)
    assert set(ckpt) == CHECKPOINT_KEYS
    assert (ckpt["step"], ckpt["epoch"]) == (steps, 0)
    # saved from the unwrapped model: no DDP 'module.' prefixes
    assert not any(k.startswith("module.") for k in ckpt["encoder"])
