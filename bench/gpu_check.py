"""The GPU path in one command: does every stage run on this device, and how fast (docs/gpu.md).

    python bench/gpu_check.py [--json out.json]          # one GPU, random-init real sizes
    python bench/gpu_check.py --device cpu --tiny        # the same code on tiny models (CI)

Every check goes through the project's own code: `byov.training.assembly.build_training` +
`byov.training.engine.train_one_epoch` (training), `byov.features.extract_videos` (extraction),
`evaluate.py` (evaluation), `train.py` under torchrun (DDP) and `byov.downstream.embed.embed_split`
(embeddings). Backbones are random-init at the real sizes (CLIP ViT-B/16 and ViT-L/14 at 224,
AE2's ResNet-50 embedder), written to a temp folder with `save_pretrained`, so no download is
needed; the data is the synthetic dataset generated into the same temp folder. --tiny swaps in
tiny models and data (32 px, 1-layer CLIPs) so that a CPU runs it all in well under a minute.

Checks (each prints its figures; the table at the end repeats them):
  (a) train_fly / train_tokens: the break_eggs recipe (CLIP ViT-L/14, BYOV 12+4 layers of 1024->256,
      batch 4, T = 32, --precision bf16: autocast on CUDA, fp32 on a CPU) on the fly and from the
      token cache (extracted first, untimed): steps/s (median of the steps after the first two)
      and peak GPU memory.
  (b) extract_<backbone>_<precision>: frames/s of the whole extraction pipeline (h5 frame cache ->
      preprocessing in DataLoader workers -> backbone -> STM -> fp16 cache writes) next to the bare
      backbone forward on the same frames already on the device, and their ratio (target >= 0.7
      on one GPU), for ViT-B/16 and ViT-L/14 at 224, fp32 and bf16.
  (c) evaluate: `evaluate.py --embeddings` on AE2-size embeddings (10k train / 5k test frames,
      256-d, 48 + 40 videos; bench/eval_speed.py's set), seconds.
  (d) ae2_step: dtw_contrastive on AE2's ResNet-50 embedder (224 px, T = 32, batch 2, bf16 on
      CUDA): steps/s, peak memory, every gradient finite.
  (e) ddp: `torchrun --nproc_per_node 1 train.py` (NCCL on CUDA, gloo on a CPU), 3 steps of a
      ViT-B/16 BYOV run; seconds, and its checkpoint.
  (f) bf16_embed: the checkpoint of (e) embedding the val split in fp32 and under bf16 autocast:
      max |difference| and max |difference| / max |fp32 value|.

Any failure prints its traceback, the remaining checks still run, and the script exits 1. The
first lines give the device, torch, CUDA and cuDNN versions. --json PATH writes every figure.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

# CLIPVisionConfig arguments of the two backbones (OpenAI CLIP ViT-B/16 and ViT-L/14 towers)
CLIPS = {
    "real": {"vit_b16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                             num_attention_heads=12, patch_size=16, image_size=224),
             "vit_l14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                             num_attention_heads=16, patch_size=14, image_size=224)},
    "tiny": {"vit_b16": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=2, patch_size=16, image_size=32),
             "vit_l14": dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                             num_attention_heads=2, patch_size=8, image_size=32)},
}
SIZES = {
    "real": dict(input_size=224, train_videos=(4, 2, 2), frames=40, extract_videos=16,
                 extract_frames=128, extract_batch=256, workers=8, train_workers=4,
                 train_steps=8,
                 byov=dict(n_layers=12, n_layers_dec=4, embedding_size=256,
                           decoder_embedding_size=256, n_heads=16, num_frames=32, batch_size=4),
                 ddp=dict(num_frames=8, batch_size=2),
                 ae2=dict(num_frames=32, batch_size=2, embedding_size=128, freeze_base=False),
                 eval_frames=(10_000, 48, 5_000, 40)),
    "tiny": dict(input_size=32, train_videos=(2, 2, 2), frames=12, extract_videos=2,
                 extract_frames=16, extract_batch=8, workers=1, train_workers=0, train_steps=4,
                 byov=dict(n_layers=1, n_layers_dec=1, embedding_size=32,
                           decoder_embedding_size=32, n_heads=4, num_frames=4, batch_size=2,
                           mcm_ratio=0.5),
                 ddp=dict(num_frames=4, batch_size=1, mcm_ratio=0.5, n_layers=1, n_layers_dec=1,
                          embedding_size=32, decoder_embedding_size=32, n_heads=4),
                 ae2=dict(num_frames=4, batch_size=2, embedding_size=16, frame_stride=3,
                          dtw_shuffle_num=2, freeze_base=True),
                 eval_frames=(600, 8, 400, 8)),
}


class Check:
    """Collects figures and failures; `run(name, fn)` runs one check, loudly."""

    def __init__(self):
        self.figures: dict[str, dict] = {}
        self.failed: dict[str, str] = {}

    def run(self, name: str, fn, *args) -> dict | None:
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            out = fn(*args)
        except Exception:  # noqa: BLE001 - reported, and the script exits 1 at the end
            self.failed[name] = traceback.format_exc()
            print(f"FAILED {name}:\n{self.failed[name]}", flush=True)
            return None
        out["wall_s"] = round(time.perf_counter() - t0, 2)
        self.figures[name] = out
        print("   " + ", ".join(f"{k} {_fmt(v)}" for k, v in out.items()), flush=True)
        return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device):
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" \
        else None


def _version(fn):
    """A version lookup that may not exist in this build: its value, or why not."""
    try:
        value = fn()
    except Exception as e:  # noqa: BLE001 - reported as the value
        return f"unavailable ({type(e).__name__})"
    return ".".join(map(str, value)) if isinstance(value, (tuple, list)) else value


def environment(device: torch.device) -> dict:
    env = {"device": str(device), "torch": torch.__version__, "cuda_build": torch.version.cuda,
           "cudnn": _version(torch.backends.cudnn.version),
           "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        prop = torch.cuda.get_device_properties(device)
        env.update(gpu=prop.name, gpu_memory_gib=round(prop.total_memory / 2**30, 1),
                   capability=f"{prop.major}.{prop.minor}", bf16=torch.cuda.is_bf16_supported(),
                   gpus_visible=torch.cuda.device_count(),
                   nccl=_version(torch.cuda.nccl.version))
    return env


# ------------------------------------------------------------------------------------ set-up
def save_clips(folder: str, size: str) -> dict:
    """Random-init CLIP vision towers saved with save_pretrained: {name: directory}."""
    from transformers import CLIPVisionConfig, CLIPVisionModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = {}
    for name, cfg in CLIPS[size].items():
        path = os.path.join(folder, name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            CLIPVisionModel(CLIPVisionConfig(**cfg)).save_pretrained(path)
        out[name] = path
    return out


def make_data(folder: str, per_split: tuple, frames: int, size: int = 64) -> str:
    """A synthetic dataset with every video exactly `frames` long; returns the dataset root."""
    from byov.data.synthetic import generate

    root = os.path.join(folder, "data")
    generate(os.path.join(root, "synthetic"), layout="csv", seed=0, videos_per_split=per_split,
             min_frames=frames, max_frames=frames, size=size)
    return root


def config(argv: list[str]) -> dict:
    from utils.config import load_config, to_dict
    return to_dict(load_config(argv)[0])


def _args(**values) -> list[str]:
    from byov.grid.jobs import override_argv  # config keys as flags, as the grid passes them
    return override_argv(values)


# ------------------------------------------------------------------------------------ checks
def timed_training(cfg: dict, steps: int) -> dict:
    """build_training + train_one_epoch of `steps` steps; steps/s from the steps after the
    first two (warm-up: worker start, cuDNN autotuning, allocator growth)."""
    from byov import distributed as D
    from byov.training.engine import train_one_epoch
    from byov.training.assembly import build_training

    info = D.init_distributed(cfg["device"])
    t = build_training(cfg, info)
    stamps, losses = [], []

    def on_log(step, scalars):  # .item() in the loop has synchronised the device already
        stamps.append(time.perf_counter())
        losses.append(scalars["train/loss"])

    _reset_peak(info.device)
    start = time.perf_counter()
    train_one_epoch(t, 0, on_log=on_log)
    _sync(info.device)
    steps_s = np.diff([start] + stamps)
    steady = steps_s[2:] if len(steps_s) > 3 else steps_s
    bad = [n for n, p in t.method.named_parameters()
           if p.grad is not None and not torch.isfinite(p.grad).all()]
    if not all(math.isfinite(x) for x in losses) or bad:
        raise RuntimeError(f"non-finite loss {losses} or gradients {bad[:5]}")
    out = {"steps": len(stamps), "steps_per_s": round(1.0 / float(np.median(steady)), 3),
           "first_step_s": round(float(steps_s[0]), 2), "peak_gib": _peak_gib(info.device),
           "precision": D.effective_precision(info.device, cfg["precision"]),
           "loss": round(losses[-1], 5)}
    del t
    _reset_peak(info.device)
    return out


def check_train(ctx: dict, features: str) -> dict:
    s = SIZES[ctx["size"]]
    cfg = config(["--config", os.path.join(ROOT, "configs", "break_eggs.yaml"), *_args(
        dataset="synthetic", dataset_root=ctx["train_root"], device=ctx["device"],
        vision_encoder_path=ctx["clips"]["vit_l14"], input_size=s["input_size"],
        hidden_dim=CLIPS[ctx["size"]]["vit_l14"]["hidden_size"], features=features,
        feature_cache_dir=os.path.join(ctx["tmp"], "feature_cache"),
        frame_cache_dir=os.path.join(ctx["tmp"], "frame_cache"),
        output_dir=os.path.join(ctx["tmp"], f"run_{features}"), epochs=1,
        steps_per_epoch=s["train_steps"], ds_every_n_epoch=0, log_every=1, precision="bf16",
        num_workers=s["train_workers"], **s["byov"])])
    return timed_training(cfg, s["train_steps"])


def check_extract(ctx: dict, backbone: str, precision: str) -> dict:
    from byov.data.datasets import FrameSource
    from byov.data.layout import list_videos
    from byov.features.extract import extract_videos
    from byov.models.backbones import build_frame_encoder
    from byov.models.stm import num_selected_tokens

    s, device = SIZES[ctx["size"]], torch.device(ctx["device"])
    root = ctx["extract_root"]
    videos = list_videos(root, "synthetic", "train")
    source = FrameSource(root, "synthetic", "clip", s["input_size"])
    enc = build_frame_encoder("clip", ctx["clips"][backbone], input_size=s["input_size"])
    enc = enc.to(device).eval()
    images = torch.cat([source.load(v, np.arange(v.num_frames)) for v in videos]).to(device)
    n, batch = len(images), s["extract_batch"]
    cast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def bare() -> float:
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), cast:
            for i in range(0, n, batch):
                enc(images[i:i + batch])
        _sync(device)
        return time.perf_counter() - t0

    bare()  # warm-up: kernels, autotuning
    bare_s = min(bare(), bare())
    images = None  # free the device copy before the pipeline runs
    _reset_peak(device)
    k = num_selected_tokens(enc.num_patches, 0.3)
    cache = os.path.join(ctx["tmp"], f"x_{backbone}_{precision}")
    stats = extract_videos(videos, source, enc, cache, ("tokens", "merged"), "fp16", k,
                           batch_size=batch, num_workers=s["workers"], device=device,
                           progress=False, precision=precision)
    if stats["frames"] != n:
        raise RuntimeError(f"extracted {stats['frames']} frames of {n}")
    bare_fps, pipe_fps = n / bare_s, stats["frames_per_s"]
    return {"frames": n, "bare_frames_per_s": round(bare_fps, 1),
            "pipeline_frames_per_s": round(pipe_fps, 1), "ratio": round(pipe_fps / bare_fps, 3),
            "peak_gib": _peak_gib(device)}


def check_evaluate(ctx: dict) -> dict:
    import eval_speed
    import evaluate
    from byov.eval.io import save_split

    n_train, v_train, n_test, v_test = SIZES[ctx["size"]]["eval_frames"]
    rng = np.random.default_rng(0)
    protos = rng.normal(scale=0.15, size=(eval_speed.PHASES, eval_speed.DIM))
    offsets = rng.normal(scale=0.7, size=(2, eval_speed.DIM))
    folder = os.path.join(ctx["tmp"], "embeddings")
    save_split(folder, "train", eval_speed.make_split(rng, protos, offsets, n_train, v_train,
                                                      "train"))
    save_split(folder, "test", eval_speed.make_split(rng, protos, offsets, n_test, v_test, "test"))
    t0 = time.perf_counter()
    metrics = evaluate.main(["--embeddings", folder, "--json", os.path.join(folder, "m.json")])
    seconds = time.perf_counter() - t0
    f1 = metrics["classification_f1"]["regular"]
    if not (f1 is not None and 0 <= f1 <= 1):
        raise RuntimeError(f"classification F1 {f1}")
    return {"train_frames": n_train, "test_frames": n_test, "seconds": round(seconds, 2),
            "f1_regular": round(f1, 4)}


def check_ae2(ctx: dict) -> dict:
    s = SIZES[ctx["size"]]
    cfg = config(_args(dataset="synthetic", dataset_root=ctx["train_root"], device=ctx["device"],
                       method="dtw_contrastive", pretrained=False,
                       input_size=s["input_size"], precision="bf16", epochs=1,
                       steps_per_epoch=3, ds_every_n_epoch=0, log_every=1,
                       frame_cache_dir=os.path.join(ctx["tmp"], "frame_cache_ae2"),
                       output_dir=os.path.join(ctx["tmp"], "run_ae2"),
                       num_workers=s["train_workers"], **s["ae2"]))
    return timed_training(cfg, 3)


def check_ddp(ctx: dict) -> dict:
    s = SIZES[ctx["size"]]
    out_dir = os.path.join(ctx["tmp"], "run_ddp")
    args = _args(dataset="synthetic", dataset_root=ctx["train_root"], device=ctx["device"],
                 vision_encoder_path=ctx["clips"]["vit_b16"], input_size=s["input_size"],
                 hidden_dim=CLIPS[ctx["size"]]["vit_b16"]["hidden_size"], epochs=1,
                 steps_per_epoch=3, ds_every_n_epoch=0, save_every=1, log_every=1,
                 precision="bf16", num_workers=s["train_workers"],
                 frame_cache_dir=os.path.join(ctx["tmp"], "frame_cache"), output_dir=out_dir,
                 **s["ddp"])
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "1", "train.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun train.py exited {proc.returncode}:\n"
                           f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    ckpt = torch.load(os.path.join(out_dir, "checkpoints", "last.pth"), map_location="cpu",
                      weights_only=True)
    if ckpt["world_size"] != 1 or ckpt["step"] != 3:
        raise RuntimeError(f"checkpoint world_size {ckpt['world_size']}, step {ckpt['step']}")
    ctx["ddp_checkpoint"] = os.path.join(out_dir, "checkpoints", "last.pth")
    line = next((x for x in proc.stdout.splitlines() if x.startswith("training ")), "")
    return {"backend": "nccl" if torch.device(ctx["device"]).type == "cuda" else "gloo",
            "steps": ckpt["step"], "seconds": round(seconds, 1), "run": line.strip()}


def check_bf16_embeddings(ctx: dict) -> dict:
    from byov.checkpoint import load_checkpoint
    from byov.data.validate import load_validated
    from byov.downstream.embed import embed_split
    from byov.methods import build_method
    from byov.spec import data_spec, method_spec

    def embed_val(method, cfg):  # what evaluation embeds: the validated split, fp32 rows
        data = data_spec(cfg)
        videos, labels = load_validated(data.root, data.dataset, ("val",), data.frame_cache_dir)
        return embed_split(method.embed_video, videos["val"], labels, "val", progress=False)

    if "ddp_checkpoint" not in ctx:
        raise RuntimeError("needs the checkpoint of the ddp check, which did not finish")
    ckpt = load_checkpoint(ctx["ddp_checkpoint"])
    cfg = {**ckpt["config"], "device": ctx["device"]}
    device = torch.device(ctx["device"])
    # the frozen backbone's weights are not in a BYOV checkpoint: they come from its saved folder
    method = build_method(method_spec(cfg), pretrained=ckpt.get("backbone") is None)
    method.load_state_entries(ckpt)
    method.to(device).eval()
    full = embed_val(method, cfg).embeds
    method.clear_memo()  # the merged backbone features are recomputed under bf16 too
    with torch.autocast(device.type, dtype=torch.bfloat16):
        half = embed_val(method, cfg).embeds
    diff = np.abs(np.asarray(half, np.float64) - np.asarray(full, np.float64))
    if not np.isfinite(half).all():
        raise RuntimeError("non-finite bf16 embeddings")
    return {"frames": len(full), "max_abs_diff": float(diff.max()),
            "max_rel_diff": float(diff.max() / np.abs(full).max()),
            "mean_abs_diff": float(diff.mean())}


# ------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--tiny", action="store_true", help="tiny models and data (CPU / CI)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write every figure here")
    p.add_argument("--only", default="", help="comma-separated check names (default: all)")
    args = p.parse_args(argv)
    from byov.distributed import resolve_device

    device = resolve_device(args.device)  # a missing GPU fails here, with the fix
    size = "tiny" if args.tiny else "real"
    env = environment(device)
    print("gpu_check: " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    check = Check()
    with tempfile.TemporaryDirectory(prefix="byov_gpu_check_") as tmp:
        s = SIZES[size]
        ctx = {"tmp": tmp, "size": size, "device": str(device),
               "clips": save_clips(os.path.join(tmp, "clips"), size),
               "train_root": make_data(os.path.join(tmp, "train"), s["train_videos"],
                                       s["frames"]),
               "extract_root": make_data(os.path.join(tmp, "extract"),
                                         (s["extract_videos"], 2, 2), s["extract_frames"],
                                         size=128)}
        from byov.data.frame_cache import ensure_frame_cache, frame_cache_path
        from byov.data.layout import list_videos
        for v in list_videos(ctx["extract_root"], "synthetic", "train"):  # untimed, as training
            ensure_frame_cache(v, frame_cache_path(v, ctx["extract_root"], "synthetic"))
        plan = [("train_fly", check_train, "fly"), ("train_tokens", check_train, "tokens")]
        plan += [(f"extract_{b}_{pr}", check_extract, b, pr) for b in ("vit_b16", "vit_l14")
                 for pr in ("fp32", "bf16")]
        plan += [("evaluate", check_evaluate), ("ae2_step", check_ae2), ("ddp", check_ddp),
                 ("bf16_embed", check_bf16_embeddings)]
        only = {x for x in args.only.split(",") if x}
        for name, fn, *rest in plan:
            if not only or name in only:
                check.run(name, fn, ctx, *rest)
    print("\n" + table(check))
    result = {"environment": env, "size": size, "figures": check.figures,
              "failed": sorted(check.failed)}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    if check.failed:
        print(f"gpu_check FAILED: {', '.join(sorted(check.failed))}", file=sys.stderr)
        return 1
    print("gpu_check: all checks passed")
    return 0


def table(check: Check) -> str:
    rows = [("check", "figure", "value")]
    for name, figures in check.figures.items():
        for key, value in figures.items():
            rows.append((name, key, _fmt(value)))
    rows += [(name, "FAILED", "see traceback above") for name in check.failed]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    from byov.distributed import DeviceError
    try:
        sys.exit(main())
    except DeviceError as e:  # e.g. --device cuda here without a GPU: the fix, not a traceback
        sys.exit(f"gpu_check: error: {e}")
