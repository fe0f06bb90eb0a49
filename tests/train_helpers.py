"""Shared pieces of the training tests: the tiny-run arguments, how to launch a run, what to read.

Runs use one intra-op thread (OMP_NUM_THREADS=1 for launched runs; torch.set_num_threads(1) around
in-process runs, restored afterwards): 32-wide layers gain nothing from more, and on a shared
2-core machine the spinning OpenMP threads made these runs 8-30x slower. Launched and in-process
runs then also compute identically, which the resume tests compare bitwise.

A tiny run is a random-init CLIP (fixture `tiny_clip_dir` in conftest: 32x32 input, N = 4 tokens
of d = 32), a 1-block encoder and decoder of width 32 on T = 4 frames of the session's synthetic
dataset (fixture `synthetic_root`: 3 train / 2 val videos), on the CPU. One epoch is
ceil(3 / batch) steps and takes well under a second.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from conftest import ROOT

from byov.grid.jobs import override_argv

# mcm_ratio 0.5: with T = 4 the default 0.8 would leave int(4 * 0.2) = 0 frames visible.
TINY = {
    "dataset": "synthetic", "backbone": "clip", "input_size": 32, "hidden_dim": 32,
    "num_frames": 4, "mcm_ratio": 0.5, "n_layers": 1, "n_layers_dec": 1, "embedding_size": 32,
    "decoder_embedding_size": 32, "n_heads": 4, "device": "cpu", "num_workers": 0, "lr": 1e-3,
    "ds_every_n_epoch": 0, "epochs": 1, "save_every": 1, "log_every": 1, "batch_size": 1,
}

# docs/design.md#checkpoints-as-plain-data (`target` only with --target ema; `backbone` only with
# --no-freeze_base)
CHECKPOINT_KEYS = {"format_version", "config", "encoder", "decoder", "optimizer", "step", "epoch",
                   "world_size", "data_fingerprint",
                   "rng", "val_metrics"}

_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
              "MASTER_PORT", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")


def train_args(synthetic_root: str, clip_dir: str, output_dir: str, frame_cache_dir: str,
               **overrides) -> list[str]:
    """Command-line arguments of a tiny run in `output_dir`; `overrides` are config keys
    (`byov.grid.jobs.override_argv`: True -> --key, False -> --no-key, else --key value).

    Frame caches go to `frame_cache_dir`, so the shared synthetic dataset folder stays unchanged.
    """
    values = {**TINY, "dataset_root": os.path.dirname(synthetic_root),
              "vision_encoder_path": clip_dir, "output_dir": output_dir,
              "frame_cache_dir": frame_cache_dir, **overrides}
    return override_argv(values)


def subprocess_env() -> dict:
    """The environment of a launched run: offline hub, one thread, no inherited torchrun
    variables."""
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1")
    return env


def train_cli(args: list[str], timeout: float = 120, launcher: list[str] | None = None
              ) -> subprocess.CompletedProcess:
    """`python train.py ARGS` (or `python LAUNCHER... train.py ARGS`) in the project root."""
    cmd = [sys.executable, *(launcher or []), "train.py", *args]
    return subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)


def train_in_process(args: list[str]) -> dict:
    """train.main(args) in this process (no interpreter start-up: ~3 s faster than train_cli).

    The run seeds the global generators; they and the thread count are put back afterwards, so
    other tests in the session see the state they would have seen without this run.
    """
    import train
    from byov.checkpoint import capture_rng_state, restore_rng_state

    state, threads = capture_rng_state(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train.main(args)
    finally:
        torch.set_num_threads(threads)
        restore_rng_state(state)


def load_ckpt(run_dir: str, name: str = "last.pth") -> dict:
    return torch.load(os.path.join(run_dir, "checkpoints", name), map_location="cpu",
                      weights_only=True)


def read_log(run_dir: str) -> list[dict]:
    """The records of <run_dir>/log.jsonl (each line must parse as JSON)."""
    with open(os.path.join(run_dir, "log.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def epoch_summaries(records: list[dict]) -> list[dict]:
    """The end-of-epoch records (the ones with the validation loss)."""
    return [r for r in records if "val/loss" in r]


def tensors_differing(a, b, atol: float = 0.0, prefix: str = "") -> list[str]:
    """Key paths where two nested dict/list structures of tensors and plain values differ
    (tensors: shape, dtype, or |a - b| > atol; atol 0 = bitwise equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{prefix} keys {sorted(map(str, a))} != {sorted(map(str, b))}"]
        return [d for k in a for d in tensors_differing(a[k], b[k], atol, f"{prefix}[{k!r}]")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{prefix} lengths {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b))
                for d in tensors_differing(x, y, atol, f"{prefix}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return [f"{prefix} {tuple(a.shape)}/{a.dtype} != {tuple(b.shape)}/{b.dtype}"]
        same = torch.equal(a, b) if atol == 0 else bool(
            ((a.double() - b.double()).abs() <= atol).all())
        return [] if same else [f"{prefix} max |diff| "
                                f"{(a.double() - b.double()).abs().max().item():.3g}"]
    return [] if a == b else [f"{prefix} {a!r} != {b!r}"]


def distance(a: dict, b: dict) -> float:
    """Euclidean distance between two state_dicts of float tensors (same keys)."""
    return sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a) ** 0.5


# -- building from a flat config through the spec layer (what the library's run assembly does) --
def frame_encoder_of(config):
    """The frozen backbone a flat config describes (pretrained as the config says)."""
    from byov.models.backbones import frame_encoder_from_spec
    from byov.spec import frame_encoder_spec
    return frame_encoder_from_spec(frame_encoder_spec(config))


def byov_model_of(config):
    """The trainable BYOV model a flat config describes (random init)."""
    from byov.methods.byov_method import build_byov
    from byov.spec import byov_model_spec
    return build_byov(byov_model_spec(config))


def method_of(config, **kwargs):
    """`byov.methods.build_method` for a flat config."""
    from byov.methods import build_method
    from byov.spec import method_spec
    return build_method(method_spec(config), **kwargs)


def model_from_checkpoint(ckpt, config, pretrained=True):
    """(frame_encoder, model) of a BYOV checkpoint, rebuilt from `config` and loaded strictly."""
    method = method_of(config, pretrained=pretrained)
    method.load_state_entries(ckpt)
    return method.frame_encoder, method.model


def embed_splits(method, config, splits, weights="online", progress=False):
    """{split: SplitData} of the config's dataset embedded by `method` (validated data)."""
    from byov.data.validate import load_validated
    from byov.downstream.embed import embed_split
    from byov.spec import data_spec

    data = data_spec(config)
    videos, labels = load_validated(data.root, data.dataset, splits, data.frame_cache_dir)
    return {s: embed_split(lambda v: method.embed_video(v, weights), videos[s], labels, s,
                           progress) for s in splits}
