"""What a report is made from: the run folder's config, log, checkpoint and evaluation folders.

Run folder (README "Training"): `config.yaml`, `log.jsonl`, `checkpoints/{best,last,...}.pth`,
`eval/<checkpoint stem>/` (what `evaluate.py --ckpt` writes: `{train,<split>}_embeds.npy`,
`_label.npy`, `_videos.json`, `metrics.json`) and the frozen-backbone baseline's evaluation folder
(`eval/baseline_frozen/` or `eval/frozen_features/`, what `evaluate.py --frozen_features` writes).

Embeddings and metrics that are missing or older than the checkpoint are produced by the
project's own evaluation entry point (`evaluate.main`), in ONE function, `run_project_evaluation`,
so the report never re-implements embedding or scoring.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass, field

from byov.errors import ByovError
from byov.eval.io import SplitData, load_split

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
    config: dict
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
    folder = os.path.join(run_dir, "checkpoints")
    from byov.hub import is_hub_reference
    if is_hub_reference(ckpt) or os.path.isdir(ckpt):  # an export (docs/hub.md)
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
    from byov.logger import iter_log_records

    path = os.path.join(run_dir, "log.jsonl")
    if not os.path.isfile(path):
        return []
    return [record for _, record in iter_log_records(path)]


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_project_evaluation(argv: list[str]) -> bool:
    """`evaluate.py ARGV` in this process: embed, or reuse the embedding folder when its content
    key (checkpoint bytes, data fingerprint, settings; see `byov.embedding`) is unchanged, then
    score, writing metrics.json into the evaluation folder. The report's only way to produce
    embeddings. Returns True when it embedded, False when it reused the embeddings.

    Raises what evaluate.py raises (ByovError subclasses name the fix).
    """
    try:
        import evaluate
    except ImportError:  # run from outside the project root: evaluate.py sits next to byov/
        sys.path.insert(0, _project_root())
        import evaluate
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # evaluate.py prints its table; the page shows it
        evaluate.main(list(argv))
    return "embedded into" in out.getvalue()


def _location_args(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() if v is not None for a in (f"--{k}", str(v))]


def load_evaluation(folder: str, split: str, name: str, kind: str) -> Evaluation:
    """The Evaluation stored in an evaluation folder (embeddings + metrics.json)."""
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f).get("metrics", {})
    return Evaluation(name, kind, load_split(folder, "train"), load_split(folder, split),
                      metrics, folder)


def method_label(config: dict, ckpt_path: str) -> str:
    method = str(config.get("method", "byov"))
    label = "BYOV" if method == "byov" else method.upper()
    from byov.hub import is_hub_reference
    shown = (ckpt_path if is_hub_reference(ckpt_path) or os.path.isdir(ckpt_path)
             else os.path.basename(ckpt_path))
    return f"{label} ({shown})"


def checkpoint_evaluation(run_dir: str, ckpt_path: str, split: str, config: dict,
                          overrides: dict) -> tuple[Evaluation, bool]:
    """(the checkpoint's evaluation on `split`, whether it was embedded now).

    Always goes through `evaluate.py --ckpt PATH --eval_mode SPLIT --embed_dir
    RUN_DIR/eval/<stem>`, which reuses the folder's embeddings only when they were made from the
    same checkpoint bytes and the same data (never by modification times), so the page never
    shows stale embeddings or labels.
    """
    from byov.hub import checkpoint_name
    folder = os.path.join(run_dir, "eval", checkpoint_name(ckpt_path))
    made = run_project_evaluation(["--ckpt", ckpt_path, "--eval_mode", split, "--embed_dir",
                                   folder, *_location_args(overrides)])
    return load_evaluation(folder, split, method_label(config, ckpt_path), "model"), made


def frozen_evaluation(run_dir: str, split: str, overrides: dict) -> tuple[Evaluation, bool]:
    """(the frozen-backbone features' evaluation on `split`, whether it was embedded now), via
    `evaluate.py --config RUN_DIR/config.yaml --baseline frozen --output_dir RUN_DIR` (content-
    keyed reuse of RUN_DIR/eval/baseline_frozen/, as for the checkpoint)."""
    made = run_project_evaluation(["--config", os.path.join(run_dir, "config.yaml"),
                                   "--baseline", "frozen", "--eval_mode", split, "--output_dir",
                                   run_dir, *_location_args(overrides)])
    folder = os.path.join(run_dir, "eval", "baseline_frozen")
    return load_evaluation(folder, split, "frozen backbone features", "frozen"), made


def time_evaluation(run_dir: str, model: Evaluation, split: str, config: dict
                    ) -> Evaluation | None:
    """The `time` baseline (t/L per frame, `byov.eval.baselines`) on the model's splits, or None
    when that module does not exist. Its metrics come from RUN_DIR/eval/baseline_time/ when that
    holds `split`, else they are computed here (in memory, nothing written)."""
    try:
        from byov.eval.baselines import time_split
    except ImportError:
        return None
    name = "time t/L (baseline)"
    from byov.eval import evaluate_embeddings
    from byov.eval.progression import headline_uses_time_feature

    train, evl = time_split(model.train), time_split(model.evl)
    metrics = evaluate_embeddings(
        train, evl, time_feature=headline_uses_time_feature(
            str(config.get("dataset")), str(config.get("progression_time_feature", "auto"))),
        progress=False)
    return Evaluation(name, "time", train, evl, metrics, None)


def gather(run_dir: str, ckpt: str = "best", split: str = "test", overrides: dict | None = None,
           baselines: bool = True) -> RunInputs:
    """Read (and where needed produce) everything a report of RUN_DIR needs.

    Args:
        overrides: location keys passed on to evaluate.py and the frame reader
            ({"dataset_root": ..., "frame_cache_dir": ...}; None values are ignored).
        baselines: also the frozen-features and time baselines (a failure there becomes a note
            on the page, not an error).
    """
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
    model, made = checkpoint_evaluation(run_dir, ckpt_path, split, config, overrides)
    notes.append(f"{model.name}: {'embedded and evaluated now' if made else 'reused'} "
                 f"{model.folder}")
    inputs = RunInputs(run_dir, ckpt_path, split, config, text, read_log(run_dir), model,
                       notes=notes)
    if baselines:
        try:
            frozen, made = frozen_evaluation(run_dir, split, overrides)
            inputs.baselines.append(frozen)
            notes.append(f"{frozen.name}: {'embedded and evaluated now' if made else 'reused'} "
                         f"{frozen.folder}")
        except (ByovError, OSError, ValueError, SystemExit) as e:  # SystemExit: argparse
            notes.append(f"frozen backbone features baseline unavailable: {e}")
        try:
            timed = time_evaluation(run_dir, model, split, config)
            if timed is not None:
                inputs.baselines.append(timed)
                notes.append(f"{timed.name}: evaluated now, in memory")
        except (ByovError, ValueError) as e:
            notes.append(f"time baseline unavailable: {e}")
        folder = os.path.join(run_dir, "eval", RANDOM_INIT_FOLDER)
        if os.path.isdir(folder):  # only when the run evaluated it (run.sh demo does)
            made = run_project_evaluation(["--config", os.path.join(run_dir, "config.yaml"),
                                           "--baseline", "random_init", "--eval_mode", split,
                                           "--output_dir", run_dir, *_location_args(overrides)])
            untrained = load_evaluation(folder, split, "untrained model (random init, "
                                        "baseline)", "random_init")
            inputs.baselines.append(untrained)
            notes.append(f"{untrained.name}: {'embedded and evaluated now' if made else 'reused'}"
                         f" {folder}")
    return inputs
