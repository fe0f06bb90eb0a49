"""Shared look of the report's figures: phase and view colours, outline colours, saving.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas directly (no pyplot),
so building a report changes no global matplotlib state and needs no display.
"""
from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Outline of a retrieved / aligned thumbnail: its phase agrees with the query's, or not.
AGREE_COLOR = "#1a9850"
DISAGREE_COLOR = "#d73027"
QUERY_COLOR = "#3b3b3b"
VIEW_COLORS = {"ego": "#1f77b4", "exo": "#ff7f0e"}
VIEW_MARKERS = {"ego": "o", "exo": "^"}
# Qualitative, colour-blind-aware (Okabe-Ito, then tab10's remaining hues) for phase ids.
_PHASE_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
                  "#000000", "#8c564b", "#7f7f7f", "#bcbd22", "#17becf")
DPI = 100
FONT = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
        "xtick.labelsize": 10, "ytick.labelsize": 10}


def phase_color(phase: int) -> str:
    """The colour of phase id `phase` (>= 0); ids beyond the palette wrap around."""
    return _PHASE_PALETTE[int(phase) % len(_PHASE_PALETTE)]


def phase_colors(num_phases: int) -> list[str]:
    return [phase_color(c) for c in range(num_phases)]


def outline_color(agree: bool) -> str:
    return AGREE_COLOR if agree else DISAGREE_COLOR


def new_figure(width: float, height: float) -> Figure:
    """A Figure of width x height inches on an Agg canvas, with the report's font sizes."""
    import matplotlib

    with matplotlib.rc_context(FONT):
        fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def rc():
    """Context manager applying the report's font sizes while artists are created."""
    import matplotlib
    return matplotlib.rc_context(FONT)


def save_figure(fig: Figure, path: str) -> str:
    """Write `fig` as PNG to `path` (folders created); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    return path


def show_thumbnail(ax, image: np.ndarray, color: str | None, width: float = 4.0) -> None:
    """Draw an RGB uint8 image on `ax` without ticks, framed by a `color` outline (None: none)."""
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(color is not None)
        if color is not None:
            spine.set_edgecolor(color)
            spine.set_linewidth(width)


def phase_legend_handles(num_phases: int, names: dict[int, str] | None = None):
    """Legend patches for phases 0..K-1."""
    from matplotlib.patches import Patch
    names = names or {}
    return [Patch(facecolor=phase_color(c), label=names.get(c, f"phase {c}"))
            for c in range(num_phases)]
