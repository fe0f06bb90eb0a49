"""Task 3, action phase progression R^2 (docs/evaluation.md, "Phase progression").

Per video of length L and phase c, the target is y_c(t) = (t - t_c) / L, with t_c the last frame
labelled c, or -1 everywhere when c is absent from the video. One LinearRegression per phase is fit
on the train frames whose target is not -1 and scored (R^2) on such eval frames; the result is the
unweighted mean over phases (AE2's released `evaluation/event_completion.py`, shared by BYOV).
Background frames (label -1) define no phase; they are ordinary rows with the targets of their
video's phases.

The released code takes K = max(label) + 1 of each split separately and scores the train
split's K phases: an eval phase above them is left out (reproduced, with a note), while an eval
split without one of them stops the released code (here: the task is n/a with the reason, see
`unavailable_reason`). The optional time feature appends frame index * 1e-3 (restarting per
video), the released Pour Liquid quirk, kept for every method. The fits run in the released
precision (float32 embeddings fit in float32; float64 with the time column).
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
    # background (-1) and ids above K - 1 define no target column
    inside = (labels >= 0) & (labels < num_phases)
    np.maximum.at(last, (vid[inside], labels[inside]), t[inside])
    tc = last[vid]  # (N, K) last frame of each phase in the row's video
    L = lengths[vid].astype(np.float64)[:, None]
    y = (t[:, None].astype(np.float64) - tc) / L
    y[tc < 0] = ABSENT
    return y


def headline_uses_time_feature(dataset: str, setting: str = "auto") -> bool:
    """Which progression variant is the headline: `on`, `off`, or `auto` = on for pour_liquid only
    (the released quirk, kept for all methods; both variants are always computed)."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"progression time feature setting must be auto, on or off; got "
                         f"{setting!r}")
    return setting == "on" or (setting == "auto" and dataset == "pour_liquid")


def with_time_feature(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, D + 1) float64: x with frame index * 1e-3 appended (restarting at each video)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    t = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.concatenate([np.asarray(x, dtype=np.float64), (t * 1e-3)[:, None]], axis=1)


def num_phases(labels: np.ndarray) -> int:
    """K = max(label) + 1, as released (0 when every frame is background)."""
    labels = np.asarray(labels)
    return int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0


def unavailable_reason(train_y: np.ndarray, train_videos: Sequence[dict], eval_y: np.ndarray,
                       eval_videos: Sequence[dict]) -> str | None:
    """Why these splits cannot give a progression score (the released code would stop), or None.

    A phase 0..K-1 of the train split must occur in some train video (its regression is fit on
    those videos' frames) and in some eval video with at least 2 frames in all (R^2 needs two).
    """
    k = num_phases(train_y)
    if k == 0:
        return "the train split has no phase labels (every frame is background, -1)"
    tl, el = _lengths(train_videos), _lengths(eval_videos)
    ty, ey = progression_targets(train_y, tl, k), progression_targets(eval_y, el, k)
    n_train = np.count_nonzero(ty != ABSENT, axis=0)
    n_eval = np.count_nonzero(ey != ABSENT, axis=0)
    missing = [c for c in range(k) if n_train[c] == 0]
    if missing:
        return (f"phase(s) {missing} of 0..{k - 1} occur in no train video, so their "
                f"regressions cannot be fit")
    missing = [c for c in range(k) if n_eval[c] == 0]
    if missing:
        return (f"phase(s) {missing} of the train split's 0..{k - 1} occur in no eval video, "
                f"so their R^2 cannot be scored")
    short = [c for c in range(k) if n_eval[c] < 2]
    if short:
        return (f"phase(s) {short} have a target on a single eval frame (one 1-frame video); "
                f"R^2 is undefined on one sample")
    return None


def unscored_eval_phases(train_y: np.ndarray, eval_y: np.ndarray) -> list[int]:
    """Eval phase ids above the train split's K - 1: released, they are left out of the mean."""
    return sorted(int(c) for c in np.unique(eval_y) if c >= num_phases(train_y))


def phase_progression(train_x: np.ndarray, train_y: np.ndarray, train_videos: Sequence[dict],
                      eval_x: np.ndarray, eval_y: np.ndarray, eval_videos: Sequence[dict],
                      time_feature: bool) -> float:
    """Mean over the train split's phases of the eval R^2 of per-phase linear regressions.

    Args:
        train_x: (N_train, D); train_y: (N_train,) phase ids, -1 = background;
        train_videos: per-video dicts (num_frames) in row order.
        eval_x: (N_eval, D); eval_y: (N_eval,); eval_videos: likewise.
        time_feature: append frame index * 1e-3 to both splits (Pour Liquid quirk).
    Returns:
        the mean R^2 (a float; it can be very negative). Eval phases above the train split's
        K - 1 are not scored, as released (`unscored_eval_phases`).
    Raises:
        EvalInputError: the splits cannot support the task (see `unavailable_reason`).
    """
    why = unavailable_reason(train_y, train_videos, eval_y, eval_videos)
    if why:
        raise EvalInputError(f"progression: {why}")
    tl, el = _lengths(train_videos), _lengths(eval_videos)
    k = num_phases(train_y)
    # the released precision: the embeddings' own dtype (float32 fits for float32 files), and
    # float64 once the time column is appended
    tx = with_time_feature(train_x, tl) if time_feature else np.asarray(train_x)
    ex = with_time_feature(eval_x, el) if time_feature else np.asarray(eval_x)
    ty, ey = progression_targets(train_y, tl, k), progression_targets(eval_y, el, k)
    scores = []
    for c in range(k):  # one fit per phase, as released
        tr, ev = ty[:, c] != ABSENT, ey[:, c] != ABSENT
        model = LinearRegression().fit(tx[tr], ty[tr, c])
        scores.append(model.score(ex[ev], ey[ev, c]))
    return float(np.mean(scores))
