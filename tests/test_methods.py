"""AE2's objectives as training methods: each trains from its own sampler, resumes exactly and
embeds for evaluation through the same loop, checkpoint and evaluate.py as BYOV."""
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
def test_each_ae2_objective_trains_resumes_exactly_and_embeds(args, tmp_path, method):
    """Two epochs at once == one epoch, then --resume auto for the second (bitwise), for every
    objective; the checkpoint then embeds whole videos with the method's own embedder."""
    from train_helpers import embed_splits, method_of

    extra = {"cyclic": "on", "vava_step_prior": True}  # every draw and step-dependent term used
    full = train_in_process(ae2_args(args, "full", method, epochs=2, **extra))
    train_in_process(ae2_args(args, "split", method, epochs=1, **extra))
    train_in_process(ae2_args(args, "split", method, epochs=2, resume="auto", **extra))
    a, b = load_ckpt(str(tmp_path / "full")), load_ckpt(str(tmp_path / "split"))
    assert not tensors_differing(a["encoder"], b["encoder"])
    assert a["config"]["method"] == method and "decoder" not in a
    assert any(k.startswith("trunk.layer3") for k in a["encoder"])  # the fine-tuned trunk
    assert len(epoch_summaries(read_log(str(tmp_path / "split")))) == 2
    assert np.isfinite(full["train/loss"]) and np.isfinite(full["val/loss"])
    if method == "dtw_contrastive":
        assert "train/hinge" in full
    m = method_of(a["config"], pretrained=False)
    m.load_state_entries(a)
    val = embed_splits(m.eval(), a["config"], ("val",), progress=False)["val"]
    assert val.embeds.shape == (sum(v["num_frames"] for v in val.videos), 16)


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
    # frame 2t is the context max(s - 3, 0) of step s = steps[t], frame 2t + 1 the step itself
    ds.set_epoch(0)
    rng = np.random.default_rng([3, 0, 0])
    from byov.data.sampling import draw_pair
    first = videos[draw_pair(videos, "merged", rng)[0]]
    steps = item["steps"][0].numpy()
    want = source.load(first, np.stack([np.maximum(steps - 3, 0), steps], 1).reshape(-1))
    assert torch.equal(item["inputs"][0], want)


def test_bbox_confidences_weight_the_positive_steps(synthetic_root, tmp_path):
    """With det_bounding_box.pickle, positives are drawn only among steps with a detection."""
    import pickle
    import shutil

    from byov.data.layout import list_videos
    from byov.methods.ae2_method import (AE2FrameSource, AE2PairDataset,
                                         load_bbox_confidences)

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root / "synthetic")
    videos = list_videos(str(root), "synthetic", "train")
    boxes = {}
    for v in videos:
        b = np.zeros((v.num_frames, 4, 10))
        b[:, :, 4] = 0.9
        b[2::5, :, 4] = 0.0  # no detection on frames 2, 7, 12, ...
        boxes[f"{v.view}_{v.name}"] = b
    with open(root / "synthetic" / "det_bounding_box.pickle", "wb") as f:
        pickle.dump(boxes, f)
    conf = load_bbox_confidences(str(root), "synthetic")
    ds = AE2PairDataset(videos, 4, AE2FrameSource(str(root), "synthetic", 32), seed=0,
                        frame_stride=3, num_positives=2, confidences=conf)
    avoided = 0
    for i in range(12):
        item = ds[i]
        chosen = torch.gather(item["steps"], 1, item["pos_steps"])
        assert (chosen % 5 != 2).all()  # never a step without a detection
        avoided += int((item["steps"] % 5 == 2).sum())
    assert avoided > 0  # steps without a detection were sampled, and never chosen


def test_evaluate_ckpt_embeds_with_an_ae2_method(args, tmp_path):
    import evaluate

    train_in_process(ae2_args(args, "tcc", "tcc"))
    ckpt = str(tmp_path / "tcc" / "checkpoints" / "last.pth")
    metrics = evaluate.main(["--ckpt", ckpt, "--eval_mode", "val", "--eval_task", "12"])
    embeds = np.load(tmp_path / "tcc" / "eval" / "last" / "val_embeds.npy")
    assert embeds.shape[1] == 16  # AE2's embedding, not the backbone's features
    assert 0 <= metrics["classification_f1"]["regular"] <= 1
