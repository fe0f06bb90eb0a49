"""Build a run's report: gather the inputs, draw every figure, write index.html; timed per stage."""
from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from byov.report import alignment, curves, embedding_map, gallery, phases
from byov.report.frames import FrameReader
from byov.report.inputs import Evaluation, ReportError, RunInputs, gather
from byov.report.page import Section, metrics_table, write_page

# Files this package writes into the report folder (older ones are removed first).
PREFIXES = ("curves_", "alignment_", "gallery_", "embedding_map", "progression", "confusion")


@dataclass
class ReportResult:
    """What was written and what the figures show (for tests and callers).

    Attributes:
        index: path of index.html; images: paths of the PNGs it references.
        seconds: wall time per stage, and "total".
    """

    index: str
    images: list[str]
    seconds: dict[str, float]
    inputs: RunInputs
    alignments: list[alignment.Alignment] = field(default_factory=list)
    galleries: list[gallery.Gallery] = field(default_factory=list)
    progression: phases.Progression | None = None
    confusions: list[phases.Confusion] = field(default_factory=list)


class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._t
        self._t = now


def _same_rows(a: Evaluation, b: Evaluation) -> bool:
    return (len(a.evl.labels) == len(b.evl.labels)
            and np.array_equal(a.evl.labels, b.evl.labels)
            and [(v["name"], v["view"]) for v in a.evl.videos]
            == [(v["name"], v["view"]) for v in b.evl.videos])


def _map_subtitle(m: dict) -> str:
    r = m.get("retrieval_map10") or {}
    vals = [f"{s} {100 * r[s]:.1f}" for s in ("ego2exo", "exo2ego") if r.get(s) is not None]
    return ("mAP@10 " + ", ".join(vals)) if vals else ""


def _clean(out_dir: str) -> None:
    for name in os.listdir(out_dir):
        if name.endswith(".png") and name.startswith(PREFIXES):
            os.remove(os.path.join(out_dir, name))


def build_report(run_dir: str, ckpt: str = "best", split: str = "test",
                 out_dir: str | None = None, overrides: dict | None = None,
                 baselines: bool = True, n_pairs: int = 3, n_strip: int = 8,
                 max_points: int = 800, n_progression: int = 4,
                 resolve_config=None) -> ReportResult:
    """Write RUN_DIR/report/index.html (or OUT_DIR/index.html) and its figures.

    Args:
        run_dir: a train.py run folder (config.yaml, log.jsonl, checkpoints/, eval/).
        ckpt: "best" (else last.pth), "last", or a checkpoint path.
        split: the evaluated split, "test" or "val".
        overrides: location keys for the data ({"dataset_root", "frame_cache_dir"}), when the
            data moved since training.
        baselines: compare with the frozen-backbone features and the time baseline.
        n_pairs: ego/exo pairs in the alignment figures; n_strip: frames per strip.
        max_points: frames in the 2-D embedding maps (random subsample, seeded).
        n_progression: videos in the progression figure.
        resolve_config: flat config dict -> the full resolved config (defaults filled in,
            validated); the command line passes utils/config.py's. None: used as stored.
    Raises:
        ReportError: not a run folder, or no such checkpoint; what evaluate.py raises when the
            embeddings must be produced and cannot be.
        CannotWriteError: the report folder cannot be written (read-only, full disk).
    """
    from byov.writable import probe_writable, writing

    timer = _Timer()
    out_dir = out_dir or os.path.join(run_dir, "report")
    out = (out_dir, "the report", "--out")
    if not os.path.isdir(run_dir):  # gather's own message names a missing run folder
        return _build(run_dir, ckpt, split, out_dir, overrides, baselines, n_pairs, n_strip,
                      max_points, n_progression, timer, resolve_config)
    probe_writable(*out)  # before the embeddings are made
    with writing(*out):
        return _build(run_dir, ckpt, split, out_dir, overrides, baselines, n_pairs, n_strip,
                      max_points, n_progression, timer, resolve_config)


def _build(run_dir, ckpt, split, out_dir, overrides, baselines, n_pairs, n_strip, max_points,
           n_progression, timer, resolve_config) -> ReportResult:
    inp = gather(run_dir, ckpt, split, overrides, baselines, resolve_config)
    timer.lap("inputs (embeddings, metrics)")
    os.makedirs(out_dir, exist_ok=True)
    _clean(out_dir)
    res = ReportResult(os.path.join(out_dir, "index.html"), [], {}, inp)
    # One BLAS/OpenMP thread: the figures' work is small, and on a busy machine spinning
    # OpenMP threads made t-SNE 20-50x slower (measured: 42 s vs 0.8 s for 60 frames).
    with threadpool_limits(limits=1):
        sections = _sections(res, out_dir, timer, n_pairs, n_strip, max_points, n_progression)
    dataset, evl = inp.spec.eval.dataset, inp.model.evl
    k = int(max(np.max(inp.model.train.labels), np.max(evl.labels))) + 1
    total = sum(timer.seconds.values())
    meta = [f"checkpoint <code>{html.escape(inp.ckpt_path)}</code> · evaluated split "
            f"<b>{html.escape(split)}</b> · dataset <b>{html.escape(dataset)}</b> · "
            f"{len(evl.videos)} videos, {len(evl.labels)} frames, {k} phases",
            "made in " + ", ".join(f"{n} {s:.1f} s" for n, s in timer.seconds.items())
            + f" (total {total:.1f} s)"]
    write_page(res.index, f"byov report: {os.path.basename(os.path.abspath(run_dir))}", meta,
               sections, inp.notes)
    timer.lap("page")
    res.seconds = dict(timer.seconds)
    res.seconds["total"] = sum(timer.seconds.values())
    return res


def _sections(res: ReportResult, out_dir: str, timer: _Timer, n_pairs: int, n_strip: int,
              max_points: int, n_progression: int) -> list[Section]:
    """Draw every figure into out_dir; the page's sections, in page order."""
    inp = res.inputs
    model, split = inp.model, inp.split
    evl, train = model.evl, model.train
    k = int(max(np.max(train.labels), np.max(evl.labels))) + 1
    sections: list[Section] = []

    # 6. headline metrics (first on the page)
    rows = [(model.name, model.metrics, True)] + [(b.name, b.metrics, False)
                                                    for b in inp.baselines]
    dataset = inp.spec.eval.dataset
    sections.append(Section(
        "metrics", "Headline metrics",
        how=f"The AE2 protocol on the <b>{html.escape(split)}</b> split (fit on train): "
            "F1 and mAP@10 ×100, progression R², Kendall's τ, from each evaluation folder's "
            "metrics.json. Baselines: the frozen backbone's merged features (what the model "
            "starts from), the frame's relative time t/L alone, and the untrained model "
            "(random init) when its evaluation folder exists. A trained model should beat all "
            "of them, above all in the cross-view (ego2exo, exo2ego) columns.",
        body=metrics_table(rows, dataset)))

    # 1. training curves
    keys = curves.classify_keys(inp.log)
    figs = []
    p = curves.plot_losses(inp.log, keys, os.path.join(out_dir, "curves_losses.png"))
    if p:
        figs.append((p, "Loss terms (train per step and per-epoch mean, val per epoch) and "
                        "the other logged training scalars, against the global step."))
    p = curves.plot_val_metrics(inp.log, keys, os.path.join(out_dir, "curves_val_metrics.png"))
    if p:
        figs.append((p, "Downstream metrics on the val split at each evaluation epoch "
                        "(fractions, not ×100)."))
    sections.append(Section(
        "curves", "Training curves",
        how="From log.jsonl: every numeric <code>train/*</code> and <code>val/*</code> key. "
            + ("" if keys.metric_groups else "No downstream evaluation ran during training "
               "(ds_every_n_epoch 0), so there are no val metric curves. ")
            + ("" if inp.log else "log.jsonl is missing or empty."),
        figures=[(os.path.relpath(f, out_dir), c) for f, c in figs]))
    res.images += [f for f, _ in figs]
    timer.lap("curves")

    reader = FrameReader(inp.spec.method.data, split)
    # 2. alignment
    figs = []
    for i, (a, b) in enumerate(alignment.pick_pairs(evl, n_pairs)):
        al = alignment.align(evl, a, b, n_strip)
        alignment.draw(al, reader, os.path.join(out_dir, f"alignment_{i}.png"), k)
        res.alignments.append(al)
        figs.append((al.path, f"{al.ego['name']} (ego) vs {al.exo['name']} (exo): "
                              f"{100 * al.agreement:.0f}% of ego frames retrieve an exo frame "
                              f"of the same phase."))
    sections.append(Section(
        "alignment", "Ego ↔ exo alignment",
        how="Left: Euclidean distances between every frame of an ego video (rows) and every "
            "frame of an exo video (columns), darker = closer; dashed white lines are phase "
            "boundaries, the colour bars the phases; dots mark each ego frame's nearest exo "
            "frame (<span class=ok>green</span>: same phase, <span class=bad>red</span>: other "
            "phase). A view-invariant, time-aware embedding gives a monotone dark path through "
            "the diagonal blocks. Right: evenly spaced ego frames (top) above the exo frame each "
            "retrieves (bottom), outlined green where their phases agree, red where not.",
        figures=[(os.path.relpath(f, out_dir), c) for f, c in figs],
        body="" if figs else "<p>The split lacks ego or exo videos: no pair to align.</p>"))
    res.images += [f for f, _ in figs]
    timer.lap("alignment")

    # 3. retrieval gallery
    figs = []
    if evl.is_ego.any() and (~evl.is_ego).any():
        for direction in gallery.DIRECTIONS:
            g = gallery.make_gallery(evl, direction)
            gallery.draw(g, evl, reader, os.path.join(out_dir, f"gallery_{direction}.png"))
            res.galleries.append(g)
            figs.append((g.path, f"{direction}: the {len(g.best)} best and {len(g.worst)} "
                                 f"worst queries by AP@{g.ranking.k} (mean over all "
                                 f"{len(g.ranking.ap)} queries: "
                                 f"{100 * g.ranking.ap.mean():.2f})."))
    sections.append(Section(
        "gallery", "Cross-view retrieval gallery",
        how="Each row: a query frame (grey outline) and its 5 nearest frames of the other view, "
            "nearest first, outlined <span class=ok>green</span> when their phase equals the "
            "query's, <span class=bad>red</span> when not. Queries are ranked by their AP@10 "
            "(the retrieval metric's per-query term; ties by hits in the top 10), at most one "
            "per video; pN is the phase id.",
        figures=[(os.path.relpath(f, out_dir), c) for f, c in figs]))
    res.images += [f for f, _ in figs]
    timer.lap("gallery")

    # 4. embedding map
    rows_idx = embedding_map.subsample(len(evl.labels), max_points)
    projections = [embedding_map.Projection(model.name,
                                            embedding_map.project(evl.embeds[rows_idx]),
                                            _map_subtitle(model.metrics))]
    for b in inp.baselines:
        if not _same_rows(model, b):
            inp.notes.append(f"{b.name}: its {split} rows differ from the model's (other videos "
                             f"or labels); left out of the embedding map")
            continue
        projections.append(embedding_map.Projection(
            b.name, embedding_map.project(b.evl.embeds[rows_idx]), _map_subtitle(b.metrics)))
    p = embedding_map.draw(projections, np.asarray(evl.labels)[rows_idx],
                           evl.is_ego[rows_idx], os.path.join(out_dir, "embedding_map.png"), k)
    sections.append(Section(
        "map", "Embedding map",
        how=f"t-SNE of {len(rows_idx)} of the {len(evl.labels)} {html.escape(split)} frames "
            "(the same frames in every panel). Top: colour = phase; bottom: colour = view. "
            "View-invariant embeddings put ego and exo frames of a phase together (the bottom "
            "row looks mixed); view-specific ones separate the views.",
        figures=[(os.path.relpath(p, out_dir), "t-SNE maps, trained model first, then the "
                                               "baselines.")]))
    res.images.append(p)
    timer.lap("embedding map")

    # 5. progression and confusion
    tf = inp.spec.eval.time_feature
    figs = []
    try:
        res.progression = phases.fit_progression(train, evl, tf)
        videos = phases.pick_videos(evl, n_progression)
        p = phases.draw_progression(res.progression, evl, videos,
                                    os.path.join(out_dir, "progression.png"))
        figs.append((p, f"Per-phase R² on {split}: "
                        + ", ".join(f"phase {c} {r:.3f}" for c, r in
                                    enumerate(res.progression.r2))
                        + f"; mean {res.progression.mean_r2:.4f}"
                        + (" (with the time feature)" if tf else "") + "."))
    except (ValueError, IndexError) as e:
        inp.notes.append(f"phase progression figure skipped: {e}")
    res.confusions = phases.confusions(train, evl)
    p = phases.draw_confusions(res.confusions, os.path.join(out_dir, "confusion.png"))
    if p:
        figs.append((p, "Per-phase confusion of cross-view phase classification (the released "
                        "SVM): cell = fraction of the true phase's frames (count)."))
    sections.append(Section(
        "phases", "Phase progression and classification",
        how="Progression (AE2 protocol): for each phase c, a linear regression from the "
            "embedding to (t − t_c)/L, t_c the last frame of phase c, fit on the train split. "
            "Dashed: the true ramps, solid: the predictions, one colour per phase; the "
            "background shades the true phases. Confusion: an SVM fit on one view's train "
            "frames classifies the other view's frames.",
        figures=[(os.path.relpath(f, out_dir), c) for f, c in figs]))
    res.images += [f for f, _ in figs]
    timer.lap("phases")

    sections.append(Section(
        "config", "Resolved config",
        how=f"{html.escape(os.path.join(inp.run_dir, 'config.yaml'))}",
        body=f"<pre>{html.escape(inp.config_text)}</pre>"))
    return sections


__all__ = ["ReportError", "ReportResult", "build_report"]
