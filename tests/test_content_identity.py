"""A video's identity is its whole content: a same-size repair anywhere rebuilds its caches, a
`cp -r` copy keeps them, and the whole-file hash is read once per file version (hash memo)."""
import json
import os
import shutil

import numpy as np
import pytest

from byov.data import fingerprint as fp_mod
from byov.data import hash_memo
from byov.data.fingerprint import file_fingerprint
from byov.data.frame_cache import ensure_frame_cache, frame_cache_path, is_valid_cache, read_frames
from byov.data.layout import list_videos
from byov.data.video import decode_frames
from data_helpers import make_csv_dataset, write_mp4

KIB = 1024
OLD_BLOCK = 64 * KIB  # the previous fingerprint read only three blocks of this size


def _outside_old_blocks(size):
    """An offset outside the three 64 KiB blocks (start, middle, end) the old fingerprint read."""
    middle = (size - OLD_BLOCK) // 2
    at = OLD_BLOCK + (middle - OLD_BLOCK) // 2
    assert OLD_BLOCK <= at < middle
    return at


def _repair_in_place(path, at):
    """Change one byte at `at` without changing the size (as a repair tool writing in place)."""
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x55]))


@pytest.fixture
def memo(tmp_path, monkeypatch):
    folder = tmp_path / "memo"
    monkeypatch.setenv(hash_memo.ENV_VAR, str(folder))
    monkeypatch.setattr(hash_memo, "_MEMORY", {})
    return folder


def _count_hashing(monkeypatch):
    calls = []
    real = fp_mod._fingerprint_of

    def counting(f):
        calls.append(f.name)
        return real(f)
    monkeypatch.setattr(fp_mod, "_fingerprint_of", counting)
    return calls


def test_same_size_edit_outside_the_old_sampled_blocks_changes_the_fingerprint(tmp_path, memo):
    size = 10 * OLD_BLOCK + 7
    path = tmp_path / "v.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    before = file_fingerprint(str(path))
    st = os.stat(path)
    _repair_in_place(path, _outside_old_blocks(size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the mtime set back
    assert os.path.getsize(path) == size
    assert file_fingerprint(str(path)) != before


def test_memo_hashes_once_per_version_and_survives_processes(tmp_path, memo, monkeypatch):
    calls = _count_hashing(monkeypatch)
    path = tmp_path / "v.bin"
    path.write_bytes(b"x" * 300_000)
    first = file_fingerprint(str(path))
    assert file_fingerprint(str(path)) == first and len(calls) == 1
    monkeypatch.setattr(hash_memo, "_MEMORY", {})  # a new process: only the memo folder is left
    assert file_fingerprint(str(path)) == first and len(calls) == 1
    entries = [os.path.join(d, f) for d, _, fs in os.walk(memo) for f in fs]
    assert len(entries) == 1 and json.load(open(entries[0]))["value"] == first
    # a copy is another file: hashed once, same value (caches keyed by it stay valid)
    copy = tmp_path / "copy" / "v.bin"
    copy.parent.mkdir()
    shutil.copyfile(path, copy)
    assert file_fingerprint(str(copy)) == first and len(calls) == 2
    # an edit in place with the mtime restored is still seen (the ctime moved)
    st = os.stat(path)
    _repair_in_place(path, 150_000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_fingerprint(str(path)) != first and len(calls) == 3


def test_unwritable_memo_folder_warns_once_and_still_hashes(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(hash_memo.ENV_VAR, str(blocker / "memo"))  # cannot be created
    monkeypatch.setattr(hash_memo, "_MEMORY", {})
    monkeypatch.setattr(hash_memo, "_WARNED", set())
    path = tmp_path / "v.bin"
    path.write_bytes(b"abc")
    with pytest.warns(UserWarning, match="cannot write the content-hash memo"):
        value = file_fingerprint(str(path))
    assert value == file_fingerprint(str(path))


@pytest.fixture
def big_video(tmp_path):
    """A 256x256 mp4 large enough (> 3 x 64 KiB) to have bytes between the old sampled blocks."""
    root = tmp_path / "data"
    make_csv_dataset(root, {("ego", "val"): [("big.mp4", 20)]})
    path = str(root / "synthetic" / "ego" / "big.mp4")
    write_mp4(path, 20, seed=3, size=256)
    assert os.path.getsize(path) > 4 * OLD_BLOCK
    video = next(v for v in list_videos(str(root), "synthetic", "val") if v.name == "big")
    return str(root), video


def test_repaired_video_gets_its_frame_cache_rebuilt_and_a_copy_keeps_it(big_video, memo,
                                                                         tmp_path):
    root, video = big_video
    size = os.path.getsize(video.path)
    at = _outside_old_blocks(size)
    clean = decode_frames(video.path)[:video.num_frames]
    _repair_in_place(video.path, at)  # the damaged download the first cache is decoded from
    cache = ensure_frame_cache(video, frame_cache_path(video, root, "synthetic",
                                                      str(tmp_path / "fc")))
    # cp -r of the dataset and its cache: new paths, inodes and mtimes, same bytes -> kept
    copy_root = tmp_path / "copy"
    shutil.copytree(root, copy_root)
    shutil.copytree(tmp_path / "fc", tmp_path / "fc_copy")
    moved = next(v for v in list_videos(str(copy_root), "synthetic", "val") if v.name == "big")
    moved_cache = frame_cache_path(moved, str(copy_root), "synthetic", str(tmp_path / "fc_copy"))
    stamp = os.stat(moved_cache).st_mtime_ns
    assert is_valid_cache(moved_cache, moved.num_frames, file_fingerprint(moved.path))
    ensure_frame_cache(moved, moved_cache)
    assert os.stat(moved_cache).st_mtime_ns == stamp
    # the original repaired in place: same size, same frame count, bytes changed only outside
    # the three blocks the old fingerprint sampled -> its cache is stale and rebuilt
    _repair_in_place(video.path, at)
    assert os.path.getsize(video.path) == size
    assert not is_valid_cache(cache, video.num_frames, file_fingerprint(video.path))
    ensure_frame_cache(video, cache)
    assert is_valid_cache(cache, video.num_frames, file_fingerprint(video.path))
    np.testing.assert_array_equal(read_frames(cache, np.arange(video.num_frames)), clean)


def test_repaired_video_makes_its_feature_cache_entry_stale(big_video, memo, tmp_path):
    from byov.features.cache import entry_paths, entry_state, video_stamp

    _, video = big_video
    cache_dir = str(tmp_path / "features")
    npy, marker = entry_paths(cache_dir, "tokens", video)
    os.makedirs(os.path.dirname(npy))
    np.save(npy, np.zeros((video.num_frames, 4, 8), np.float16))
    with open(marker, "w") as f:
        json.dump(video_stamp(video), f)
    shape, dtype = (video.num_frames, 4, 8), np.dtype(np.float16)
    assert entry_state(cache_dir, "tokens", video, shape, dtype) == "done"
    _repair_in_place(video.path, _outside_old_blocks(os.path.getsize(video.path)))
    assert entry_state(cache_dir, "tokens", video, shape, dtype, stale="todo") == "todo"
    with pytest.raises(fp_mod.DataError, match="changed since its tokens features"):
        entry_state(cache_dir, "tokens", video, shape, dtype)


def _fingerprint_in_child(path):
    from byov.data.fingerprint import file_fingerprint as fingerprint
    return fingerprint(path)


def test_concurrent_processes_share_one_memo_entry(tmp_path, memo):
    import multiprocessing

    path = tmp_path / "v.bin"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 3 << 20, dtype=np.uint8)
                     .tobytes())
    with multiprocessing.get_context("fork").Pool(4) as pool:
        values = pool.map(_fingerprint_in_child, [str(path)] * 8)
    assert len(set(values)) == 1 and values[0] == file_fingerprint(str(path))
    files = [f for _, _, fs in os.walk(memo) for f in fs]
    assert len(files) == 1 and files[0].endswith(".json")  # no temp file left behind
