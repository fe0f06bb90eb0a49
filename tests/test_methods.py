"""AE2's objectives as training methods: each trains from its own sampler, resumes, evaluates."""
import os

import numpy as np
import pytest
import torch

from byov.methods import AE2_METHODS
from train_helpers import (epoch_summaries, load_ckpt, read_log, tensors_differing,
                           train_in_process)

# AE2's embedder at 32 px (layer3 2x2, pool kernel 2), random init: a few steps in seconds.
AE2_TINY = {"input_size": 32, "embedding_size": 16, "num_frames": 4, "frame_stride": 3,
            "dtw_shuffle_num": 2, "pretrained": False, "freeze_base": False, "batch_size": 2,
            "steps_per_epoch": 1, "precision": "fp32"}


def ae2_args(args, name, method, **over):
    return args(name, method=method, **{**AE2_TINY, **over})


@pytest.mark.parametrize("method", AE2_METHODS)
def test_each_ae2_objective_trains_from_its_sampler(args, tmp_path, method):
    summary = train_in_process(ae2_args(args, method, method))
    ckpt = load_ckpt(str(tmp_path / method))
    assert ckpt["config"]["method"] == method and "decoder" not in ckpt
    assert any(k.startswith("trunk.layer3") for k in ckpt["encoder"])  # the fine-tuned trunk
    assert np.isfinite(summary["train/loss"]) and np.isfinite(summary["val/loss"])
    if method == "dtw_contrastive":
        assert "train/hinge" in summary


def test_ae2_batch_is_what_the_released_sampler_loads(synthetic_root):
    """inputs (2, 2T, 3, S, S) in [-1, 1] ordered (context, step); steps within [offset, L)."""
    from byov.data.layout import list_videos
    from byov.methods.ae2_method import AE2FrameSource, AE2PairDataset

    root = os.path.dirname(synthetic_root)
    videos = list_videos(root, "synthetic", "train")
    source = AE2FrameSource(root, "synthetic", 32)
    ds = AE2PairDataset(videos, 4, source, seed=3, frame_stride=3, num_positives=2)
    item = ds[0]
    assert item["inputs"].shape == (2, 8, 3, 32, 32)
    assert item["inputs"].min() >= -1 and item["inputs"].max() <= 1
    assert item["pos_steps"].shape == (2, 2) and item["seq_lens"].dtype == torch.int64
    assert (item["steps"] >= 1).all()  # random_offset 1: frame 0 is never a main step
    again = AE2PairDataset(videos, 4, source, seed=3, frame_stride=3, num_positives=2)[0]
    assert torch.equal(item["inputs"], again["inputs"])  # a pure function of (seed, epoch, i)
    # the frame loaded for the context of step s is max(s - stride, 0) (clamped)
    v = videos[0]
    frames = source.load(v, np.array([0, 5]))
    assert frames.shape == (2, 3, 32, 32)


def test_ae2_resume_continues_exactly(args, tmp_path):
    """Two epochs at once == one epoch, then --resume auto for the second (bitwise)."""
    full = ae2_args(args, "full", "dtw_contrastive", epochs=2, cyclic="on")
    train_in_process(full)
    train_in_process(ae2_args(args, "split", "dtw_contrastive", epochs=1, cyclic="on"))
    train_in_process(ae2_args(args, "split", "dtw_contrastive", epochs=2, cyclic="on",
                              resume="auto"))
    a, b = load_ckpt(str(tmp_path / "full")), load_ckpt(str(tmp_path / "split"))
    assert not tensors_differing(a["encoder"], b["encoder"])
    assert len(epoch_summaries(read_log(str(tmp_path / "split")))) == 2


def test_evaluate_ckpt_embeds_with_an_ae2_method(args, tmp_path):
    import evaluate

    train_in_process(ae2_args(args, "tcc", "tcc"))
    ckpt = str(tmp_path / "tcc" / "checkpoints" / "last.pth")
    metrics = evaluate.main(["--ckpt", ckpt, "--eval_mode", "val", "--eval_task", "12"])
    embeds = np.load(tmp_path / "tcc" / "eval" / "last" / "val_embeds.npy")
    assert embeds.shape[1] == 16  # AE2's embedding, not the backbone's features
    assert 0 <= metrics["classification_f1"]["regular"] <= 1
