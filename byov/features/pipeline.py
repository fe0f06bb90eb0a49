"""The moving parts that keep an accelerator busy during feature extraction (docs/gpu.md).

- `BackendForward`: the backbone forward as extraction runs it: pinned host batches uploaded with
  non-blocking copies, optional bf16 autocast, channels-last input and `torch.compile`, and the
  tokens copied back to the host without blocking (a CUDA event says when they have arrived).
- `BackgroundWriter`: one thread that does the host-side work of a batch (STM, dtype conversion,
  file writes, renames) while the main thread runs the next forward.
- `shard_videos`: which videos a rank of `torchrun --nproc_per_node G -m byov.features extract`
  extracts (balanced by frame count, the same answer on every rank).

On the CPU with the defaults (fp32, no channels-last, no compile) the forward is exactly the call
`frame_encoder(torch.cat(parts))` and the writer runs the same operations in the same order, so the
cached numbers are bit-identical to a plain serial loop.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Callable, Sequence

import torch

EXTRACT_PRECISIONS = ("fp32", "bf16")


def shard_videos(videos: Sequence, rank: int, world_size: int) -> list:
    """The videos rank `rank` of `world_size` extracts, in their given order.

    Longest first, each video goes to the rank with the fewest frames so far (ties: lowest
    rank), so ranks finish at about the same time. A pure function of the video list: every
    rank computes the same partition without talking to the others; together the shards hold
    each video exactly once.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, world_size={world_size})")
    load = [0] * world_size
    owner = {}
    order = sorted(range(len(videos)), key=lambda i: (-int(videos[i].num_frames), i))
    for i in order:
        r = min(range(world_size), key=lambda q: (load[q], q))
        owner[i] = r
        load[r] += int(videos[i].num_frames)
    return [v for i, v in enumerate(videos) if owner[i] == rank]


class BackendForward:
    """callable(parts: list of (n_i, 3, S, S) host tensors) -> (tokens (sum n_i, N, d) float32 on
    the host, ready: a callable that blocks until the tokens have arrived).

    Args:
        frame_encoder: the frozen FrameEncoder, already on `device` and in eval mode.
        precision: "fp32" (default; the released numerics) or "bf16" (autocast on `device`:
            faster on GPUs with bf16 tensor cores; the tokens differ, see docs/gpu.md).
        channels_last: feed NHWC-strided input and weights (helps convolutional backbones on
            GPUs; rounding-level differences only).
        compile: run the backbone through `torch.compile` (first batches are slow: compilation).
    Raises:
        ValueError: an unknown precision.
    """

    def __init__(self, frame_encoder: torch.nn.Module, device: torch.device,
                 precision: str = "fp32", channels_last: bool = False, compile: bool = False):
        if precision not in EXTRACT_PRECISIONS:
            raise ValueError(f"extraction precision must be one of {EXTRACT_PRECISIONS}; got "
                             f"{precision!r}")
        self.device, self.precision, self.channels_last = device, precision, channels_last
        if channels_last:
            frame_encoder = frame_encoder.to(memory_format=torch.channels_last)
        # torch.compile wraps without touching the module the caller keeps using
        self.fn: Callable = torch.compile(frame_encoder) if compile else frame_encoder

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def __call__(self, parts: Sequence[torch.Tensor]):
        cuda = self.device.type == "cuda"
        if cuda:  # each part is a (pinned) loader tensor: upload them asynchronously, cat there
            x = torch.cat([p.to(self.device, non_blocking=True) for p in parts])
        else:
            x = torch.cat(list(parts)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self._autocast():
            tokens = self.fn(x).float()
        if not cuda:
            return tokens.cpu(), lambda: None
        host = tokens.to("cpu", non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event.synchronize


class BackgroundWriter:
    """Runs `work()` callables one at a time, in order, on one background thread.

    At most `depth` are waiting (back-pressure bounds the host memory held by queued batches).
    The first exception raised by a work item stops the thread; it is re-raised in the caller by
    the next `submit` or by `close`. Use as a context manager: leaving it waits for the queue.
    """

    def __init__(self, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="byov-feature-writer",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            if self._error is None:
                try:
                    work()
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, work: Callable[[], None]) -> None:
        self._raise()
        self._queue.put(work)

    def close(self) -> None:
        """Wait for every submitted item; re-raise the first error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # already failing: stop the thread, keep the original error
            if self._thread.is_alive():
                self._queue.put(None)
                self._thread.join()
