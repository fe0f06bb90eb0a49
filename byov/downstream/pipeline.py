"""The one library call of the downstream evaluation: a model -> embeddings -> metrics.

`evaluate_model` takes a checkpoint, a trivial baseline or a method in memory, embeds the train
split and the evaluated split of the dataset (reusing an embedding folder only when its content
key matches: checkpoint bytes, data fingerprint, settings), runs AE2's four tasks
(`byov.eval.evaluate_embeddings`) and writes `metrics.json` / `metrics.md` beside the embeddings.
`evaluate.py --ckpt/--baseline`, the trainer's downstream evaluation (val, every
`ds_every_n_epoch` epochs) and the visual report all go through it, so they cannot disagree.
Protocol: docs/evaluation.md (AE2, Xue & Grauman, NeurIPS 2023; released evaluation code).
"""
from __future__ import annotations

from typing import Callable, Mapping

from byov.downstream.result import DownstreamResult, default_meta
from byov.eval.baselines import BASELINES
from byov.eval.io import SplitData

VAL_SCORE_KEYS = (("classification_f1", "regular"), ("classification_f1", "ego2exo"),
                  ("classification_f1", "exo2ego"), ("retrieval_map10", "regular"),
                  ("retrieval_map10", "ego2exo"), ("retrieval_map10", "exo2ego"))


def val_score(metrics: Mapping) -> float | None:
    """Mean of the three val F1 and three val mAP@10 values (those that are defined): what picks
    best.pth by default (docs/training.md)."""
    values = [(metrics.get(a) or {}).get(b) for a, b in VAL_SCORE_KEYS]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def metric_value(metrics: Mapping, name: str) -> float | None:
    """`val_score`, a top-level metric (kendalls_tau), or `group.setting` (retrieval_map10.regular)."""
    if name == "val_score":
        return metrics.get("val_score")
    node = metrics
    for part in name.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, (int, float)) else None


def score(train: SplitData, evl: SplitData, spec, progress: bool = False) -> dict:
    """AE2's tasks of `byov.spec.EvalSpec` `spec` on two embedded splits -> metrics dict."""
    from byov.eval import evaluate_embeddings

    return evaluate_embeddings(train, evl, list(spec.tasks), time_feature=spec.time_feature,
                               few_shot=spec.few_shot, progress=progress)


def _validated_data(spec, splits, reads_frames: bool):
    from byov.data.validate import load_validated

    data = spec.method.data
    return load_validated(data.root, data.dataset, splits,
                          data.frame_cache_dir if reads_frames else None)


def _model_spec(spec, baseline: str | None):
    """The method spec that embeds: the frozen baseline is BYOV's frozen backbone + STM
    features, whatever the run's method."""
    return spec.frozen if baseline == "frozen" else spec.method


def _embed_function(spec, splits, videos, checkpoint, baseline, progress) -> Callable:
    """Build the video -> (L, D) function of a checkpoint or a baseline (called only when the
    folder cannot be reused)."""
    import torch

    from byov import distributed as D
    from byov.methods import build_method, method_class

    if baseline == "time":
        from byov.eval.baselines import time_embeddings
        return lambda v: time_embeddings([{"name": v.name, "view": v.view,
                                           "num_frames": v.num_frames}])
    mspec = _model_spec(spec, baseline)
    if not method_class(mspec.name).reads_frames(mspec):
        # a checkpoint trained from the feature cache evaluates from it too: build the entries
        # of splits training never read (test), as training builds its own
        from byov.features import ensure_feature_cache
        ensure_feature_cache(mspec.features, [v for s in splits for v in videos[s]],
                             progress=progress)
    device = D.init_distributed(spec.device).device
    if checkpoint is not None:
        # pretrained weights only where the checkpoint lacks them (BYOV's frozen backbone)
        method = build_method(mspec, pretrained=method_class(mspec.name)
                              .needs_pretrained_weights(checkpoint.state))
        method.load_state_entries(checkpoint.state, where=checkpoint.path)
    elif baseline == "frozen":
        method = build_method(mspec)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            method = build_method(mspec)
    method.to(device).eval()
    if baseline == "frozen":
        return method.merged_video
    weights = spec.eval.weights
    return lambda v: method.embed_video(v, weights)


def _embed_with_method(method, videos, labels, splits, progress) -> dict[str, SplitData]:
    """Embed `splits` with a method in memory (`embed.eval_mode`)."""
    from byov.downstream.embed import embed_split, eval_mode

    with eval_mode(method):
        return {s: embed_split(method.embed_video, videos[s], labels, s, progress=progress)
                for s in splits}


def evaluate_model(spec, out_dir: str, *, checkpoint=None, baseline: str | None = None,
                   method=None, data: tuple[Mapping, Mapping] | None = None,
                   meta: Mapping | None = None, add_val_score: bool = False,
                   progress: bool = False) -> DownstreamResult:
    """Embed the train and evaluated splits with one model and score them (see module doc);
    for a dataset of the video-level protocol (`spec.eval.protocol == "video"`, Charades-Ego),
    `byov.downstream.video_level.evaluate_video_model` does it.

    Args:
        spec: `byov.spec.DownstreamSpec` (the model's method spec, the protocol, the embedding
            settings, seed, device); the evaluated split is `spec.eval.split`.
        out_dir: the evaluation folder ({split}_embeds.npy, _label.npy, _videos.json,
            embed_info.json, metrics.json, metrics.md).
        checkpoint: a `byov.checkpoint.CheckpointFile` (read once by the caller), or
        baseline: "time" (t/L per frame), "frozen" (the frozen backbone's merged features),
            "random_init" (the method untrained, seeded by `spec.seed`), or
        method: a `Method` in memory (training's downstream evaluation; always embeds).
        data: ({split: [Video]}, labels) already validated (training's), else validated here.
        meta: recorded in metrics.json beside the metrics (dataset, split, checkpoint, ...).
        add_val_score: add `val_score` (training's model selection) to the metrics.
    Returns:
        DownstreamResult (metrics, folder, whether it embedded, the two splits).
    Raises:
        DataError: the splits' data do not validate (before any model is built);
        CheckpointError / ModelConfigError: the checkpoint does not fit its config;
        ValueError: not exactly one of checkpoint, baseline, method; an unknown baseline.
        FolderLockedError: another evaluation is writing into out_dir (checkpoint / baseline).
    """
    from byov.folderlock import FolderLock

    if sum(x is not None for x in (checkpoint, baseline, method)) != 1:
        raise ValueError("give exactly one of checkpoint, baseline and method")
    args = (spec, out_dir, checkpoint, baseline, method, data, meta, add_val_score, progress)
    if method is not None:  # training's folder eval/epoch_XXXX/, inside its locked run folder
        return _evaluate_model(*args)
    # one writer per folder: two evaluations into one --embed_dir would leave one model's key
    # over the other's embeddings
    with FolderLock(out_dir, "embedding folder", "evaluation", "--embed_dir"):
        return _evaluate_model(*args)


def _evaluate_model(spec, out_dir, checkpoint, baseline, method, data, meta, add_val_score,
                    progress) -> DownstreamResult:
    from byov.downstream.embed import embed_to_folder, embedding_key, forget_key
    from byov.eval.io import load_split, save_split
    from byov.eval.tables import write_metrics
    from byov.methods import method_class

    if spec.eval.protocol == "video":  # Charades-Ego: pooled embeddings, probe, mAP
        from byov.downstream.video_level import evaluate_video_model
        return evaluate_video_model(spec, out_dir, checkpoint=checkpoint, baseline=baseline,
                                    method=method, data=data, meta=meta, progress=progress,
                                    embed_function=_embed_function)
    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"--baseline {baseline}: {baseline!r} is not a baseline of AE2's "
                         f"frame-level tasks; valid: {', '.join(BASELINES)}")
    splits = ("train", spec.eval.split)
    mspec = _model_spec(spec, baseline)
    reads_frames = baseline != "time" and method_class(mspec.name).reads_frames(mspec)
    videos, labels = data if data is not None else _validated_data(spec, splits, reads_frames)
    if method is not None:
        embedded = _embed_with_method(method, videos, labels, splits, progress)
        forget_key(out_dir)  # these embeddings have no key: never reused by a later call
        for name, split in embedded.items():
            save_split(out_dir, name, split)
        train, evl, made = embedded["train"], embedded[spec.eval.split], True
    else:
        from byov.data.fingerprint import data_fingerprint

        fingerprint = data_fingerprint(spec.method.data.root, spec.method.data.dataset, splits,
                                       videos)
        key = embedding_key(spec.settings, baseline or "checkpoint", fingerprint,
                            checkpoint.content_hash if checkpoint else None,
                            spec.eval.weights if checkpoint else None,
                            spec.seed if baseline == "random_init" else None)
        made = embed_to_folder(out_dir, splits, key, lambda: _embed_function(
            spec, splits, videos, checkpoint, baseline, progress), videos, labels, progress)
        train, evl = load_split(out_dir, "train"), load_split(out_dir, spec.eval.split)
    metrics = score(train, evl, spec.eval, progress)
    if add_val_score:
        metrics["val_score"] = val_score(metrics)
    write_metrics(out_dir, metrics, {**default_meta(spec, out_dir), **(meta or {})})
    return DownstreamResult(metrics, out_dir, made, train, evl)


__all__ = ["BASELINES", "DownstreamResult", "VAL_SCORE_KEYS", "default_meta", "evaluate_model",
           "metric_value", "score", "val_score"]
