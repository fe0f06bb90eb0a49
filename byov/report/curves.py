"""Training curves from log.jsonl, plotted generically (every method logs its own keys).

log.jsonl (byov/training/logger.py) holds per-step records (`train/<term>`, `train/lr`, ...) and one
summary per epoch (`train/<term>` epoch means, `val/<term>` losses on fixed val pairs and, on
evaluation epochs, the downstream val metrics `val/<task>/<setting>`, `val/<task>`). Here:
- a loss term is a name logged both as `train/<name>` and `val/<name>`; it gets one panel with the
  per-step train values, the per-epoch train means and the per-epoch val values, against steps;
- every other numeric `train/*` key (learning rate, throughput, EMA momentum, ...) and any other
  numeric key of the summaries (epoch_seconds) gets a panel against steps;
- every other `val/*` key is a downstream metric, grouped by its middle part
  (`val/classification_f1/ego2exo` -> panel classification_f1, line ego2exo), against epochs.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from byov.report.style import new_figure, rc, save_figure

RESERVED = ("step", "epoch", "time", "elapsed")
NCOLS = 4


def _numeric(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)))


@dataclass
class LogKeys:
    """How the keys of a log were classified (see the module docstring)."""

    loss_terms: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    metric_groups: dict[str, list[str]] = field(default_factory=dict)


def classify_keys(records: list[dict]) -> LogKeys:
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in RESERVED and _numeric(v):
                keys.setdefault(k)
    train = {k[6:] for k in keys if k.startswith("train/")}
    val = {k[4:] for k in keys if k.startswith("val/")}
    out = LogKeys()
    out.loss_terms = [k[6:] for k in keys if k.startswith("train/") and k[6:] in val]
    out.other = [k for k in keys if not k.startswith("val/")
                 and not (k.startswith("train/") and k[6:] in val)]
    for k in keys:
        if k.startswith("val/") and k[4:] not in train:
            parts = k.split("/")
            group = parts[1] if len(parts) > 2 else k[4:]
            out.metric_groups.setdefault(group, []).append(k)
    return out


def _series(records, key, where=None):
    xs, ys = [], []
    for r in records:
        if _numeric(r.get(key)) and (where is None or where(r)):
            xs.append(r.get("step", len(xs)))
            ys.append(float(r[key]))
    return np.asarray(xs), np.asarray(ys)


def _epoch_series(records, key):
    xs, ys = [], []
    for r in records:
        if _numeric(r.get(key)) and "epoch" in r:
            xs.append(int(r["epoch"]))
            ys.append(float(r[key]))
    return np.asarray(xs), np.asarray(ys)


def _grid(n: int, width: float = 4.2, height: float = 3.0):
    cols = max(1, min(NCOLS, n))
    rows = math.ceil(n / cols)
    fig = new_figure(width * cols, height * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _is_summary(r: dict) -> bool:
    return any(k.startswith("val/") for k in r)


def plot_losses(records: list[dict], keys: LogKeys, path: str) -> str | None:
    """Loss terms (train per step, train epoch mean, val per epoch) and the other train scalars,
    against the global step. None when the log holds none."""
    panels = [("loss", k) for k in keys.loss_terms] + [("other", k) for k in keys.other]
    if not panels:
        return None
    with rc():
        fig, axes = _grid(len(panels))
        for ax, (kind, name) in zip(axes, panels):
            if kind == "loss":
                x, y = _series(records, f"train/{name}", lambda r: not _is_summary(r))
                if len(x):
                    ax.plot(x, y, color="#1f77b4", alpha=0.35, lw=1, label="train (per step)")
                x, y = _series(records, f"train/{name}", _is_summary)
                if len(x):
                    ax.plot(x, y, "o-", color="#1f77b4", ms=3, lw=1.5, label="train (epoch mean)")
                x, y = _series(records, f"val/{name}")
                if len(x):
                    ax.plot(x, y, "s-", color="#d62728", ms=3, lw=1.5, label="val (epoch)")
                ax.set_title(f"loss term: {name}")
                ax.legend(loc="best", fontsize=9, framealpha=0.85)
            else:
                x, y = _series(records, name)
                ax.plot(x, y, ".-", color="#555555", ms=3, lw=1)
                ax.set_title(name)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        return save_figure(fig, path)


def plot_val_metrics(records: list[dict], keys: LogKeys, path: str) -> str | None:
    """Downstream val metrics per evaluation epoch, one panel per group. None when the log holds
    none (no downstream evaluation ran during training)."""
    groups = keys.metric_groups
    if not groups:
        return None
    with rc():
        fig, axes = _grid(len(groups))
        for ax, (group, names) in zip(axes, groups.items()):
            for i, key in enumerate(names):
                x, y = _epoch_series(records, key)
                label = key.split("/")[-1] if len(names) > 1 else None
                ax.plot(x, y, "o-", ms=4, lw=1.5, color=f"C{i}", label=label)
            ax.set_title(group)
            ax.set_xlabel("epoch (0-based)")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            if len(names) > 1:
                ax.legend(loc="best", fontsize=9, framealpha=0.85)
        fig.tight_layout()
        return save_figure(fig, path)
