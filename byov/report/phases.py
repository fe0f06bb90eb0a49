"""Phase progression over time and per-phase confusion of cross-view classification.

Progression follows the AE2 protocol (byov/eval/progression.py, whose target and time-feature
functions are used here): one LinearRegression per phase c, fit on the train frames whose target
(t - t_c) / L is defined and applied to the evaluated split. The figure shows, for a few videos,
the true ramps (dashed) and the predicted ones (solid) of every phase.

Classification uses the released SVM (`byov.eval.ovo_svm.make_svm`, fit on the train
frames of one view) and its exact predictions (`svm_predict`) on the other view's eval frames:
ego2exo = fit on train ego, predict eval exo; exo2ego the reverse.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.metrics import confusion_matrix, f1_score, r2_score

from byov.eval.classification import setting_masks
from byov.eval.ovo_svm import make_svm
from byov.eval.io import SplitData
from byov.eval.progression import ABSENT, progression_targets, with_time_feature
from byov.eval.svm_predict import svm_predict
from byov.report.style import new_figure, phase_color, phase_legend_handles, rc, save_figure


@dataclass
class Progression:
    """Per-phase fits on train, applied to the eval split.

    Attributes:
        targets: (N, K) eval targets (ABSENT where the video lacks the phase).
        predicted: (N, K) predictions for every eval row.
        r2: (K,) R^2 of each phase on the eval rows with a target (their mean is the metric).
    """

    targets: np.ndarray
    predicted: np.ndarray
    r2: np.ndarray
    time_feature: bool

    @property
    def mean_r2(self) -> float:
        return float(np.mean(self.r2))


def fit_progression(train: SplitData, evl: SplitData, time_feature: bool) -> Progression:
    k = int(np.max(train.labels)) + 1
    tx = with_time_feature(train.embeds, train.lengths) if time_feature else train.embeds
    ex = with_time_feature(evl.embeds, evl.lengths) if time_feature else evl.embeds
    ty = progression_targets(train.labels, train.lengths, k)
    ey = progression_targets(evl.labels, evl.lengths, k)
    pred = np.zeros_like(ey)
    r2 = np.zeros(k)
    for c in range(k):
        tr, ev = ty[:, c] != ABSENT, ey[:, c] != ABSENT
        model = LinearRegression().fit(tx[tr], ty[tr, c])
        pred[:, c] = model.predict(ex)
        r2[c] = r2_score(ey[ev, c], pred[ev, c]) if ev.sum() >= 2 else np.nan
    return Progression(ey, pred, r2, time_feature)


def pick_videos(split: SplitData, n: int) -> list[int]:
    """Up to n video indices, alternating ego and exo, spread over each view's list."""
    out = []
    for view in (True, False):
        idx = np.flatnonzero(split.video_is_ego == view)
        m = (n + (1 if view else 0)) // 2
        if len(idx):
            out += [int(idx[int(i * len(idx) / m)]) for i in range(min(m, len(idx)))]
    return sorted(out)[:n]


def draw_progression(p: Progression, evl: SplitData, videos: list[int], path: str) -> str:
    k = p.targets.shape[1]
    off = evl.offsets
    labels = np.asarray(evl.labels)
    cols = min(2, len(videos))
    rows = int(np.ceil(len(videos) / cols))
    with rc():
        fig = new_figure(7.2 * cols, 3.4 * rows + 0.6)
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
        for ax in axes[len(videos):]:
            ax.set_visible(False)
        for ax, v in zip(axes, videos):
            a, b = int(off[v]), int(off[v + 1])
            t = np.arange(b - a)
            y = labels[a:b]
            starts = np.concatenate([[0], np.flatnonzero(np.diff(y)) + 1])
            ends = np.concatenate([starts[1:], [len(y)]])
            for s, e in zip(starts, ends):  # the true phases, shaded
                ax.axvspan(s - 0.5, e - 0.5, color=phase_color(int(y[s])), alpha=0.13, lw=0)
            for c in range(k):
                if np.all(p.targets[a:b, c] == ABSENT):
                    continue
                ax.plot(t, p.targets[a:b, c], ls="--", lw=1.4, color=phase_color(c))
                ax.plot(t, p.predicted[a:b, c], ls="-", lw=1.6, color=phase_color(c))
            ax.axhline(0, color="black", lw=0.6)
            meta = evl.videos[v]
            ax.set_title(f"{meta['name']} ({meta['view']}, {meta['num_frames']} frames)")
            ax.set_xlabel("frame t")
            ax.set_ylabel("(t - t_c) / L")
            ax.set_xlim(-0.5, len(t) - 0.5)
            ax.grid(alpha=0.25)
        from matplotlib.lines import Line2D
        style = [Line2D([], [], color="black", ls="--", label="true"),
                 Line2D([], [], color="black", ls="-", label="predicted")]
        fig.tight_layout(rect=(0, 0.09 if rows == 1 else 0.05, 1, 1))
        fig.legend(handles=phase_legend_handles(k) + style, loc="lower center", ncol=k + 2,
                   frameon=False)
        return save_figure(fig, path)


@dataclass
class Confusion:
    setting: str
    matrix: np.ndarray  # (K, K) counts, rows = true phase, columns = predicted
    f1: float  # weighted F1, as the classification metric
    predicted: np.ndarray = field(repr=False, default=None)


def confusions(train: SplitData, evl: SplitData, settings=("ego2exo", "exo2ego")
               ) -> list[Confusion]:
    """The per-phase confusion matrix of each cross-view classification setting that both
    splits support (a setting without train frames of two phases or eval frames is left out)."""
    k = int(max(np.max(train.labels), np.max(evl.labels))) + 1
    masks = setting_masks(train.is_ego, evl.is_ego)
    out = []
    for s in settings:
        tr, ev = masks[s]
        if not ev.any() or len(np.unique(train.labels[tr])) < 2:
            continue
        model = make_svm().fit(train.embeds[tr], train.labels[tr])
        pred = svm_predict(model, evl.embeds[ev])
        truth = evl.labels[ev]
        out.append(Confusion(s, confusion_matrix(truth, pred, labels=np.arange(k)),
                             float(f1_score(truth, pred, average="weighted")), pred))
    return out


def draw_confusions(items: list[Confusion], path: str) -> str | None:
    if not items:
        return None
    with rc():
        fig = new_figure(5.2 * len(items), 4.8)
        axes = fig.subplots(1, len(items), squeeze=False)[0]
        for ax, c in zip(axes, items):
            k = len(c.matrix)
            totals = c.matrix.sum(axis=1, keepdims=True)
            frac = np.divide(c.matrix, totals, out=np.zeros(c.matrix.shape), where=totals > 0)
            ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, f"{frac[i, j]:.2f}\n({c.matrix[i, j]})", ha="center",
                            va="center", fontsize=9,
                            color="white" if frac[i, j] > 0.6 else "black")
            ax.set_xticks(range(k))
            ax.set_yticks(range(k))
            ax.set_xlabel("predicted phase")
            ax.set_ylabel("true phase")
            src, dst = c.setting.split("2")
            ax.set_title(f"{c.setting}: fit {src} train, predict {dst} eval\n"
                         f"weighted F1 {100 * c.f1:.2f} (rows sum to 1)")
        fig.tight_layout()
        return save_figure(fig, path)
