"""Video-level multi-label action recognition across views: the Charades-Ego protocol of BYOV.

BYOV §7.5 (docs/charades_ego.md): the trained encoder's per-frame latents are mean-pooled into one vector per
video, a linear classifier is trained on them, and the metric is mAP over the action classes, in
three settings: Regular (train and test on both views), Ego2Exo (train on ego videos, test on
third-person ones) and Exo2Ego (the reverse). The paper does not publish the probe, so byov's is
named here and its hyper-parameters are flags (docs/charades_ego.md):

- features standardised (sklearn StandardScaler fitted on the probe's training videos);
- one-vs-rest logistic regression (sklearn OneVsRestClassifier(LogisticRegression(C, max_iter)),
  L2, lbfgs); a class with no positive (or no negative) training video gets a constant score;
- scores: the decision function (logits), so AP has no ties from saturated probabilities.

The metric is the standard Charades mAP: per class, the average precision of the test videos
ranked by the class's score (sklearn `average_precision_score`: the mean of the precision at each
positive, the same sum the official Charades_v1_classify.m computes, ties aside), then the mean
over the classes that have at least one positive test video. A class without positives has no
defined AP (the official code divides by zero there; its Python ports skip the class, `n_pos <
0.1` -> NaN, then `nanmean`): it is excluded and listed in the json. mAP is reported x100.
A chance baseline (`probe="prior"`) scores every test video with the training prevalence of each
class; its AP per class is then the class's test prevalence.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SETTINGS = ("regular", "ego2exo", "exo2ego")
HEADERS = ("Regular", "Ego2Exo", "Exo2Ego")
# (train views, test views) per setting; "exo" is the third-person view
SETTING_VIEWS = {"regular": (("ego", "exo"), ("ego", "exo")), "ego2exo": (("ego",), ("exo",)),
                 "exo2ego": (("exo",), ("ego",))}
PROBES = ("logistic", "prior")

PUBLISHED_SOURCE = ("BYOV (CVPR 2025) §7.5, Charades-Ego, mAP x100, ViT-B/16, as published "
                    "(docs/charades_ego.md#what-the-paper-says-and-what-it-does-not); not measured here")

# published rows: Regular / Ego2Exo / Exo2Ego
PUBLISHED = {"CLIP ViT-B/16 (frozen)": (13.7, 8.3, 10.7), "BYOV ViT-B/16": (31.8, 26.5, 27.3)}


class VideoLevelError(ValueError):
    """Inputs the video-level evaluation cannot use; the message names them."""


@dataclass
class VideoSet:
    """Mean-pooled embeddings of one split.

    Attributes:
        embeds: (N, D) float32, one row per video.
        targets: (N, K) multi-hot {0, 1} video-level targets.
        views: N strings, "ego" or "exo".
        names: N video ids.
    """
    embeds: np.ndarray
    targets: np.ndarray
    views: list
    names: list

    def validate(self, where: str = "split") -> "VideoSet":
        n = len(self.names)
        if self.embeds.ndim != 2 or self.embeds.shape[0] != n:
            raise VideoLevelError(f"{where}: embeds have shape {self.embeds.shape}, expected "
                                  f"({n}, D) for {n} videos")
        if self.targets.ndim != 2 or self.targets.shape[0] != n:
            raise VideoLevelError(f"{where}: targets have shape {self.targets.shape}, expected "
                                  f"({n}, K)")
        if not np.isin(self.targets, (0, 1)).all():
            raise VideoLevelError(f"{where}: targets must be multi-hot 0/1")
        if len(self.views) != n or not set(self.views) <= {"ego", "exo"}:
            raise VideoLevelError(f"{where}: views must be {n} values 'ego' or 'exo'")
        if not np.isfinite(self.embeds).all():
            raise VideoLevelError(f"{where}: embeds hold NaN or inf")
        return self

    def select(self, views: Sequence[str]) -> "VideoSet":
        keep = np.array([v in views for v in self.views], bool)
        return VideoSet(self.embeds[keep], self.targets[keep],
                        [v for v, k in zip(self.views, keep) if k],
                        [v for v, k in zip(self.names, keep) if k])


def mean_pool(frame_embeds) -> np.ndarray:
    """(L, D) per-frame embeddings -> (D,) float32 mean (accumulated in float64)."""
    x = np.asarray(frame_embeds, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise VideoLevelError(f"per-frame embeddings must be (L >= 1, D), got shape {x.shape}")
    return x.mean(axis=0).astype(np.float32)


def class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K,) float64 AP per class of (N, K) scores against (N, K) multi-hot targets; NaN for a
    class with no positive video (its AP is undefined)."""
    from sklearn.metrics import average_precision_score

    scores, targets = np.asarray(scores, np.float64), np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise VideoLevelError(f"scores {scores.shape} and targets {targets.shape} must both be "
                              f"(N, K)")
    ap = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        if targets[:, k].any():
            ap[k] = average_precision_score(targets[:, k], scores[:, k])
    return ap


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> tuple[float | None,
                                                                             np.ndarray]:
    """(mAP x100 over the classes with >= 1 positive, or None when none has one; (K,) AP)."""
    ap = class_average_precision(scores, targets)
    scored = ~np.isnan(ap)
    return (float(100.0 * ap[scored].mean()) if scored.any() else None), ap


def fit_probe(x: np.ndarray, y: np.ndarray, c: float = 1.0, max_iter: int = 1000):
    """The linear multi-label probe fitted on (N, D) features and (N, K) targets: StandardScaler
    then one-vs-rest L2 logistic regression (C = `c`, lbfgs, `max_iter`). Deterministic."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if c <= 0 or max_iter < 1:
        raise VideoLevelError(f"probe C must be > 0 and max_iter >= 1, got {c}, {max_iter}")
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(
        LogisticRegression(C=c, max_iter=max_iter)))
    with warnings.catch_warnings():
        # a class absent from (or present in) every training video gets a constant predictor:
        # expected with few videos per class, and counted in the json instead
        warnings.filterwarnings("ignore", message="Label .* present in all training examples")
        warnings.filterwarnings("ignore", message="lbfgs failed to converge")
        model.fit(np.asarray(x, np.float64), np.asarray(y, np.int64))
    return model


def probe_scores(model, x: np.ndarray) -> np.ndarray:
    """(N, K) logits of a fitted probe."""
    return np.asarray(model.decision_function(np.asarray(x, np.float64)), np.float64)


def prior_scores(train_targets: np.ndarray, n: int) -> np.ndarray:
    """(n, K): every video scored with the training prevalence of each class (chance)."""
    return np.tile(np.asarray(train_targets, np.float64).mean(axis=0), (n, 1))


def evaluate_setting(train: VideoSet, test: VideoSet, probe: str = "logistic", c: float = 1.0,
                     max_iter: int = 1000) -> dict:
    """Fit on `train`, score `test`: {"map", "ap" (K,), "scores" (N, K), ...}."""
    if probe not in PROBES:
        raise VideoLevelError(f"unknown probe {probe!r}; valid: {', '.join(PROBES)}")
    if len(train.names) == 0 or len(test.names) == 0:
        return {"map": None, "ap": None, "scores": None,
                "note": f"no {'training' if not len(train.names) else 'test'} videos"}
    if probe == "prior":
        scores = prior_scores(train.targets, len(test.names))
    else:
        scores = probe_scores(fit_probe(train.embeds, train.targets, c, max_iter), test.embeds)
    value, ap = mean_average_precision(scores, test.targets)
    return {"map": value, "ap": ap, "scores": scores,
            "classes_without_train_positives": int((train.targets.sum(0) == 0).sum())}


def evaluate_video_level(train: VideoSet, test: VideoSet, class_ids: Sequence[str],
                         probe: str = "logistic", c: float = 1.0, max_iter: int = 1000,
                         top_k: int = 5) -> dict:
    """The three settings. Returns a json-ready dict:

    video_map: {setting: mAP x100 or None}; per_class_ap: {setting: {class id: AP x100 or
    None (no positive test video)}}; classes_scored: {setting: number of classes in the mean};
    classes_without_test_positives: {setting: [class ids]}; num_videos: {setting: [train, test]};
    probe: its settings; top_predictions: {test video id: [[class id, logit], ...]} of the
    Regular probe, top_k per video.
    """
    train, test = train.validate("train"), test.validate("test")
    k = train.targets.shape[1]
    if test.targets.shape[1] != k or len(class_ids) != k:
        raise VideoLevelError(f"train has {k} classes, test {test.targets.shape[1]}, class ids "
                              f"{len(class_ids)}: they must agree")
    out = {"video_map": {}, "per_class_ap": {}, "classes_scored": {},
           "classes_without_test_positives": {}, "num_videos": {},
           "probe": ({"kind": "prior (training class prevalence)"} if probe == "prior" else
                     {"kind": "one-vs-rest logistic regression on standardised features",
                      "C": c, "max_iter": max_iter})}
    for setting in SETTINGS:
        tr_views, te_views = SETTING_VIEWS[setting]
        tr, te = train.select(tr_views), test.select(te_views)
        res = evaluate_setting(tr, te, probe, c, max_iter)
        out["video_map"][setting] = res["map"]
        out["num_videos"][setting] = [len(tr.names), len(te.names)]
        if res["ap"] is None:
            out.setdefault("notes", []).append(f"{setting}: {res['note']}")
            out["per_class_ap"][setting] = None
            continue
        ap = res["ap"]
        out["per_class_ap"][setting] = {cid: (None if np.isnan(a) else float(100 * a))
                                        for cid, a in zip(class_ids, ap)}
        out["classes_scored"][setting] = int((~np.isnan(ap)).sum())
        out["classes_without_test_positives"][setting] = [
            cid for cid, a in zip(class_ids, ap) if np.isnan(a)]
        if setting == "regular":
            order = np.argsort(-res["scores"], axis=1, kind="stable")[:, :top_k]
            out["top_predictions"] = {
                name: [[class_ids[j], float(res["scores"][i, j])] for j in order[i]]
                for i, name in enumerate(te.names)}
    values = [v for v in out["video_map"].values() if v is not None]
    out["val_score"] = float(np.mean(values)) if values else None
    return out


def _cell(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def format_table(rows: dict, published: bool = True) -> str:
    """Markdown table: one row per {name: metrics dict (video_map)}, then the published rows."""
    lines = ["| Charades-Ego mAP (x100) | " + " | ".join(HEADERS) + " |", "|---|---:|---:|---:|"]
    for name, metrics in rows.items():
        vm = metrics.get("video_map") or {}
        lines.append(f"| {name} | " + " | ".join(_cell(vm.get(s)) for s in SETTINGS) + " |")
    if published:
        for name, values in PUBLISHED.items():
            lines.append(f"| published: {name} | " + " | ".join(_cell(v) for v in values) + " |")
        lines.append("")
        lines.append(f"Published rows: {PUBLISHED_SOURCE}; the paper's split, class count and "
                     f"probe are not published, so they are context, not a like-for-like "
                     f"comparison.")
    return "\n".join(lines)


def main(argv=None) -> None:
    """python -m byov.eval.video_level compare A.json B.json ... --names a b ...: one table."""
    import argparse
    import json
    import os

    p = argparse.ArgumentParser(prog="python -m byov.eval.video_level",
                                description="side-by-side Charades-Ego mAP table of evaluate.py "
                                            "--json outputs, with the published numbers")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="compare evaluate.py --json outputs")
    c.add_argument("files", nargs="+")
    c.add_argument("--names", nargs="+", default=None)
    args = p.parse_args(argv)
    names = args.names or [os.path.basename(os.path.dirname(os.path.abspath(f)))
                           for f in args.files]
    if len(names) != len(args.files):
        p.error(f"{len(args.files)} files but {len(names)} names")
    rows = {}
    for name, path in zip(names, args.files):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        rows[name] = data.get("metrics", data)  # metrics.json nests them under "metrics"
    print(format_table(rows))


if __name__ == "__main__":
    main()
