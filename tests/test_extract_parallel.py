"""Extraction across processes and its moving parts (byov.features.pipeline, docs/gpu.md):
`torchrun --nproc_per_node 2 -m byov.features extract` (gloo on the CPU) writes the same cache as
one process; the shard rule, the writer thread's error path, and bf16 extraction's manifest."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from byov.data.layout import list_videos
from byov.features import FeatureCacheError, entry_paths
from byov.features.pipeline import BackgroundWriter, shard_videos
from conftest import ROOT
from train_helpers import subprocess_env


def _cli_args(synthetic_root, clip_dir, frames, cache, *extra):
    return ["extract", "--dataset", "synthetic", "--dataset_root", os.path.dirname(synthetic_root),
            "--vision_encoder_path", clip_dir, "--input_size", "32",
            "--frame_cache_dir", frames, "--feature_cache_dir", cache, "--num_workers", "0",
            "--device", "cpu", "--feature_dtype", "fp32", "--encode_chunk_size", "8", *extra]


def _files(cache):
    out = {}
    for folder, _, names in os.walk(cache):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, cache)] = f.read()
    return out


def test_two_processes_extract_one_cache_equal_to_one_process(synthetic_root, tiny_clip_dir,
                                                              tmp_path):
    from byov.cli.features import main

    frames = str(tmp_path / "frames")
    one = main(_cli_args(synthetic_root, tiny_clip_dir, frames, str(tmp_path / "one")))
    assert one["videos"] == 7
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "byov.features",
         *_cli_args(synthetic_root, tiny_clip_dir, frames, str(tmp_path / "two"))],
        cwd=ROOT, env={**subprocess_env(), "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": ROOT},
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "features of 7 videos" in proc.stdout
    shares = proc.stdout.split("by 2 processes: ")[1].split(" videos")[0]
    assert sorted(map(int, shares.split("+"))) == [3, 4]  # both ranks extracted
    a, b = _files(str(tmp_path / "one")), _files(str(tmp_path / "two"))
    assert sorted(a) == sorted(b)  # same entries, manifests and markers; no temp files left
    assert [p for p in b if ".tmp" in p] == []
    for path in a:  # arrays, markers and manifests byte for byte
        assert a[path] == b[path], path


def test_shard_videos_gives_each_video_to_one_rank_balanced_by_frames(synthetic_root):
    videos = [v for s in ("train", "val", "test")
              for v in list_videos(os.path.dirname(synthetic_root), "synthetic", s)]
    for world in (1, 2, 3, 8):
        shards = [shard_videos(videos, r, world) for r in range(world)]
        got = sorted(v.path for s in shards for v in s)
        assert got == sorted(v.path for v in videos)  # each exactly once
        for s in shards:  # the given order is kept within a shard
            assert [videos.index(v) for v in s] == sorted(videos.index(v) for v in s)
        loads = [sum(v.num_frames for v in s) for s in shards]
        if world <= len(videos):  # greedy longest-first: spread at most one video's length
            assert max(loads) - min(loads) <= max(v.num_frames for v in videos)
    with pytest.raises(ValueError, match="outside"):
        shard_videos(videos, 2, 2)


def test_background_writer_runs_in_order_and_reraises_the_first_error():
    seen = []
    with BackgroundWriter(depth=1) as w:
        for i in range(5):
            w.submit(lambda i=i: seen.append(i))
    assert seen == [0, 1, 2, 3, 4]

    def boom():
        raise OSError("disk full")
    w = BackgroundWriter()
    w.submit(boom)
    w.submit(lambda: seen.append("after"))  # may be accepted before the error is seen
    with pytest.raises(OSError, match="disk full"):
        w.close()
    assert "after" not in seen  # nothing runs after a failure


def test_bf16_extraction_is_recorded_and_never_mixed_with_fp32(synthetic_root, tiny_clip_dir,
                                                                tmp_path):
    """bf16 autocast on the CPU: the manifest says compute bf16; an fp32 extraction into that
    cache is refused naming the field; the features stay within the bf16 tolerance of fp32."""
    from byov.cli.features import main

    frames, c16, c32 = str(tmp_path / "frames"), str(tmp_path / "bf16"), str(tmp_path / "fp32")
    args = ["--splits", "val", "--kind", "tokens"]
    main(_cli_args(synthetic_root, tiny_clip_dir, frames, c16, *args,
                   "--extract_precision", "bf16"))
    main(_cli_args(synthetic_root, tiny_clip_dir, frames, c32, *args))
    with open(os.path.join(c16, "tokens", "manifest.json")) as f:
        assert json.load(f)["compute"] == "bf16"
    with open(os.path.join(c32, "tokens", "manifest.json")) as f:
        assert json.load(f)["compute"] == "fp32"
    with pytest.raises(FeatureCacheError, match="compute: cache has 'bf16', this run needs 'fp32'"):
        main(_cli_args(synthetic_root, tiny_clip_dir, frames, c16, *args))
    # training reads the bf16 cache, and the entries it adds (test split) are computed in bf16
    from byov.features import ensure_feature_cache, feature_source
    from byov.spec import feature_spec
    from utils.config import load_config, to_dict
    spec = feature_spec(to_dict(load_config(_cli_args(synthetic_root, tiny_clip_dir, frames,
                                                      c16)[1:] + ["--features", "tokens"])[0]))
    test = list_videos(os.path.dirname(synthetic_root), "synthetic", "test")
    assert ensure_feature_cache(spec, test, progress=False)["videos"] == 2
    assert feature_source(spec).manifest["compute"] == "bf16"
    main(_cli_args(synthetic_root, tiny_clip_dir, frames, c32, "--splits", "test", "--kind",
                   "tokens"))
    for v in list_videos(os.path.dirname(synthetic_root), "synthetic", "val") + test:
        lo = np.load(entry_paths(c16, "tokens", v)[0])
        hi = np.load(entry_paths(c32, "tokens", v)[0])
        assert not np.array_equal(lo, hi)  # bf16 really ran
        # bf16 tokens of the tiny (LayerNorm-ed) CLIP output within 0.1 of fp32
        assert np.abs(lo - hi).max() < 0.1, np.abs(lo - hi).max()


def test_extraction_on_missing_cuda_fails_before_writing(synthetic_root, tiny_clip_dir, tmp_path,
                                                        monkeypatch):
    from byov.distributed import DeviceError
    from byov.cli.features import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = _cli_args(synthetic_root, tiny_clip_dir, str(tmp_path / "f"), str(tmp_path / "c"))
    args[args.index("--device") + 1] = "cuda"
    with pytest.raises(DeviceError, match="--device cuda asked for CUDA.*--device cpu"):
        main(args)
    assert not os.path.exists(tmp_path / "c") and not os.path.exists(tmp_path / "f")


def test_channels_last_forward_matches_the_default(tiny_clip_dir):
    """--channels_last changes memory layout only: the tokens agree to float32 rounding."""
    from byov.features.pipeline import BackendForward
    from byov.models.backbones import build_frame_encoder

    enc = build_frame_encoder("clip", tiny_clip_dir, input_size=32)
    parts = [torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(i))
             for i in range(2)]
    cpu = torch.device("cpu")
    plain, ready = BackendForward(enc, cpu)(parts)
    ready()
    with torch.no_grad():
        assert torch.equal(plain, enc(torch.cat(parts)))  # the default is the plain call
    nhwc, _ = BackendForward(enc, cpu, channels_last=True)(parts)
    torch.testing.assert_close(nhwc, plain, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="extraction precision"):
        BackendForward(enc, cpu, precision="fp16")
