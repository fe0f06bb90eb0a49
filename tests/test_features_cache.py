"""Feature cache: extraction, manifest, readers, resumability and bad input (docs/design.md#feature-cache)."""
import errno
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from byov.data.datasets import FrameSource
from byov.data.fingerprint import file_fingerprint
from byov.data.layout import list_videos
from byov.features import cache as cache_mod
from byov.features import (FeatureCacheError, StreamMerge, entry_paths, extract_splits,
                           feature_source, merged_features)
from byov.models.backbones import build_frame_encoder
from byov.models.stm import merge_video_tokens
from byov.spec import feature_spec
from data_helpers import write_mp4


def save_tiny_clip(path, seed=0):
    """A random-init CLIP ViT (patch 16, 64x64 -> N = 16 tokens of d = 32) saved to `path`."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, image_size=64,
                                     patch_size=16)).save_pretrained(path)
    return str(path)


def make_config(data_root, clip_dir, frame_dir, cache_dir, out_dir="", **over):
    """A resolved flat config (utils.config) for the tiny synthetic set and the tiny CLIP."""
    from utils.config import load_config, to_dict

    values = dict(dataset="synthetic", dataset_root=data_root, backbone="clip",
                  vision_encoder_path=clip_dir, input_size=64, hidden_dim=32, embedding_size=32,
                  decoder_embedding_size=32, n_heads=4, n_layers=1, n_layers_dec=1, num_frames=6,
                  batch_size=2, epochs=1, steps_per_epoch=3, device="cpu", num_workers=0,
                  ds_every_n_epoch=0, precision="fp32", feature_cache_dir=cache_dir,
                  frame_cache_dir=frame_dir, output_dir=out_dir or cache_dir + "_run",
                  encode_chunk_size=16, lr=1e-3, feature_dtype="fp32")
    values.update(over)
    argv = [a for k, v in values.items() for a in (f"--{k}", str(v))]
    return to_dict(load_config(argv)[0])


@pytest.fixture(scope="module")
def env(synthetic_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("features")
    clip = save_tiny_clip(base / "clip")
    return {"root": os.path.dirname(synthetic_root), "clip": clip, "frames": str(base / "frames"),
            "base": base}


@pytest.fixture(scope="module")
def fp32_cache(env):
    """Both kinds, fp32, all splits, extracted once (num_workers 2: the worker path)."""
    cfg = make_config(env["root"], env["clip"], env["frames"], str(env["base"] / "cache32"),
                      num_workers=2, encode_chunk_size=7)
    stats = extract_splits(feature_spec(cfg), progress=False)
    return cfg, stats


def _all_videos(cfg):
    return [v for s in ("train", "val", "test")
            for v in list_videos(cfg["dataset_root"], cfg["dataset"], s)]


def test_extracted_tokens_and_merged_features_equal_the_backbone(fp32_cache):
    cfg, stats = fp32_cache
    videos = _all_videos(cfg)
    assert stats["videos"] == len(videos) == 7 and stats["skipped"] == 0
    assert stats["frames"] == sum(v.num_frames for v in videos) and stats["frames_per_s"] > 0
    enc = build_frame_encoder("clip", cfg["vision_encoder_path"], input_size=64)
    src = FrameSource(cfg["dataset_root"], "synthetic", "clip", 64, cfg["frame_cache_dir"])
    k = 5  # round(16 * 0.3)
    for v in videos[:3]:
        with torch.no_grad():
            want = enc(src.load(v, np.arange(v.num_frames)))
        tokens = np.load(entry_paths(cfg["feature_cache_dir"], "tokens", v)[0])
        merged = np.load(entry_paths(cfg["feature_cache_dir"], "merged", v)[0])
        assert tokens.shape == (v.num_frames, 16, 32) and tokens.dtype == np.float32
        np.testing.assert_allclose(tokens, want.numpy(), atol=1e-5)
        np.testing.assert_allclose(merged, merge_video_tokens([want], k).numpy(), atol=1e-5)
        with open(entry_paths(cfg["feature_cache_dir"], "tokens", v)[1]) as f:
            marker = json.load(f)
        assert marker["num_frames"] == v.num_frames
        assert marker["fingerprint"] == file_fingerprint(v.path)  # content, not mtime
    leftovers = [f for _, _, fs in os.walk(cfg["feature_cache_dir"]) for f in fs if ".tmp." in f]
    assert leftovers == []


def test_manifest_records_identity_and_versions(fp32_cache):
    cfg, _ = fp32_cache
    with open(os.path.join(cfg["feature_cache_dir"], "tokens", "manifest.json")) as f:
        m = json.load(f)
    assert m["backbone"] == "clip" and m["input_size"] == 64 and m["dtype"] == "float32"
    assert m["token_layout"] == [16, 32] and m["stm"] is None
    assert m["weights"] == cfg["vision_encoder_path"] and m["weights_hash"].startswith("sha256:")
    assert "INTER_CUBIC 64x64" in m["preprocessing"] and m["versions"]["torch"] == torch.__version__
    with open(os.path.join(cfg["feature_cache_dir"], "merged", "manifest.json")) as f:
        assert json.load(f)["stm"] == {"k": 5, "frames": "adjacent"}


def test_rerun_skips_finished_videos_and_redoes_unfinished(fp32_cache):
    cfg, _ = fp32_cache
    again = extract_splits(feature_spec(cfg), progress=False)
    assert (again["videos"], again["skipped"], again["frames"]) == (0, 7, 0)
    v = list_videos(cfg["dataset_root"], "synthetic", "val")[0]
    npy, marker = entry_paths(cfg["feature_cache_dir"], "merged", v)
    before = np.load(npy)
    os.remove(marker)  # as if interrupted between the array and its marker
    redo = extract_splits(feature_spec(cfg), progress=False)
    assert (redo["videos"], redo["frames"]) == (1, v.num_frames)
    np.testing.assert_allclose(np.load(npy), before, atol=1e-6)


def test_stream_merge_equals_whole_video_merge():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(23, 16, 8, generator=g)
    want = merge_video_tokens([x], 5)
    for sizes in ([23], [1, 1, 21], [7, 7, 7, 2], [22, 1]):
        sm, out, at = StreamMerge(5), [], 0
        for n in sizes:
            out.append(sm.push(x[at:at + n]))
            at += n
        out.append(sm.finish())
        assert torch.equal(torch.cat(out), want), sizes
    one = StreamMerge(5)
    one.push(x[:1])
    with pytest.raises(FeatureCacheError, match="at least 2 frames"):
        one.finish()


def test_feature_source_reads_lazily_and_pickles(fp32_cache):
    cfg, _ = fp32_cache
    src = feature_source(feature_spec(cfg | {"features": "tokens"}))
    v = list_videos(cfg["dataset_root"], "synthetic", "train")[1]
    idx = np.array([5, 1, 1, v.num_frames - 1])
    out = src.load(v, idx)
    full = np.load(entry_paths(cfg["feature_cache_dir"], "tokens", v)[0])
    assert out.dtype == torch.float32 and out.shape == (4, 16, 32)
    assert torch.equal(out, torch.from_numpy(full[idx]))
    clone = pickle.loads(pickle.dumps(src))
    assert clone._arrays == {} and torch.equal(clone.load(v, idx), out)
    merged = feature_source(feature_spec(cfg | {"features": "merged"})).load(v, idx)
    assert merged.shape == (4, 32)
    fn = merged_features(feature_spec(cfg | {"features": "tokens"}), "train")
    np.testing.assert_allclose(fn(1).numpy(), np.load(
        entry_paths(cfg["feature_cache_dir"], "merged", v)[0]), atol=1e-6)


def test_mismatched_manifest_is_an_error_naming_the_field(fp32_cache, env):
    cfg, _ = fp32_cache
    path = os.path.join(cfg["feature_cache_dir"], "tokens", "manifest.json")
    before = open(path, "rb").read()
    with pytest.raises(FeatureCacheError, match=r"dtype differs.*float32.*float16"):
        feature_source(feature_spec(cfg | {"features": "tokens", "feature_dtype": "fp16"}))
    with pytest.raises(FeatureCacheError, match="input_size"):
        extract_splits(feature_spec(cfg | {"input_size": 32}), splits=("val",), kinds=("tokens",),
                            progress=False)
    with pytest.raises(FeatureCacheError, match=r"\(stm differs\)"):
        feature_source(feature_spec(cfg | {"features": "merged", "topk_ratio": 0.5}))
    assert open(path, "rb").read() == before  # never overwritten


def test_missing_cache_and_frozen_backbone_errors(env, tmp_path):
    cfg = make_config(env["root"], env["clip"], env["frames"], str(tmp_path / "none"),
                      features="tokens")
    with pytest.raises(FeatureCacheError, match=r"no tokens feature cache.*byov.features extract"):
        feature_source(feature_spec(cfg))
    with pytest.raises(FeatureCacheError, match="frozen backbone"):
        feature_source(feature_spec(cfg | {"freeze_base": False}))


def test_unwritable_cache_dir_is_a_clear_error(env, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = make_config(env["root"], env["clip"], env["frames"], str(blocker / "cache"))
    with pytest.raises(FeatureCacheError, match=r"cannot write the feature cache into .*"
                                                r"--feature_cache_dir"):
        extract_splits(feature_spec(cfg), splits=("val",), progress=False)


def test_disk_full_leaves_no_complete_looking_file_and_resumes(env, tmp_path, monkeypatch):
    cfg = make_config(env["root"], env["clip"], env["frames"], str(tmp_path / "c"),
                      encode_chunk_size=8)
    videos = list_videos(cfg["dataset_root"], "synthetic", "val")
    writes = {"n": 0}
    real = cache_mod._write_bytes

    def full_disk(f, data):  # the first video fits; the disk fills in the second one's 2nd block
        if os.path.basename(f.name).startswith(videos[1].name + ".npy.tmp."):
            writes["n"] += 1
            if writes["n"] == 2:
                f.write(bytes(data)[:100])
                raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    monkeypatch.setattr(cache_mod, "_write_bytes", full_disk)
    with pytest.raises(FeatureCacheError, match=r"disk full while writing .*rerun"):
        extract_splits(feature_spec(cfg), splits=("val",), kinds=("tokens",), progress=False)
    assert writes["n"] == 2  # the failure hit a half-written temp file
    names = [f for _, _, fs in os.walk(cfg["feature_cache_dir"]) for f in fs]
    assert not [n for n in names if ".tmp." in n]
    done = [v for v in videos if os.path.exists(entry_paths(cfg["feature_cache_dir"], "tokens",
                                                            v)[1])]
    assert len(done) == 1  # the first video finished before the disk filled
    failed = [v for v in videos if v not in done][0]
    assert not os.path.exists(entry_paths(cfg["feature_cache_dir"], "tokens", failed)[0])
    monkeypatch.setattr(cache_mod, "_write_bytes", real)
    stats = extract_splits(feature_spec(cfg), splits=("val",), kinds=("tokens",), progress=False)
    assert (stats["videos"], stats["skipped"]) == (1, 1)


def test_changed_backbone_and_changed_video_are_errors(env, synthetic_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data / "synthetic")
    clip = shutil.copytree(env["clip"], tmp_path / "clip")
    cfg = make_config(str(data), str(clip), str(tmp_path / "frames"), str(tmp_path / "c"),
                      features="tokens")
    extract_splits(feature_spec(cfg), splits=("val",), kinds=("tokens",), progress=False)
    video = list_videos(str(data), "synthetic", "val")[0]
    feature_source(feature_spec(cfg)).load(video, np.array([0, 1]))  # fits before the changes
    save_tiny_clip(clip, seed=1)  # new weights at the same path
    with pytest.raises(FeatureCacheError, match=r"weights_hash differs"):
        feature_source(feature_spec(cfg))
    save_tiny_clip(clip, seed=0)
    st = os.stat(video.path)
    os.utime(video.path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    feature_source(feature_spec(cfg)).load(video, np.array([0, 1]))  # a new mtime alone changes nothing
    before = np.load(entry_paths(cfg["feature_cache_dir"], "tokens", video)[0])
    write_mp4(video.path, video.num_frames, seed=5, size=48)  # re-encoded, same frame count
    with pytest.raises(FeatureCacheError, match=r"changed since its tokens features were "
                                                r"extracted \(fingerprint"):
        feature_source(feature_spec(cfg)).load(video, np.array([0, 1]))
    stats = extract_splits(feature_spec(cfg), splits=("val",), kinds=("tokens",), progress=False)
    assert (stats["videos"], stats["skipped"]) == (1, 1)  # the stale entry is recomputed
    after = feature_source(feature_spec(cfg)).load(video, np.arange(video.num_frames)).numpy()
    assert not np.allclose(after, before)


def test_cp_r_of_dataset_and_feature_cache_stays_valid(env, synthetic_root, tmp_path):
    """Default cache folder (<dataset_root>/byov_cache/...), copied with the data: still valid;
    a video changed in the copy is detected, and ensure_feature_cache recomputes only it."""
    from byov.features import ensure_feature_cache, missing_entries, verify_cache

    one = tmp_path / "one"
    shutil.copytree(synthetic_root, one / "synthetic")
    cfg = make_config(str(one), env["clip"], "", "", str(tmp_path / "run"), features="tokens")
    videos = list_videos(str(one), "synthetic", "val")
    built = ensure_feature_cache(feature_spec(cfg), videos, progress=False)  # nothing there: built now
    assert (built["videos"], built["skipped"]) == (2, 0)
    assert os.path.isdir(one / "byov_cache" / "synthetic" / "clip_64" / "tokens")
    two = tmp_path / "elsewhere" / "two"
    shutil.copytree(one, two, copy_function=shutil.copyfile)  # cp -r: new paths and mtimes
    cfg2 = make_config(str(two), env["clip"], "", "", str(tmp_path / "run"), features="tokens")
    moved = list_videos(str(two), "synthetic", "val")
    verify_cache(feature_spec(cfg2), moved)
    assert missing_entries(feature_spec(cfg2), moved) == []
    assert ensure_feature_cache(feature_spec(cfg2), moved, progress=False)["videos"] == 0
    src = feature_source(feature_spec(cfg2))
    for v, w in zip(videos, moved):
        assert torch.equal(src.load(w, np.arange(w.num_frames)),
                           feature_source(feature_spec(cfg)).load(v, np.arange(v.num_frames)))
    write_mp4(moved[1].path, moved[1].num_frames, seed=11, size=48)
    with pytest.raises(FeatureCacheError, match="changed since"):
        verify_cache(feature_spec(cfg2), moved)
    assert missing_entries(feature_spec(cfg2), moved) == [moved[1]]
    stats = ensure_feature_cache(feature_spec(cfg2), moved, progress=False)
    assert (stats["videos"], stats["skipped"]) == (1, 1)
    verify_cache(feature_spec(cfg2), moved)


def test_ensure_feature_cache_builds_missing_entries_and_refuses_a_foreign_cache(fp32_cache,
                                                                                 tmp_path):
    from byov.features import ensure_feature_cache

    cfg, _ = fp32_cache
    cfg = cfg | {"features": "merged", "feature_cache_dir": str(tmp_path / "c")}
    videos = list_videos(cfg["dataset_root"], "synthetic", "val")
    shutil.copytree(os.path.join(fp32_cache[0]["feature_cache_dir"], "merged"),
                    tmp_path / "c" / "merged")
    npy, marker = entry_paths(cfg["feature_cache_dir"], "merged", videos[0])
    want = np.load(npy)
    os.remove(npy)
    os.remove(marker)
    stats = ensure_feature_cache(feature_spec(cfg), videos, progress=False)
    assert (stats["videos"], stats["skipped"]) == (1, 1)
    np.testing.assert_allclose(np.load(npy), want, atol=1e-6)
    # a cache made with other settings (here fp32 where the run asks fp16): refused, untouched
    manifest = os.path.join(cfg["feature_cache_dir"], "merged", "manifest.json")
    before = open(manifest, "rb").read()
    with pytest.raises(FeatureCacheError, match=r"dtype differs"):
        ensure_feature_cache(feature_spec(cfg | {"feature_dtype": "fp16"}), videos, progress=False)
    assert open(manifest, "rb").read() == before


def test_cli_extracts_requested_kind(env, tmp_path, capsys):
    from byov.cli.features import main

    cache = tmp_path / "cli"
    stats = main(["extract", "--dataset", "synthetic", "--dataset_root", env["root"],
                  "--vision_encoder_path", env["clip"], "--input_size", "64",
                  "--frame_cache_dir", env["frames"], "--feature_cache_dir", str(cache),
                  "--num_workers", "0", "--device", "cpu", "--splits", "val", "--kind", "merged"])
    assert stats["videos"] == 2 and sorted(os.listdir(cache)) == ["merged"]
    assert "frames/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the model width is train.py's and evaluate.py's
        main(["extract", "--hidden_dim", "32"])
    assert "--hidden_dim is a flag of train.py and evaluate.py" in capsys.readouterr().err
    with pytest.raises(Exception, match="--splits"):
        main(["extract", "--splits", "train,bogus"])
    with pytest.raises(SystemExit, match="usage"):
        main(["convert"])


def test_weights_hash_of_a_random_init_backbone_says_so():
    from byov.features.manifest import weights_hash

    def stub(seed):
        torch.manual_seed(seed)
        m = torch.nn.Linear(4, 3)
        m.weights_source = "random-init"
        return m
    a, b = weights_hash(stub(0)), weights_hash(stub(1))
    assert a.startswith("random-init:") and b.startswith("random-init:") and a != b
    assert weights_hash(stub(0)) == a
