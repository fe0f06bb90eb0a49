"""Every tensor the training and evaluation paths create takes its device from its inputs
(docs/gpu.md#device-hygiene), checked two ways on a machine without a GPU:

- the real forward/backward of BYOV (pixels through the frozen backbone, STM, masking, encoder,
  decoder, EMA update, whole-video embedding) and of AE2's embedder + objectives run on the
  `meta` device: a tensor made on the CPU and combined with a meta tensor is an error there,
  as a CPU tensor would be on CUDA;
- a source check: a torch factory call (torch.zeros, arange, tensor, ...) without `device=`
  in byov/models, byov/ae2, byov/methods or byov/training/engine.py must be one of the listed host-side
  uses below, each with its reason. A new one fails until it takes a device or is listed.

The `--device cuda` start-up check is in test_distributed.py and here (train.py).
"""
import ast
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT

META = torch.device("meta")


def test_byov_training_step_and_embedding_run_on_meta(tiny_clip_dir):
    from byov.methods.byov_method import ByovMethod
    from byov.models.byov import BYOV
    from byov.models.backbones import build_frame_encoder

    for target in ("features", "ema"):
        enc = build_frame_encoder("clip", tiny_clip_dir, input_size=32)  # N = 4, d = 32
        model = BYOV(in_dim=32, embed_dim=32, dec_dim=32, depth=1, depth_dec=1, n_heads=4,
                     num_frames=8, mcm_ratio=0.5, target=target)
        method = ByovMethod(enc, model, 2, None, num_frames=8).to(META)
        method.momenta = np.full(4, 0.99) if target == "ema" else None
        pixels = torch.empty(2, 2, 8, 3, 32, 32, device=META)
        out = method({"inputs": pixels}, (0, 0, 0, 0))
        assert all(out[k].device == META for k in method.loss_keys)
        out["loss"].backward()
        assert all(p.grad.device == META for p in method.trainable_parameters())
        method.after_optimizer_step(0)  # EMA teacher update (target ema)
        tokens = torch.empty(1, 20, 4, 32, device=META)  # whole video of 20 frames, L != T
        from byov.models.stm import merge_video_tokens
        merged = merge_video_tokens([tokens[0, :7], tokens[0, 7:]], 2)
        for weights in (("online", "ema") if target == "ema" else ("online",)):
            assert model.embed(merged[None], weights).shape == (1, 20, 32)


@pytest.mark.parametrize("objective", ["tcc", "dtw", "dtw_consistency", "dtw_contrastive"])
def test_ae2_step_runs_on_meta(objective):
    """AE2's embedder and objective on meta. vava is left out by design: its transport priors are
    computed on the host from argmin indices (released float32 numerics), then moved."""
    from byov.ae2.embedder import AE2Embedder
    from byov.methods.ae2_method import AE2Method

    emb = AE2Embedder(embedding_size=16, input_size=32, freeze_base=False, pretrained=False)
    method = AE2Method(objective, emb, None, {"cyclic": True}, num_frames=4,
                       num_positives=2).to(META)
    B, T = 2, 4
    batch = {"inputs": torch.empty(B, 2, 2 * T, 3, 32, 32, device=META),
             "steps": torch.arange(T).repeat(B, 2, 1).to(META),
             "seq_lens": torch.full((B, 2), 30).to(META),
             "pos_steps": torch.tensor([0, 2]).repeat(B, 2, 1).to(META)}
    out = method(batch, (0, 0, 0, 0))
    assert out["loss"].device == META
    out["loss"].backward()


# (file, enclosing function, factory): why the tensor is made on the host on purpose
HOST_SIDE = {
    ("byov/ae2/sampling.py", "sample_clip", "randperm"): "clip sampling, in the loader",
    ("byov/ae2/sampling.py", "sample_clip", "arange"): "clip sampling, in the loader",
    ("byov/ae2/sampling.py", "positive_steps", "tensor"): "positive sampling, in the loader",
    ("byov/ae2/sampling.py", "positive_steps", "as_tensor"): "positive sampling, in the loader",
    ("byov/ae2/softdtw.py", "_diagonal_plan", "arange"): "cached index plan, moved by .to(dev)",
    ("byov/ae2/dtw.py", "draw_first_half", "rand"): "host coin flips from a CPU generator",
    ("byov/ae2/dtw.py", "_positive_subsets", "as_tensor"): "host booleans read with tolist()",
    ("byov/ae2/embedder.py", "iter_video_embeddings", "arange"): "frame indices for the loader",
    ("byov/ae2/vava.py", "_gauss", "tensor"): "released priors on the host, moved to x.device",
    ("byov/ae2/vava.py", "priors", "ones"): "released priors on the host, moved to x.device",
    ("byov/ae2/vava.py", "priors", "tensor"): "released priors on the host, moved to x.device",
    ("byov/ae2/vava.py", "priors", "zeros"): "released priors on the host, moved to x.device",
    ("byov/methods/ae2_method.py", "__getitem__", "tensor"): "a loader item",
    ("byov/methods/ae2_method.py", "__getitem__", "zeros"): "a loader item",
    ("byov/methods/ae2_method.py", "forward", "rand"): "host coin flips (first_half)",
    ("byov/models/decoder.py", "__init__", "zeros"): "a Parameter, moved with the module",
}
FACTORIES = {"zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm", "arange",
             "eye", "linspace", "logspace", "tensor", "as_tensor", "zeros_like_", "tril_indices",
             "triu_indices"}
CHECKED = ("byov/models", "byov/ae2", "byov/methods", "byov/training/engine.py")


def _factory_calls_without_device():
    found = set()
    paths = []
    for item in CHECKED:
        full = os.path.join(ROOT, item)
        if os.path.isfile(full):
            paths.append(full)
        for folder, _, names in os.walk(full):
            paths += [os.path.join(folder, n) for n in names if n.endswith(".py")]
    for path in paths:
        rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
        tree = ast.parse(open(path, encoding="utf-8").read())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                        and node.func.attr in FACTORIES
                        and not any(k.arg == "device" for k in node.keywords)):
                    found.add((rel, fn.name, node.func.attr))
    return found


def test_no_unlisted_tensor_factory_without_device():
    found = _factory_calls_without_device()
    new = sorted(found - set(HOST_SIDE))
    assert not new, (f"torch factory calls without device= in the training/eval paths: {new}; "
                     f"pass device=<an input>.device, or list them in HOST_SIDE with the reason")
    assert found, "the source check found no factory call at all: is it reading the sources?"
    stale = sorted(set(HOST_SIDE) - found)
    assert not stale, f"HOST_SIDE entries that no longer exist: {stale}"


def test_source_check_catches_a_hard_coded_device(tmp_path, monkeypatch):
    """The check itself: a module with `torch.zeros(3)` in a function is reported."""
    pkg = tmp_path / "byov" / "models"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text("import torch\n\ndef f(x):\n    return x + torch.zeros(3)\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert _factory_calls_without_device() == {("byov/models/bad.py", "f", "zeros")}


def test_train_with_device_cuda_without_cuda_fails_at_start_up(tmp_path):
    from train_helpers import subprocess_env

    proc = subprocess.run(
        [sys.executable, "train.py", "--device", "cuda", "--dataset", "synthetic",
         "--dataset_root", str(tmp_path / "data"), "--output_dir", str(tmp_path / "run")],
        cwd=ROOT, env={**subprocess_env(), "CUDA_VISIBLE_DEVICES": ""}, capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error: --device cuda asked for CUDA, but torch sees no CUDA device" in proc.stderr
    assert "Traceback" not in proc.stderr  # a message, not a crash
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_evaluate_with_device_cuda_without_cuda_fails_before_any_work(tmp_path, monkeypatch):
    import evaluate
    from byov.distributed import DeviceError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="--device cuda asked for CUDA"):
        evaluate.main(["--baseline", "random_init", "--device", "cuda", "--dataset", "synthetic",
                       "--dataset_root", str(tmp_path / "data"),
                       "--output_dir", str(tmp_path / "run")])
    assert list(tmp_path.iterdir()) == []
