"""Single-process or torchrun DDP setup, seeding and mixed precision
(docs/design.md#training-loop-and-precision).

Launch with `python train.py ...` (one process) or `torchrun --nproc_per_node=N train.py ...`
(DDP: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT). NCCL is used on
CUDA and gloo on CPU. Only rank 0 (`DistInfo.is_main`) writes logs and checkpoints.

Precision: bf16 or fp16 autocast on CUDA. CPU always runs fp32, whatever
--precision says: CPU runs are for tests, the demo and parity checks, which compare against the
released fp32 numerics at 1e-5 (autocast would break that), and CPU bf16 speed depends on the
hardware (emulated, hence slower, on CPUs without bf16 instructions; on an AVX512-BF16 EPYC a
768-wide transformer layer ran ~2x faster in bf16, so the choice is about numerics, not speed).
`effective_precision()` says what actually runs, so the run log can record it.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from byov.errors import ByovError

PRECISIONS = ("bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool
    distributed: bool
    backend: str  # "nccl" | "gloo" | "" (single process)


class DeviceError(ByovError, RuntimeError):
    """The asked-for device does not exist here (e.g. --device cuda without a CUDA device)."""


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer; launch with "
                         f"torchrun, or unset {name} for a single process") from None


def _resolve_device(device: str, local_rank: int, distributed: bool) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a concrete torch.device for this process."""
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else \
            torch.device("cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device} asked for CUDA, but torch sees no CUDA device "
                              f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                              f"use --device cpu or --device auto")
        if device == "cuda":
            index = local_rank
        else:
            try:
                index = int(device.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"--device {device}: expected cuda:N with an integer N") from None
            if distributed and index != local_rank:
                raise ValueError(f"--device {device} under torchrun: each process uses the GPU of "
                                 f"its LOCAL_RANK ({local_rank}); pass --device cuda or auto")
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: CUDA device {index} does not exist "
                             f"({torch.cuda.device_count()} visible; check CUDA_VISIBLE_DEVICES "
                             f"and --nproc_per_node)")
        return torch.device(f"cuda:{index}")
    raise ValueError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def resolve_device(device: str) -> torch.device:
    """The device `device` ('auto' | 'cpu' | 'cuda' | 'cuda:N') names for this process (under
    torchrun: its LOCAL_RANK's GPU), checked before any work starts.

    Raises:
        DeviceError: CUDA asked for but absent, or a GPU index that does not exist.
        ValueError: anything else than auto, cpu, cuda or cuda:N.
    """
    distributed = all(v in os.environ for v in _TORCHRUN_VARS)
    local_rank = _env_int("LOCAL_RANK") if distributed else 0
    return _resolve_device(device, local_rank, distributed)


def init_distributed(device: str = "auto") -> DistInfo:
    """Set up this process: torchrun DDP when RANK/WORLD_SIZE/LOCAL_RANK are set, else one process.
    Sets the current CUDA device; initializes the process group (NCCL on CUDA, gloo on CPU)."""
    present = [v for v in _TORCHRUN_VARS if v in os.environ]
    if present and len(present) != len(_TORCHRUN_VARS):
        missing = [v for v in _TORCHRUN_VARS if v not in os.environ]
        raise RuntimeError(f"{present} are set but {missing} are not; launch with torchrun (it "
                           f"sets all of {list(_TORCHRUN_VARS)}) or unset them for one process")
    distributed = bool(present)
    if distributed:
        rank, world_size, local_rank = (_env_int(v) for v in _TORCHRUN_VARS)
        if not 0 <= rank < world_size:
            raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    else:
        rank, world_size, local_rank = 0, 1, 0
    dev = _resolve_device(device, local_rank, distributed)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = ""
    if distributed:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            for var in ("MASTER_ADDR", "MASTER_PORT"):
                if var not in os.environ:
                    raise RuntimeError(f"{var} is not set; launch with torchrun, which sets it")
            kwargs = {"device_id": dev} if dev.type == "cuda" else {}
            # rank 0 runs the downstream evaluation alone while the others wait at a barrier:
            # allow it far longer than the default collective timeout
            dist.init_process_group(backend=backend, init_method="env://", rank=rank,
                                    world_size=world_size, timeout=datetime.timedelta(hours=4),
                                    **kwargs)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev,
                    is_main=rank == 0, distributed=distributed, backend=backend)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def cleanup() -> None:
    """Tear down the process group (no-op for a single process)."""
    if _active():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if not _active():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor | float) -> torch.Tensor | float:
    """Mean of `value` over ranks; a float gives a float, a tensor a new tensor (input untouched).
    Single process: returned as is."""
    if not _active():
        return value
    is_tensor = isinstance(value, torch.Tensor)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
        else torch.device("cpu")
    t = value.detach().clone().to(device) if is_tensor else \
        torch.tensor(float(value), dtype=torch.float64, device=device)
    if not t.is_floating_point():
        t = t.double()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    if is_tensor:
        return t.to(value.device)
    return float(t.item())


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (picklable objects; single process: returned as is)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed python, numpy and torch (CPU and all CUDA devices) with seed + rank, so ranks draw
    different masks / samples but a run is reproducible. Returns the seed used."""
    value = int(seed) + int(rank)
    if not 0 <= value < 2 ** 32:
        raise ValueError(f"seed + rank = {value} must be in [0, 2**32) (numpy's limit); "
                         f"pass a smaller --seed")
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device
    return value


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: expected one of {PRECISIONS}")


def effective_precision(device: torch.device | str, precision: str) -> str:
    """The precision that actually runs: `precision` on CUDA, always fp32 elsewhere."""
    _check_precision(precision)
    return precision if torch.device(device).type == "cuda" else "fp32"


def autocast_context(device: torch.device | str, precision: str):
    """torch.autocast for bf16/fp16 on CUDA; a no-op context for fp32 and on CPU (see module doc)."""
    device = torch.device(device)
    if effective_precision(device, precision) == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 "
                           f"support; use --precision fp16 (or fp32)")
    return torch.autocast(device_type="cuda", dtype=_DTYPES[precision])


def make_grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is enabled only for fp16 on CUDA (bf16 and fp32 need no loss scaling)."""
    device = torch.device(device)
    enabled = effective_precision(device, precision) == "fp16"
    return torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu", enabled=enabled)
