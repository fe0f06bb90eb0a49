"""What an evaluation returns (`DownstreamResult`) and what its metrics.json records by default
(`default_meta`): shared by the frame-level (`pipeline`) and video-level (`video_level`)
protocols."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass


@dataclass
class DownstreamResult:
    """What `evaluate_model` returns.

    metrics: the metrics dict (as in metrics.json); folder: the evaluation folder; embedded:
    False when the folder's embeddings were reused; train, evl: the embedded splits.
    """
    metrics: dict
    folder: str
    embedded: bool
    train: object  # byov.eval.SplitData (frame-level) or byov.eval.video_level.VideoSet
    evl: object


def default_meta(spec, out_dir: str) -> dict:
    """What metrics.json records about an evaluation unless the caller says more."""
    return {"dataset": spec.eval.dataset, "eval_split": spec.eval.split,
            "embeddings": os.path.abspath(out_dir), "tasks": ",".join(spec.eval.tasks),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
