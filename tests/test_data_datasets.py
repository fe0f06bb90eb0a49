"""FrameSource, PairDataset and VideoFrames on the tiny synthetic dataset."""
import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from byov.data.datasets import FrameSource, PairDataset, VideoFrames
from byov.data.frame_cache import read_frames
from byov.data.layout import DataError, Video, list_videos, load_labels
from byov.data.preprocess import preprocess_frames

S, T = 32, 8


@pytest.fixture
def setup(synthetic_root, tmp_path):
    root = os.path.dirname(synthetic_root)
    source = FrameSource(root, "synthetic", "clip", S, frame_cache_dir=str(tmp_path / "cache"))
    return root, source, list_videos(root, "synthetic", "train")


def _stub_videos():
    return [Video(path=f"/d/{v}/{v}_{k}.mp4", name=f"{v}_{k}", view=v, split="train",
                  num_frames=n)
            for k, (v, n) in enumerate([("ego", 40), ("ego", 9), ("exo", 60), ("exo", 25)])]


class TokenSource:
    """Stand-in for a feature cache: (len, N=5, d=4) tokens that encode the frame index."""

    def load(self, video, indices):
        return torch.as_tensor(indices, dtype=torch.float32)[:, None, None].expand(-1, 5, 4)


def test_frame_source_load_and_pickle(setup, tmp_path):
    root, source, videos = setup
    idx = np.array([3, 0, 3, 7])
    x = source.load(videos[0], idx)
    assert x.shape == (4, 3, S, S) and x.dtype == torch.float32
    cache = tmp_path / "cache" / "synthetic" / "ego" / f"{videos[0].name}.h5"
    expect = preprocess_frames(read_frames(str(cache), idx), "clip", S)
    torch.testing.assert_close(x, expect, rtol=0, atol=0)
    clone = pickle.loads(pickle.dumps(source))  # DataLoader workers get a copy
    torch.testing.assert_close(clone.load(videos[0], idx), x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown backbone"):
        FrameSource(root, "synthetic", "clip_l", S)


def test_pair_dataset_items(setup):
    _, source, videos = setup
    ds = PairDataset(videos, T, source, pairing="merged", seed=3)
    assert len(ds) == len(videos) and len(PairDataset(videos, T, source, length=7)) == 7
    item = ds[1]
    assert item["inputs"].shape == (2, T, 3, S, S) and item["inputs"].dtype == torch.float32
    assert item["indices"].shape == (2, T) and item["indices"].dtype == torch.int64
    assert item["video_idx"].shape == (2,) and item["video_idx"].dtype == torch.int64
    assert item["is_ego"].dtype == torch.bool
    for slot in range(2):
        video = videos[int(item["video_idx"][slot])]
        assert bool(item["is_ego"][slot]) == video.is_ego
        torch.testing.assert_close(item["inputs"][slot],
                                   source.load(video, item["indices"][slot].numpy()))
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_pair_dataset_deterministic_per_seed_epoch_index():
    videos = _stub_videos()
    a = PairDataset(videos, T, TokenSource(), seed=5, length=50)
    b = PairDataset(videos, T, TokenSource(), seed=5, length=50)
    for i in (0, 7, 49):
        x, y = a[i], b[i]
        for key in x:
            assert torch.equal(x[key], y[key])
    draws = lambda d: [(tuple(d[i]["video_idx"].tolist()), tuple(d[i]["indices"][0].tolist()))
                       for i in range(50)]
    first = draws(a)
    assert draws(a) == first  # re-reading an item gives the same draw
    a.set_epoch(1)
    assert draws(a) != first  # a new epoch draws anew
    a.set_epoch(0)
    assert draws(a) == first
    assert draws(PairDataset(videos, T, TokenSource(), seed=6, length=50)) != first
    assert len({i for i, _ in first}) > 1 and len({tuple(ix) for _, ix in first}) > 1


def test_pluggable_source_and_ego_exo(synthetic_root):
    videos = list_videos(os.path.dirname(synthetic_root), "synthetic", "train")
    ds = PairDataset(videos, T, TokenSource(), pairing="ego_exo", seed=0, length=20)
    for i in range(20):
        item = ds[i]
        assert item["inputs"].shape == (2, T, 5, 4)
        assert item["is_ego"].tolist() == [True, False]
        assert torch.equal(item["inputs"][:, :, 0, 0], item["indices"].float())
    with pytest.raises(DataError, match="no exo video"):
        PairDataset(videos[:2], T, TokenSource(), pairing="ego_exo")


def test_dataloader_workers_match_single_process(setup):
    _, source, videos = setup
    ds = PairDataset(videos, T, source, seed=1, length=4)
    ds.set_epoch(2)
    single = list(DataLoader(ds, batch_size=2, num_workers=0))
    multi = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert single[0]["inputs"].shape == (2, 2, T, 3, S, S)
    for x, y in zip(single, multi):
        for key in x:
            assert torch.equal(x[key], y[key])


def test_video_frames_chunks(setup):
    root, source, _ = setup
    videos = list_videos(root, "synthetic", "test")
    vf = VideoFrames(videos, load_labels(root, "synthetic"), source)
    assert len(vf) == 2
    meta = vf[1]
    assert meta["name"] == "exo_test_000" and meta["view"] == "exo" and not meta["is_ego"]
    L = meta["num_frames"]
    assert meta["labels"].shape == (L,) and meta["labels"].dtype == np.int64
    chunks = list(vf.iter_chunks(1, 7))
    assert [len(c) for c in chunks] == [7] * (L // 7) + ([L % 7] if L % 7 else [])
    torch.testing.assert_close(torch.cat(chunks), source.load(videos[1], np.arange(L)),
                               rtol=0, atol=0)
    assert VideoFrames(videos, None, source)[0]["labels"] is None
    with pytest.raises(DataError, match="no entry"):
        VideoFrames(videos, {}, source)
