"""The visual report of a video-level (Charades-Ego) run: RUN_DIR/report/index.html.

Sections: the mAP table (the checkpoint, the chance / frozen-backbone / untrained baselines and
the published numbers), the training curves (as for AE2 runs, `curves`), the per-class AP of the
checkpoint beside the frozen backbone's in the three settings, and a few test videos (frame
strips) with their ground-truth classes and the Regular probe's top predicted classes. Every
number comes from an evaluation folder written by the library's one evaluation call
(`byov.downstream.pipeline.evaluate_model`, through `byov.report.inputs`; it re-embeds only when
the checkpoint, the data or the settings changed).
"""
from __future__ import annotations

import html
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from byov.report import curves
from byov.report.inputs import (_evaluate, method_label, read_config, read_log,
                                resolve_checkpoint)
from byov.report.page import Section, write_page
from byov.report.style import new_figure, rc, save_figure, show_thumbnail

PREFIXES = ("curves_", "video_ap", "video_top")
SETTINGS = ("regular", "ego2exo", "exo2ego")


@dataclass
class VideoReport:
    index: str
    images: list[str]
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # the test videos drawn


def _metrics(folder: str) -> dict:
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
        return json.load(f).get("metrics", {})


def _cell(v) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def map_table(rows: list[tuple[str, dict, bool]]) -> str:
    """HTML table of mAP x100 per setting: our rows, then the published ones."""
    from byov.eval.video_level import PUBLISHED, PUBLISHED_SOURCE

    lines = ["<tr><th>embeddings</th><th>Regular</th><th>Ego2Exo</th><th>Exo2Ego</th></tr>"]
    for name, m, is_model in rows:
        vm = m.get("video_map") or {}
        cls = ' class="model"' if is_model else ""
        lines.append(f"<tr{cls}><td>{html.escape(name)}</td>" + "".join(
            f'<td class="num">{_cell(vm.get(s))}</td>' for s in SETTINGS) + "</tr>")
    for name, values in PUBLISHED.items():
        lines.append(f"<tr><td>published: {html.escape(name)}</td>" + "".join(
            f'<td class="num">{_cell(v)}</td>' for v in values) + "</tr>")
    return ("<table>" + "\n".join(lines) + "</table>"
            f'<p class="how">Published rows: {html.escape(PUBLISHED_SOURCE)}. The paper\'s '
            "split, class count and probe are not published: context, not a like-for-like "
            "comparison.</p>")


def draw_class_ap(rows: list[tuple[str, dict]], classes: list[tuple[str, str]],
                  path: str) -> str:
    """One panel per setting: AP x100 per class (bars) for each row; classes without a positive
    test video are marked n/a."""
    k = len(classes)
    with rc():
        fig = new_figure(max(8.0, 0.45 * k * len(rows) + 2), 3.2 * len(SETTINGS))
        width = 0.8 / max(1, len(rows))
        for si, setting in enumerate(SETTINGS):
            ax = fig.add_subplot(len(SETTINGS), 1, si + 1)
            for ri, (name, m) in enumerate(rows):
                ap = (m.get("per_class_ap") or {}).get(setting) or {}
                vals = [ap.get(c) for c, _ in classes]
                x = np.arange(k) + (ri - (len(rows) - 1) / 2) * width
                ax.bar(x, [np.nan if v is None else v for v in vals], width, label=name,
                       color=f"C{ri}")
                for xi, v in zip(x, vals):
                    if v is None:
                        ax.text(xi, 2, "n/a", rotation=90, ha="center", va="bottom", fontsize=8)
            ax.set_xticks(np.arange(k))
            ax.set_xticklabels([c for c, _ in classes], rotation=90 if k > 20 else 0)
            ax.set_ylim(0, 105)
            ax.set_ylabel("AP (x100)")
            ax.set_title(f"{setting}: per-class average precision on the test split")
            ax.grid(axis="y", alpha=0.3)
            if si == 0:
                ax.legend(loc="upper right", fontsize=9, framealpha=0.85)
        fig.tight_layout()
        return save_figure(fig, path)


def pick_videos(top: dict, targets: dict, n: int) -> list[str]:
    """Up to n test videos with at least one positive class, ego and exo alternating, in id
    order (deterministic)."""
    names = sorted(v for v in top if targets.get(v))
    ego = [v for v in names if v.endswith("EGO")]
    exo = [v for v in names if not v.endswith("EGO")]
    out = []
    while len(out) < n and (ego or exo):
        for side in (ego, exo):
            if side and len(out) < n:
                out.append(side.pop(0))
    return out


def draw_top_predictions(videos: list[str], top: dict, targets: dict, names: dict, reader,
                         n_strip: int, path: str) -> str:
    """A row per video: n_strip frames, then its ground truth and top predicted classes (green
    when the class is a ground-truth class)."""
    with rc():
        fig = new_figure(1.5 * n_strip + 5.5, 1.6 * len(videos))
        grid = fig.add_gridspec(len(videos), n_strip + 4)
        for r, name in enumerate(videos):
            video = reader.videos[("ego" if name.endswith("EGO") else "exo", name)]
            idx = np.linspace(0, video.num_frames - 1, n_strip).round().astype(int)
            for c, img in enumerate(reader.thumbnails(video.view, name, idx)):
                ax = fig.add_subplot(grid[r, c])
                show_thumbnail(ax, img, None)
                if c == 0:
                    ax.set_title(f"{name} ({'ego' if video.view == 'ego' else 'third person'})",
                                 loc="left", fontsize=10)
            ax = fig.add_subplot(grid[r, n_strip:])
            ax.axis("off")
            truth = targets[name]
            lines = ["truth: " + "; ".join(f"{c} {names.get(c, '')}" for c in truth)]
            ax.text(0, 0.95, lines[0], va="top", fontsize=9, wrap=True)
            for i, (cid, score) in enumerate(top[name][:3]):
                ax.text(0, 0.7 - 0.22 * i, f"#{i + 1} {cid} {names.get(cid, '')} "
                                           f"(logit {score:.2f})", va="top", fontsize=9,
                        color="#1a9850" if cid in truth else "#d73027")
        fig.tight_layout()
        return save_figure(fig, path)


def build_video_level_report(run_dir: str, ckpt: str = "best", split: str = "test",
                             out_dir: str | None = None, overrides: dict | None = None,
                             baselines: bool = True, n_videos: int = 4,
                             n_strip: int = 6, resolve_config=None) -> VideoReport:
    """Write the report of a Charades-Ego run (module docstring); returns what was written.

    `resolve_config`: flat config -> the resolved config (defaults filled in), as for
    `byov.report.build_report`. Raises ReportError (not a run folder, no such checkpoint) and
    what the evaluation raises.
    """
    from byov.hub import checkpoint_name, read_reference
    from byov.data.charades_ego import CLASSES_FILE, data_path, read_classes
    from byov.report.frames import FrameReader

    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    out_dir = out_dir or os.path.join(run_dir, "report")
    config, _ = read_config(run_dir)
    config = {**config, **overrides}
    ckpt_path = resolve_checkpoint(run_dir, ckpt)
    resolve = resolve_config or (lambda c: c)
    checkpoint = read_reference(ckpt_path)
    folder = os.path.join(run_dir, "eval", checkpoint_name(ckpt_path))
    _, spec = _evaluate({**checkpoint.state["config"], **overrides}, folder, split, resolve,
                        checkpoint=checkpoint)
    model = _metrics(folder)
    label = method_label(spec.method.name, ckpt_path)
    rows = [(label, model, True)]
    notes = []
    if baselines:
        for b in ("prior", "frozen", "random_init"):
            bdir = os.path.join(run_dir, "eval", f"baseline_{b}")
            if b == "random_init" and not os.path.isdir(bdir):
                notes.append("no untrained-model evaluation folder (eval/baseline_random_init); "
                             "scripts/run.sh charades_ego/demo writes one")
                continue
            _evaluate(config, bdir, split, resolve, baseline=b)
            rows.append((f"baseline: {b}", _metrics(bdir), False))
    seconds["inputs (embeddings, metrics)"] = time.perf_counter() - t0
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if name.endswith(".png") and name.startswith(PREFIXES):
            os.remove(os.path.join(out_dir, name))
    images, sections = [], []
    sections.append(Section(
        "metrics", "Video-level mAP",
        how=f"The Charades-Ego protocol on the <b>{html.escape(split)}</b> split: per-frame "
            "embeddings mean-pooled per video, a linear probe (one-vs-rest logistic regression "
            "on standardised features) fitted on the train videos, mAP ×100 over the classes "
            "with a positive test video. Regular: train and test on both views; Ego2Exo: train "
            "on ego, test on third-person videos; Exo2Ego: the reverse. Baselines: chance "
            "(every video scored with the training class prevalence), the frozen backbone's "
            "merged features, the untrained model.",
        body=map_table(rows)))

    log = read_log(run_dir)
    keys = curves.classify_keys(log)
    figs = []
    p = curves.plot_losses(log, keys, os.path.join(out_dir, "curves_losses.png"))
    if p:
        figs.append((p, "Loss terms and the other logged training scalars, against the step."))
    p = curves.plot_val_metrics(log, keys, os.path.join(out_dir, "curves_val_metrics.png"))
    if p:
        figs.append((p, "Val mAP (x100) per setting and val_score (their mean) at each "
                        "evaluation epoch; best.pth is chosen on --best_metric."))
    sections.append(Section("curves", "Training curves", how="From log.jsonl.",
                            figures=[(os.path.relpath(f, out_dir), c) for f, c in figs]))
    images += [f for f, _ in figs]
    seconds["curves"] = time.perf_counter() - t0 - sum(seconds.values())

    data = spec.method.data
    classes = read_classes(os.path.join(data_path(data.root), CLASSES_FILE))
    ap_rows = [(label, model)] + [(n, m) for n, m, _ in rows[1:] if n == "baseline: frozen"]
    p = draw_class_ap(ap_rows, classes, os.path.join(out_dir, "video_ap.png"))
    images.append(p)
    names = dict(classes)
    table = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{html.escape(names[c])}</td>" + "".join(
            f'<td class="num">{_cell(((model.get("per_class_ap") or {}).get(s) or {}).get(c))}'
            f"</td>" for s in SETTINGS) + "</tr>" for c, _ in classes)
    sections.append(Section(
        "per_class", "Per-class average precision",
        how="AP ×100 of each class, the checkpoint beside the frozen backbone. n/a: no test "
            "video of that class (excluded from the mean, as in the standard Charades "
            "evaluation).",
        figures=[(os.path.relpath(p, out_dir), "Per-class AP on the test split, three "
                                                "settings.")],
        body="<table><tr><th>class</th><th>name</th><th>Regular</th><th>Ego2Exo</th>"
             "<th>Exo2Ego</th></tr>" + table + "</table>"))
    seconds["per-class AP"] = time.perf_counter() - t0 - sum(seconds.values())

    top = model.get("top_predictions") or {}
    with open(os.path.join(folder, f"{split}_videos.json"), encoding="utf-8") as f:
        meta = json.load(f)
    y = np.load(os.path.join(folder, f"{split}_targets.npy"))
    targets = {m["name"]: [classes[j][0] for j in np.flatnonzero(y[i])]
               for i, m in enumerate(meta)}
    shown = pick_videos(top, targets, n_videos)
    if shown:
        reader = FrameReader(data, split)
        p = draw_top_predictions(shown, top, targets, names, reader, n_strip,
                                 os.path.join(out_dir, "video_top.png"))
        images.append(p)
        sections.append(Section(
            "videos", "Test videos and their top predicted classes",
            how="Frames spread over each video; beside them its ground-truth classes and the "
                "Regular probe's three highest-scoring classes (green: a ground-truth class, "
                "red: not).",
            figures=[(os.path.relpath(p, out_dir), "Test videos with their top-3 classes.")]))
    seconds["videos"] = time.perf_counter() - t0 - sum(seconds.values())
    index = os.path.join(out_dir, "index.html")
    write_page(index, f"byov report: {os.path.basename(os.path.abspath(run_dir))}",
               [f"checkpoint <code>{html.escape(ckpt_path)}</code> · evaluated split "
                f"<b>{html.escape(split)}</b> · dataset <b>charades_ego</b> · {len(meta)} "
                f"videos, {len(classes)} classes"], sections, notes)
    seconds["total"] = time.perf_counter() - t0
    return VideoReport(index, images, seconds, notes, shown)
