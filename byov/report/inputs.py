"""What a report is made from: the run folder's config, log, checkpoint and evaluation folders.

Run folder (docs/training.md#run-folder): `config.yaml`, `log.jsonl`, `checkpoints/{best,last,...}.pth`,
`eval/<checkpoint stem>/` (what `evaluate.py --ckpt` writes: `{train,<split>}_embeds.npy`,
`_label.npy`, `_videos.json`, `metrics.json`) and the frozen-backbone baseline's evaluation folder
(`eval/baseline_frozen/` or `eval/frozen_features/`, what `evaluate.py --frozen_features` writes).

Embeddings and metrics that are missing or stale (content keys: checkpoint bytes, data
fingerprint, settings) are produced by the library's one evaluation call,
`byov.downstream.evaluate_model`, as `evaluate.py` does, so the report never re-implements
embedding or scoring and never shows stale embeddings or labels.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Callable

from byov.errors import ByovError
from byov.eval import TASKS
from byov.eval.baselines import time_split
from byov.eval.io import SplitData, load_split
from byov.spec import downstream_spec
from byov.training.logger import iter_log_records

RANDOM_INIT_FOLDER = "baseline_random_init"  # the untrained method; shown only when present


class ReportError(ByovError):
    """The run folder cannot be reported on; the message names the path and the fix."""


@dataclass
class Evaluation:
    """The embeddings of one model (or baseline) on the train and evaluated splits.

    Attributes:
        name: the label on the page and in the figures, e.g. "BYOV (best.pth)".
        kind: "model", "frozen", "time" or "random_init".
        train, evl: the splits (embeds (N, D), labels (N,), per-video metadata in row order).
        metrics: the `metrics` dict of the folder's metrics.json (evaluate.py's keys).
        folder: the evaluation folder, or None for one computed in memory.
    """

    name: str
    kind: str
    train: SplitData
    evl: SplitData
    metrics: dict
    folder: str | None = None


@dataclass
class RunInputs:
    """Everything the figures and the page need from one run."""

    run_dir: str
    ckpt_path: str
    split: str
    spec: object  # byov.spec.DownstreamSpec of the checkpoint (its config + location overrides)
    config_text: str
    log: list[dict]
    model: Evaluation
    baselines: list[Evaluation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resolve_checkpoint(run_dir: str, ckpt: str = "best") -> str:
    """The checkpoint file: `best` (falls back to last.pth when no best.pth was written, as
    scripts/run.sh does), `last`, or a path.

    Raises:
        ReportError: the file does not exist.
    """
    from byov.hub import names_export

    folder = os.path.join(run_dir, "checkpoints")
    if names_export(ckpt):  # an export (docs/hub.md)
        return ckpt
    if ckpt in ("best", "last"):
        path = os.path.join(folder, f"{ckpt}.pth")
        if ckpt == "best" and not os.path.isfile(path):
            path = os.path.join(folder, "last.pth")
    else:
        path = ckpt
    if not os.path.isfile(path):
        found = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        raise ReportError(f"checkpoint {path} does not exist (found in {folder}: "
                          f"{', '.join(found) or 'nothing'}); pass --ckpt best|last|PATH of a "
                          f"run folder written by train.py")
    return path


def read_config(run_dir: str) -> tuple[dict, str]:
    """(the resolved config as a dict, its yaml text) from RUN_DIR/config.yaml."""
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise ReportError(f"{path} does not exist: RUN_DIR must be a run folder written by "
                          f"train.py (--output_dir), holding config.yaml, log.jsonl and "
                          f"checkpoints/")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise ReportError(f"{path} does not hold a flat key: value mapping; it is not a "
                          f"config.yaml written by train.py")
    return config, text


def read_log(run_dir: str) -> list[dict]:
    """The records of RUN_DIR/log.jsonl ([] when absent); a torn last line is skipped."""
    path = os.path.join(run_dir, "log.jsonl")
    if not os.path.isfile(path):
        return []
    return [record for _, record in iter_log_records(path)]


def _evaluate(config: dict, folder: str, split: str, resolve: Callable[[dict], dict], *,
              checkpoint=None, baseline: str | None = None) -> tuple[bool, object]:
    """`byov.downstream.evaluate_model` of a checkpoint or a baseline into `folder` (content-
    keyed reuse), from the flat `config` (resolved here); returns (whether it embedded now, the
    DownstreamSpec it evaluated with)."""
    from byov.downstream.pipeline import evaluate_model

    spec = downstream_spec(resolve({**config, "eval_mode": split}))
    meta = {"checkpoint": checkpoint.path if checkpoint else None, "baseline": baseline,
            "source": "byov.report"}
    made = evaluate_model(spec, folder, checkpoint=checkpoint, baseline=baseline,
                          meta=meta).embedded
    return made, spec


def load_evaluation(folder: str, split: str, name: str, kind: str) -> Evaluation:
    """The Evaluation stored in an evaluation folder (embeddings + metrics.json)."""
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f).get("metrics", {})
    return Evaluation(name, kind, load_split(folder, "train"), load_split(folder, split),
                      metrics, folder)


def method_label(method: str, ckpt_path: str) -> str:
    from byov.hub import names_export
    from byov.methods import display_name
    shown = ckpt_path if names_export(ckpt_path) else os.path.basename(ckpt_path)
    return f"{display_name(method)} ({shown})"


def checkpoint_evaluation(run_dir: str, ckpt_path: str, split: str, overrides: dict,
                          resolve: Callable[[dict], dict]) -> tuple[Evaluation, bool, object]:
    """(the checkpoint's evaluation on `split`, whether it was embedded now, its DownstreamSpec).

    The model is rebuilt from the checkpoint's own config (location overrides applied) into
    RUN_DIR/eval/<stem>/, whose embeddings are reused only when they were made from the same
    checkpoint bytes and the same data (never by modification times).
    """
    from byov.hub import checkpoint_name, read_reference

    checkpoint = read_reference(ckpt_path)
    folder = os.path.join(run_dir, "eval", checkpoint_name(ckpt_path))
    made, spec = _evaluate({**checkpoint.state["config"], **overrides}, folder, split, resolve,
                           checkpoint=checkpoint)
    return (load_evaluation(folder, split, method_label(spec.method.name, ckpt_path), "model"),
            made, spec)


def baseline_evaluation(run_dir: str, config: dict, split: str, baseline: str,
                        name: str, resolve: Callable[[dict], dict]) -> tuple[Evaluation, bool]:
    """(a baseline's evaluation on `split` in RUN_DIR/eval/baseline_<name>/, whether it was
    embedded now), from the run's config.yaml (content-keyed reuse, as for the checkpoint)."""
    folder = os.path.join(run_dir, "eval", f"baseline_{baseline}")
    made, _ = _evaluate(config, folder, split, resolve, baseline=baseline)
    return load_evaluation(folder, split, name, baseline), made


def time_evaluation(model: Evaluation, spec) -> Evaluation:
    """The `time` baseline (t/L per frame, `byov.eval.baselines`) on the model's splits, computed
    here in memory (nothing written)."""
    from byov.downstream.pipeline import score

    train, evl = time_split(model.train), time_split(model.evl)
    metrics = score(train, evl, dataclasses.replace(spec.eval, tasks=TASKS, few_shot=False))
    return Evaluation("time t/L (baseline)", "time", train, evl, metrics, None)


def _identity(config: dict) -> dict:
    return config


def gather(run_dir: str, ckpt: str = "best", split: str = "test", overrides: dict | None = None,
           baselines: bool = True, resolve_config: Callable[[dict], dict] | None = None
           ) -> RunInputs:
    """Read (and where needed produce) everything a report of RUN_DIR needs.

    Args:
        overrides: location keys ({"dataset_root": ..., "frame_cache_dir": ...}; None values
            are ignored) applied to the run's and the checkpoint's config.
        baselines: also the frozen-features and time baselines (a failure there becomes a note
            on the page, not an error).
        resolve_config: flat config dict -> the resolved config (defaults filled in, checked);
            the command line passes utils/config.py's; None uses the dict as stored.
    """
    resolve = resolve_config or _identity
    if not os.path.isdir(run_dir):
        raise ReportError(f"run folder {run_dir} does not exist; pass the --output_dir of a "
                          f"train.py run")
    if split not in ("val", "test"):
        raise ReportError(f"--split {split!r}: the evaluated split must be val or test")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    config, text = read_config(run_dir)
    config = {**config, **overrides}
    ckpt_path = resolve_checkpoint(run_dir, ckpt)
    notes = []
    model, made, spec = checkpoint_evaluation(run_dir, ckpt_path, split, overrides, resolve)
    notes.append(f"{model.name}: {'embedded and evaluated now' if made else 'reused'} "
                 f"{model.folder}")
    inputs = RunInputs(run_dir, ckpt_path, split, spec, text, read_log(run_dir), model,
                       notes=notes)
    if baselines:
        try:
            frozen, made = baseline_evaluation(run_dir, config, split, "frozen",
                                               "frozen backbone features", resolve)
            inputs.baselines.append(frozen)
            notes.append(f"{frozen.name}: {'embedded and evaluated now' if made else 'reused'} "
                         f"{frozen.folder}")
        except (ByovError, OSError, ValueError) as e:
            notes.append(f"frozen backbone features baseline unavailable: {e}")
        try:
            inputs.baselines.append(time_evaluation(model, spec))
            notes.append(f"{inputs.baselines[-1].name}: evaluated now, in memory")
        except (ByovError, ValueError) as e:
            notes.append(f"time baseline unavailable: {e}")
        if os.path.isdir(os.path.join(run_dir, "eval", RANDOM_INIT_FOLDER)):
            # only when the run evaluated it (run.sh demo does)
            untrained, made = baseline_evaluation(
                run_dir, config, split, "random_init", "untrained model (random init, "
                "baseline)", resolve)
            inputs.baselines.append(untrained)
            notes.append(f"{untrained.name}: {'embedded and evaluated now' if made else 'reused'}"
                         f" {untrained.folder}")
    return inputs
