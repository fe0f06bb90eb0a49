"""Run logging: one JSON line per event in <output_dir>/log.jsonl, TensorBoard scalars in
<output_dir>/tb/, and small running-average meters for the console line.

Each log.jsonl line is {"step": int, "epoch": int (if given), "time": unix seconds,
"elapsed": seconds since the logger started, <name>: value, ...}. Non-finite numbers are written as
null so every line stays valid JSON. On non-main ranks the logger is disabled and touches no files.
"""
from __future__ import annotations

import collections
import json
import math
import numbers
import os
import time
from typing import Any

from byov.atomic import atomic_write_text


def _to_number(name: str, value: Any) -> Any:
    """Tensors / numpy scalars -> python numbers; str and bool pass; anything else is an error."""
    shape = getattr(value, "shape", None)  # torch tensors and numpy arrays / scalars
    if shape is not None and hasattr(value, "item"):
        if math.prod(shape) != 1:
            raise ValueError(f"log value {name!r} must be a scalar, got shape {tuple(shape)}")
        value = value.item()
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise ValueError(f"log value {name!r} has type {type(value).__name__}; log numbers or "
                     f"strings")


def iter_log_records(path: str):
    """Yield (line, record) for each JSON object line of a log.jsonl; a torn line (the last line
    of a killed run) or a non-object is skipped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield line, record


def _truncate_after(path: str, step: int) -> None:
    """Keep the log.jsonl records up to `step` (a torn last line of a killed run is dropped)."""
    kept = [line if line.endswith("\n") else line + "\n"
            for line, record in iter_log_records(path) if record.get("step", 0) <= step]
    atomic_write_text(path, "".join(kept))


class RunLogger:
    """log(step, epoch=None, **scalars) -> log.jsonl line + TensorBoard scalars."""

    def __init__(self, output_dir: str, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int | None = None):
        """resume_step: the global step of the checkpoint a run resumes from. Records logged after
        it by the interrupted run (their work is redone) are dropped from log.jsonl and purged
        from TensorBoard, so each step appears once."""
        self.output_dir = output_dir
        self.enabled = enabled
        self.start = time.time()
        self._file = None
        self._writer = None
        if not enabled:
            return
        if tensorboard:
            try:  # lazy: CPU users and tests without tensorboard pay nothing when it is off
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError(f"TensorBoard logging was asked for but cannot be imported "
                                  f"({exc}); `pip install tensorboard`, or create the RunLogger "
                                  f"with tensorboard=False") from exc
        os.makedirs(output_dir, exist_ok=True)
        self.path = os.path.join(output_dir, "log.jsonl")
        if resume_step is not None and os.path.isfile(self.path):
            _truncate_after(self.path, resume_step)
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")  # line-buffered
        if tensorboard:
            self._writer = SummaryWriter(
                log_dir=os.path.join(output_dir, "tb"),
                purge_step=None if resume_step is None else resume_step + 1)

    def log(self, step: int, epoch: int | None = None, **scalars: Any) -> None:
        if not self.enabled:
            return
        if self._file is None:
            raise RuntimeError(f"RunLogger for {self.output_dir} is closed")
        now = time.time()
        record: dict[str, Any] = {"step": int(step)}
        if epoch is not None:
            record["epoch"] = int(epoch)
        record["time"] = round(now, 3)
        record["elapsed"] = round(now - self.start, 3)
        for name, value in scalars.items():
            if name in record:
                raise ValueError(f"log key {name!r} is reserved (step, epoch, time, elapsed)")
            value = _to_number(name, value)
            finite = not isinstance(value, float) or math.isfinite(value)
            record[name] = value if finite else None
            if self._writer is not None and not isinstance(value, (str, bool)):
                self._writer.add_scalar(name, value, int(step))
        self._file.write(json.dumps(record, allow_nan=False) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SmoothedValue:
    """A series with its windowed median / mean and its global mean (MAE's SmoothedValue)."""

    def __init__(self, window: int = 20):
        self.values: collections.deque[float] = collections.deque(maxlen=window)
        self.total = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        """Add `value`, weighted n times in the global mean (e.g. n = batch size)."""
        value = float(value)
        self.values.append(value)
        self.total += value * n
        self.count += n

    @property
    def value(self) -> float:
        return self.values[-1] if self.values else math.nan

    @property
    def avg(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    @property
    def median(self) -> float:
        if not self.values:
            return math.nan
        ordered = sorted(self.values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    @property
    def global_avg(self) -> float:
        return self.total / self.count if self.count else math.nan

    def __str__(self) -> str:
        return f"{self.value:.4g} ({self.global_avg:.4g})"


class MetricMeter:
    """Named SmoothedValues plus step timing.

    Per iteration: `data_ready()` when the batch has arrived, `update(loss=..., lr=...)`, and
    `tick(n_items)` when the step is done. `throughput` is items/s over the window, `data_time`
    and `iter_time` are windowed means in seconds.
    """

    def __init__(self, window: int = 20):
        self.window = window
        self.meters: dict[str, SmoothedValue] = {}
        self._iter_time = SmoothedValue(window)
        self._data_time = SmoothedValue(window)
        self._items = SmoothedValue(window)
        self._last = time.perf_counter()

    def update(self, n: int = 1, **values: Any) -> None:
        for name, value in values.items():
            if hasattr(value, "item"):
                value = value.item()
            self.meters.setdefault(name, SmoothedValue(self.window)).update(value, n)

    def reset_timer(self) -> None:
        """Restart the clock, e.g. at the start of an epoch (so eval time is not counted)."""
        self._last = time.perf_counter()

    def data_ready(self) -> None:
        self._data_time.update(time.perf_counter() - self._last)

    def tick(self, n_items: int = 1) -> None:
        now = time.perf_counter()
        self._iter_time.update(now - self._last)
        self._items.update(n_items)
        self._last = now

    @property
    def iter_time(self) -> float:
        return self._iter_time.avg

    @property
    def data_time(self) -> float:
        return self._data_time.avg

    @property
    def throughput(self) -> float:
        seconds = sum(self._iter_time.values)
        return sum(self._items.values) / seconds if seconds > 0 else math.nan

    def averages(self) -> dict[str, float]:
        """Global means of every meter (what an epoch summary logs)."""
        return {name: meter.global_avg for name, meter in self.meters.items()}

    def __str__(self) -> str:
        parts = [f"{name}: {meter}" for name, meter in self.meters.items()]
        if self._iter_time.values:
            parts.append(f"{self.throughput:.3g} items/s")
            parts.append(f"data {self.data_time:.3g}s")
        return "  ".join(parts)
