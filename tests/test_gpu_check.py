"""`python bench/gpu_check.py --device cpu --tiny`: the GPU check's code, every stage, on a CPU
(docs/gpu.md). Its figures are timings of a shared machine, so only their presence and sanity
are asserted, never their values."""
import json
import math
import subprocess
import sys

from conftest import ROOT
from train_helpers import subprocess_env

CHECKS = ["train_fly", "train_tokens", "extract_vit_b16_fp32", "extract_vit_b16_bf16",
          "extract_vit_l14_fp32", "extract_vit_l14_bf16", "evaluate", "ae2_step", "ddp",
          "bf16_embed"]


def test_gpu_check_tiny_on_cpu_runs_every_check(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--tiny",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=400, env={**subprocess_env(), "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.startswith("gpu_check: device cpu, torch ")
    assert "gpu_check: all checks passed" in proc.stdout
    result = json.loads(out.read_text())
    figures = result["figures"]
    assert result["failed"] == [] and list(figures) == CHECKS
    assert result["environment"]["device"] == "cpu" and result["size"] == "tiny"
    for name in ("train_fly", "train_tokens", "ae2_step"):
        f = figures[name]
        assert f["steps_per_s"] > 0 and math.isfinite(f["loss"]) and f["precision"] == "fp32"
    for name in CHECKS[2:6]:
        f = figures[name]
        assert f["frames"] == 32 and f["bare_frames_per_s"] > 0
        assert math.isclose(f["ratio"], f["pipeline_frames_per_s"] / f["bare_frames_per_s"],
                            rel_tol=0.01, abs_tol=1e-3)
    assert 0 <= figures["evaluate"]["f1_regular"] <= 1
    assert figures["ddp"]["backend"] == "gloo" and figures["ddp"]["steps"] == 3
    assert "world size 1" in figures["ddp"]["run"]
    emb = figures["bf16_embed"]
    assert 0 < emb["max_rel_diff"] < 0.05  # bf16 really ran, within docs/gpu.md's tolerance
    # the table lists every figure
    for name in CHECKS:
        assert f"\n{name} " in proc.stdout


def test_gpu_check_without_a_gpu_says_so_at_start_up():
    proc = subprocess.run([sys.executable, "bench/gpu_check.py"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**subprocess_env(), "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 1
    assert "gpu_check: error: --device cuda asked for CUDA, but torch sees no CUDA device" in \
        proc.stderr and "Traceback" not in proc.stderr
