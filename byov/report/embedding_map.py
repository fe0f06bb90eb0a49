"""2-D maps (t-SNE, scikit-learn) of the evaluated split's frames for the trained model beside
the baselines: top row coloured by phase, bottom row by view. A view-invariant representation
mixes ego and exo frames of the same phase; a view-specific one splits the map by view.

The same random subsample of frames (seeded) is drawn for every source, so the panels show the
same frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.manifold import TSNE

from byov.report.style import (VIEW_COLORS, VIEW_MARKERS, new_figure, phase_color,
                               phase_legend_handles, rc, save_figure)


@dataclass
class Projection:
    name: str
    xy: np.ndarray  # (n, 2)
    subtitle: str = ""


def subsample(n_rows: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices: all rows, or max_points of them drawn without replacement."""
    if n_rows <= max_points:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, max_points, replace=False))


def project(x: np.ndarray, seed: int = 0, max_iter: int = 500) -> np.ndarray:
    """(n, D) -> (n, 2) t-SNE (PCA init when D >= 2; perplexity capped for small n).

    500 iterations (scikit-learn's default is 1000) halve the cost; the first 250 are the early
    exaggeration phase either way, and the demo run's maps keep the same clusters."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    init = "pca" if x.shape[1] >= 2 else "random"
    return TSNE(n_components=2, perplexity=perplexity, init=init, random_state=seed,
                learning_rate="auto", max_iter=max_iter).fit_transform(x)


def draw(projections: list[Projection], labels: np.ndarray, is_ego: np.ndarray, path: str,
         num_phases: int) -> str:
    """Two rows of panels (phase colours; view colours), one column per projection."""
    n = len(projections)
    views = np.where(is_ego, "ego", "exo")
    with rc():
        fig = new_figure(4.6 * n, 9.4)
        axes = fig.subplots(2, n, squeeze=False)
        for col, p in enumerate(projections):
            for row in range(2):
                ax = axes[row, col]
                for view in ("ego", "exo"):
                    m = views == view
                    if row == 0:
                        colors = [phase_color(c) for c in labels[m]]
                    else:
                        colors = VIEW_COLORS[view]
                    ax.scatter(p.xy[m, 0], p.xy[m, 1], s=11, c=colors,
                               marker=VIEW_MARKERS[view], alpha=0.75, linewidths=0)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(p.name + (f"\n{p.subtitle}" if p.subtitle else ""))
            axes[0, 0].set_ylabel("coloured by phase")
            axes[1, 0].set_ylabel("coloured by view")
        from matplotlib.lines import Line2D
        view_handles = [Line2D([], [], ls="", marker=VIEW_MARKERS[v], color=VIEW_COLORS[v],
                               label=v) for v in ("ego", "exo")]
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        fig.legend(handles=phase_legend_handles(num_phases) + view_handles,
                   loc="lower center", ncol=num_phases + 2, frameon=False,
                   title="top: colour = phase (marker = view: o ego, ^ exo) · bottom: "
                         "colour = view")
        return save_figure(fig, path)
