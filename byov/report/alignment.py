"""Ego<->exo alignment of a pair of videos: their frame-to-frame distance matrix, each ego frame's
nearest exo frame, and a strip of ego frames above the exo frames they retrieve.

Distances are Euclidean on the raw embeddings, as the retrieval and Kendall's tau protocols rank
(byov/eval/distance.py; ties go to the lower exo frame index, as there). A retrieved exo frame
"agrees" when its phase label equals the ego frame's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from byov.eval.distance import SquaredDistances
from byov.eval.io import SplitData
from byov.report.style import (new_figure, outline_color, phase_color, phase_legend_handles, rc,
                               save_figure, show_thumbnail)


@dataclass
class Alignment:
    """One ego/exo pair, computed (no drawing).

    Attributes:
        ego, exo: the two videos' metadata dicts (name, view, num_frames).
        distances: (L_ego, L_exo) float64 Euclidean distances.
        nearest: (L_ego,) int64 index of each ego frame's nearest exo frame.
        ego_labels, exo_labels: (L_ego,), (L_exo,) phase ids.
        strip: (n,) int64 ego frames shown in the strip (evenly spaced).
        strip_agree: (n,) bool, phase of ego frame == phase of its nearest exo frame.
        outline_colors: (n,) the outline colour of each strip column (AGREE_COLOR /
            DISAGREE_COLOR), the same for the ego thumbnail and the exo one below it.
        path: the PNG, once drawn.
    """

    ego: dict
    exo: dict
    distances: np.ndarray
    nearest: np.ndarray
    ego_labels: np.ndarray
    exo_labels: np.ndarray
    strip: np.ndarray
    strip_agree: np.ndarray
    outline_colors: list[str] = field(default_factory=list)
    path: str | None = None

    @property
    def agreement(self) -> float:
        """Fraction of all ego frames whose nearest exo frame has the same phase."""
        return float(np.mean(self.ego_labels == self.exo_labels[self.nearest]))


def pick_pairs(split: SplitData, n_pairs: int) -> list[tuple[int, int]]:
    """Up to n_pairs (ego video index, exo video index) pairs, spread over each view's videos
    (the i-th pair takes the videos at the same relative position in each view's sorted list)."""
    ego = np.flatnonzero(split.video_is_ego)
    exo = np.flatnonzero(~split.video_is_ego)
    n = min(n_pairs, max(len(ego), len(exo))) if len(ego) and len(exo) else 0
    pairs = []
    for i in range(n):
        a = ego[int(np.floor(i * len(ego) / n))]
        b = exo[int(np.floor(i * len(exo) / n))]
        pairs.append((int(a), int(b)))
    return pairs


def align(split: SplitData, ego_video: int, exo_video: int, n_strip: int = 8) -> Alignment:
    """The alignment of video `ego_video` (an ego video's index in split.videos) to `exo_video`."""
    off = split.offsets
    a = slice(int(off[ego_video]), int(off[ego_video + 1]))
    b = slice(int(off[exo_video]), int(off[exo_video + 1]))
    xa, xb = split.embeds[a], split.embeds[b]
    sq = SquaredDistances(xb)(xa)
    nearest = np.argmin(sq, axis=1).astype(np.int64)  # first index on ties
    ya, yb = np.asarray(split.labels[a]), np.asarray(split.labels[b])
    n = min(n_strip, len(ya))
    strip = np.unique(np.round(np.linspace(0, len(ya) - 1, n)).astype(np.int64))
    agree = ya[strip] == yb[nearest[strip]]
    return Alignment(split.videos[ego_video], split.videos[exo_video], np.sqrt(sq), nearest, ya,
                     yb, strip, agree, [outline_color(bool(g)) for g in agree])


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Positions (between frames, at i - 0.5) where the phase changes."""
    return np.flatnonzero(np.diff(labels) != 0) + 0.5


def _phase_bar(ax, labels: np.ndarray, vertical: bool) -> None:
    from matplotlib.colors import ListedColormap
    k = int(labels.max()) + 1
    cmap = ListedColormap([phase_color(c) for c in range(k)])
    img = labels[:, None] if vertical else labels[None, :]
    ax.imshow(img, aspect="auto", cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def draw(al: Alignment, reader, path: str, num_phases: int | None = None) -> str:
    """Draw the pair: distance matrix (left) and the thumbnail strip (right); sets al.path."""
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    k = num_phases or int(max(al.ego_labels.max(), al.exo_labels.max())) + 1
    n = len(al.strip)
    ego_imgs = reader.thumbnails("ego", al.ego["name"], al.strip)
    exo_imgs = reader.thumbnails("exo", al.exo["name"], al.nearest[al.strip])
    with rc():
        fig = new_figure(5.6 + 1.6 * n, 4.5)
        # column 1 is an empty spacer that keeps the colour bar's label off the strip
        gs = fig.add_gridspec(2, n + 2, width_ratios=[3.4, 0.75] + [1.0] * n, wspace=0.08,
                              hspace=0.3)
        ax = fig.add_subplot(gs[:, 0])
        im = ax.imshow(al.distances, aspect="auto", cmap="viridis_r", interpolation="nearest")
        for pos in _boundaries(al.ego_labels):
            ax.axhline(pos, color="white", lw=1.2, ls="--")
        for pos in _boundaries(al.exo_labels):
            ax.axvline(pos, color="white", lw=1.2, ls="--")
        rows = np.arange(len(al.nearest))
        ok = al.ego_labels == al.exo_labels[al.nearest]
        ax.plot(al.nearest, rows, color="black", lw=0.8, alpha=0.6)
        ax.scatter(al.nearest[ok], rows[ok], s=14, c="#7CFC00", edgecolors="black",
                   linewidths=0.4, zorder=3, label="nearest exo frame, same phase")
        ax.scatter(al.nearest[~ok], rows[~ok], s=14, c="#ff3030", edgecolors="black",
                   linewidths=0.4, zorder=3, label="nearest exo frame, other phase")
        ax.set_xlim(-0.5, al.distances.shape[1] - 0.5)
        ax.set_ylim(al.distances.shape[0] - 0.5, -0.5)
        ax.set_xlabel(f"exo frame ({al.exo['name']})")
        ax.set_ylabel(f"ego frame ({al.ego['name']})")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False,
                  fontsize=9)
        # phase bars: the exo phases above the matrix, the ego phases on its right (the left
        # side keeps the frame numbers)
        div = make_axes_locatable(ax)
        _phase_bar(div.append_axes("top", size="4%", pad=0.05), al.exo_labels, False)
        _phase_bar(div.append_axes("right", size="4%", pad=0.05), al.ego_labels, True)
        cax = div.append_axes("right", size="4%", pad=0.12)
        fig.colorbar(im, cax=cax, label="Euclidean distance")
        ax.set_title(f"distance matrix · {100 * al.agreement:.0f}% of ego frames retrieve the "
                     f"same phase", fontsize=11, pad=22)
        for i, t in enumerate(al.strip):
            j = int(al.nearest[t])
            color = al.outline_colors[i]
            top = fig.add_subplot(gs[0, i + 2])
            show_thumbnail(top, ego_imgs[i], color)
            top.set_title(f"ego t={t}\nphase {int(al.ego_labels[t])}", fontsize=10)
            bottom = fig.add_subplot(gs[1, i + 2])
            show_thumbnail(bottom, exo_imgs[i], color)
            bottom.set_title(f"exo t={j}\nphase {int(al.exo_labels[j])}", fontsize=10)
        fig.legend(handles=phase_legend_handles(k), loc="lower right", ncol=k, frameon=False,
                   bbox_to_anchor=(0.98, -0.04), title="phase (colour bars)")
        al.path = save_figure(fig, path)
    return al.path
