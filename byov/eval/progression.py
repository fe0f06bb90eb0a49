"""Task 3, action phase progression R^2 (REFERENCE §6.5).

Per video of length L and phase c, the target is y_c(t) = (t - t_c) / L, with t_c the last frame
labelled c, or -1 everywhere when c is absent from the video. One LinearRegression per phase is
fit on the train frames whose target is not -1 and scored (R^2) on such eval frames; the result
is the unweighted mean over phases. The phase count K comes from the train split (identical to
the released per-split K whenever every phase occurs). The optional time feature appends
frame index * 1e-3 (restarting per video), the released Pour Liquid quirk [DEC 7, 22]. The fits
run in the released precision (float32 embeddings fit in float32; float64 with the time column),
which reproduces the parity fixture's progression_r2 exactly on this install.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.linear_model import LinearRegression

from byov.eval.io import EvalInputError

ABSENT = -1.0


def _lengths(videos: Sequence[dict]) -> np.ndarray:
    return np.asarray([int(v["num_frames"]) for v in videos], dtype=np.int64)


def progression_targets(labels: np.ndarray, lengths: np.ndarray, num_phases: int) -> np.ndarray:
    """(N, K) float64 regression targets for rows of videos of the given lengths (row order)."""
    labels = np.asarray(labels, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    vid = np.repeat(np.arange(len(lengths)), lengths)
    t = np.arange(len(labels)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    last = np.full((len(lengths), num_phases), -1, dtype=np.int64)
    inside = labels < num_phases  # labels above K-1 cannot be a target column
    np.maximum.at(last, (vid[inside], labels[inside]), t[inside])
    tc = last[vid]  # (N, K) last frame of each phase in the row's video
    L = lengths[vid].astype(np.float64)[:, None]
    y = (t[:, None].astype(np.float64) - tc) / L
    y[tc < 0] = ABSENT
    return y


def headline_uses_time_feature(dataset: str, setting: str = "auto") -> bool:
    """Which progression variant is the headline: `on`, `off`, or `auto` = on for pour_liquid only
    (the released quirk, kept for all methods) [DEC 22]."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"progression time feature setting must be auto, on or off; got "
                         f"{setting!r}")
    return setting == "on" or (setting == "auto" and dataset == "pour_liquid")


def with_time_feature(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, D + 1) float64: x with frame index * 1e-3 appended (restarting at each video)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    t = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.concatenate([np.asarray(x, dtype=np.float64), (t * 1e-3)[:, None]], axis=1)


def phase_progression(train_x: np.ndarray, train_y: np.ndarray, train_videos: Sequence[dict],
                      eval_x: np.ndarray, eval_y: np.ndarray, eval_videos: Sequence[dict],
                      time_feature: bool) -> float:
    """Mean over phases of the eval R^2 of per-phase linear regressions.

    Args:
        train_x: (N_train, D); train_y: (N_train,); train_videos: per-video dicts (num_frames).
        eval_x: (N_eval, D); eval_y: (N_eval,); eval_videos: likewise.
        time_feature: append frame index * 1e-3 to both splits (Pour Liquid quirk).
    Raises:
        EvalInputError: an eval phase id beyond the train split's, or a phase no train (or no
            eval) video contains, so its regression cannot be fit (or scored).
    """
    tl, el = _lengths(train_videos), _lengths(eval_videos)
    k = int(np.max(train_y)) + 1
    if int(np.max(eval_y)) >= k:
        raise EvalInputError(f"progression: the eval split has phase {int(np.max(eval_y))} but "
                             f"the train split's phases are 0..{k - 1}; both splits must share "
                             f"the phase ids")
    # the released precision: the embeddings' own dtype (float32 fits for float32 files), and
    # float64 once the time column is appended
    tx = with_time_feature(train_x, tl) if time_feature else np.asarray(train_x)
    ex = with_time_feature(eval_x, el) if time_feature else np.asarray(eval_x)
    ty, ey = progression_targets(train_y, tl, k), progression_targets(eval_y, el, k)
    for c in range(k):
        for split, n in (("train", np.count_nonzero(ty[:, c] != ABSENT)),
                         ("eval", np.count_nonzero(ey[:, c] != ABSENT))):
            if n < 2:
                raise EvalInputError(
                    f"progression: phase {c} has a target on {n} {split} frame(s) (the frames "
                    f"of the {split} videos that contain it); its regression needs at least 2. "
                    f"Check the labels of the {split} split")
    scores = []
    for c in range(k):  # one fit per phase, as released
        tr, ev = ty[:, c] != ABSENT, ey[:, c] != ABSENT
        model = LinearRegression().fit(tx[tr], ty[tr, c])
        scores.append(model.score(ex[ev], ey[ev, c]))
    return float(np.mean(scores))
