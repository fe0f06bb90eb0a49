"""Downstream evaluation of a model: embed whole videos, then AE2's four tasks (docs/evaluation.md).

`evaluate_model` is the one call ("checkpoint, baseline or method -> embeddings -> metrics") used
by `evaluate.py`, training's downstream evaluation and the visual report; `embed` holds the
embedding of splits and the content-keyed embedding folders.
"""
from byov.downstream.embed import (EMBED_INFO, embed_split, embed_to_folder, embedding_key,
                                   split_videos)
from byov.downstream.pipeline import (BASELINES, DownstreamResult, evaluate_model, metric_value,
                                      score, val_score)

__all__ = ["BASELINES", "DownstreamResult", "EMBED_INFO", "embed_split", "embed_to_folder",
           "embedding_key", "evaluate_model", "metric_value", "score", "split_videos",
           "val_score"]
