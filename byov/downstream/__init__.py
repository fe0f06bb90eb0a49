"""Downstream evaluation of a model: embed whole videos, then AE2's four tasks (docs/evaluation.md).

`pipeline.evaluate_model` is the one call ("checkpoint, baseline or method -> embeddings ->
metrics") used by `evaluate.py`, training's downstream evaluation and the visual report;
`pipeline.score` scores two embedded splits (`evaluate.py --embeddings`); `embed` embeds splits
and keeps the content-keyed embedding folders. Nothing is imported here, so that scoring saved
embeddings never loads torch (`embed` needs it, `pipeline` only when it builds a model).
"""
