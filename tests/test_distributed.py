import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from byov.distributed import (all_reduce_mean, autocast_context, broadcast_object,
                              effective_precision, init_distributed, make_grad_scaler,
                              seed_everything)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    from byov.distributed import (all_reduce_mean, barrier, broadcast_object, cleanup,
                                  init_distributed, seed_everything)

    out, results = sys.argv[1], sys.argv[2]
    info = init_distributed("cpu")
    seed = seed_everything(0, info.rank)
    mean = all_reduce_mean(float(info.rank))
    tensor_mean = all_reduce_mean(torch.tensor([info.rank, 2.0 * info.rank]))
    token = broadcast_object({"run": "abc"} if info.is_main else None)
    if info.is_main:  # only rank 0 writes
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "main.json"), "w") as f:
            json.dump({"rank": info.rank}, f)
    barrier()
    line = dict(rank=info.rank, world_size=info.world_size, local_rank=info.local_rank,
                device=str(info.device), backend=info.backend, distributed=info.distributed,
                is_main=info.is_main, seed=seed, mean=mean, tensor_mean=tensor_mean.tolist(),
                token=token, files=sorted(os.listdir(out)))
    # one file per rank: lines printed by two ranks can interleave in torchrun's output
    with open(os.path.join(results, f"rank{info.rank}.json"), "w") as f:
        json.dump(line, f)
    cleanup()
""")


def test_two_process_gloo_via_torchrun(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out, results_dir = tmp_path / "run", tmp_path / "results"
    results_dir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONPATH=ROOT, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), str(out), str(results_dir)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [json.loads((results_dir / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in results] == [0, 1]
    for r in results:
        assert r["world_size"] == 2 and r["local_rank"] == r["rank"]
        assert r["device"] == "cpu" and r["backend"] == "gloo" and r["distributed"]
        assert r["is_main"] == (r["rank"] == 0) and r["seed"] == r["rank"]
        assert r["mean"] == 0.5 and r["tensor_mean"] == [0.5, 1.0]
        assert r["token"] == {"run": "abc"}
        assert r["files"] == ["main.json"]  # rank 1 wrote nothing
    assert json.loads((out / "main.json").read_text()) == {"rank": 0}


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_single_process_without_torchrun_env(no_torchrun_env):
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.local_rank) == (0, 1, 0)
    assert info.is_main and not info.distributed and info.backend == ""
    assert info.device == torch.device("cpu")
    # collectives are identities for one process
    assert all_reduce_mean(3.0) == 3.0 and broadcast_object("x") == "x"
    no_torchrun_env.setattr(torch.cuda, "is_available", lambda: False)
    assert init_distributed("auto").device == torch.device("cpu")


def test_device_errors(no_torchrun_env):
    no_torchrun_env.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="--device cuda asked for CUDA.*--device cpu"):
        init_distributed("cuda")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        init_distributed("gpu")
    no_torchrun_env.setenv("RANK", "0")
    with pytest.raises(RuntimeError, match=r"\['WORLD_SIZE', 'LOCAL_RANK'\] are not"):
        init_distributed("cpu")


def test_seed_everything_reproduces_and_differs_by_rank():
    import random

    import numpy as np

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    assert seed_everything(5, rank=1) == 6
    first = draws()
    seed_everything(6)
    assert draws() == first
    seed_everything(5, rank=0)
    assert draws() != first
    with pytest.raises(ValueError, match="2\\*\\*32"):
        seed_everything(2 ** 32)


def test_cpu_precision_is_fp32():
    cpu = torch.device("cpu")
    for precision in ("bf16", "fp16", "fp32"):
        assert effective_precision(cpu, precision) == "fp32"
        with autocast_context(cpu, precision):
            y = torch.ones(2, 2) @ torch.ones(2, 2)
        assert y.dtype == torch.float32
        assert not make_grad_scaler(cpu, precision).is_enabled()
    assert effective_precision("cuda", "fp16") == "fp16"
    with pytest.raises(ValueError, match="--precision 'half'"):
        autocast_context(cpu, "half")

