"""Human-readable results: a markdown table (F1 and mAP x100 as in the papers; R^2 and tau as
is), `metrics.json` and `metrics.md`."""
from __future__ import annotations

import json
import os

from byov.atomic import atomic_write_text

SETTINGS = ("regular", "ego2exo", "exo2ego")
_HEADERS = ("Regular", "Ego2Exo", "Exo2Ego")


def _pct(v) -> str:
    return "n/a" if v is None else f"{100.0 * v:.2f}"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def progression_headline(metrics: dict, dataset: str | None = None) -> str:
    """The progression key the table leads with: the metrics' own choice when recorded,
    otherwise the time-feature variant for pour_liquid and the plain one elsewhere."""
    if metrics.get("progression_headline"):
        return metrics["progression_headline"]
    return ("progression_r2_with_time_feature" if dataset == "pour_liquid"
            else "progression_r2")


def format_table(metrics: dict, dataset: str | None = None) -> str:
    """A markdown table of whatever tasks `metrics` holds, plus details and notes."""
    lines = ["| Task | " + " | ".join(_HEADERS) + " |", "|---|---:|---:|---:|"]
    if "classification_f1" in metrics:
        row = metrics["classification_f1"]
        lines.append("| Phase classification, F1 (x100) | "
                     + " | ".join(_pct(row.get(s)) for s in SETTINGS) + " |")
    if "retrieval_map" in metrics or "retrieval_map10" in metrics:
        by_k = metrics.get("retrieval_map") or {"10": metrics["retrieval_map10"]}
        for k in sorted(by_k, key=int):
            head = " (headline)" if k == "10" else ""
            lines.append(f"| Frame retrieval, mAP@{k} (x100){head} | "
                         + " | ".join(_pct(by_k[k].get(s)) for s in SETTINGS) + " |")
    details = []
    if "progression_r2" in metrics:
        key = progression_headline(metrics, dataset)
        other = ("progression_r2" if key == "progression_r2_with_time_feature"
                 else "progression_r2_with_time_feature")
        which = "with the time feature" if key != "progression_r2" else "plain"
        lines.append(f"| Phase progression, R^2 ({which}) | {_num(metrics.get(key))} | | |")
        details.append(f"Progression: headline = {which} ({key}); "
                       f"{'plain' if which != 'plain' else 'with time feature'} = "
                       f"{_num(metrics.get(other))}.")
    if "kendalls_tau" in metrics:
        lines.append(f"| Kendall's tau | {_num(metrics['kendalls_tau'])} | | |")
        by_view = metrics.get("kendalls_tau_by_view") or {}
        if by_view:
            details.append("Kendall's tau by view pair (query-candidate): "
                           + ", ".join(f"{k} {_num(v)}" for k, v in by_view.items()) + ".")
    out = "\n".join(lines)
    if metrics.get("few_shot"):
        fs = ["", "| Few-shot (Regular), k videos | episodes | F1 mean (x100) | F1 std |",
              "|---:|---:|---:|---:|"]
        for e in metrics["few_shot"]:
            std = "n/a" if e["f1_std"] is None else f"{100.0 * e['f1_std']:.2f}"
            fs.append(f"| {e['k']} | {e['episodes']} | {_pct(e['f1_mean'])} | {std} |")
        out += "\n" + "\n".join(fs)
    if details:
        out += "\n\n" + "\n".join(details)
    if metrics.get("notes"):
        out += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in metrics["notes"])
    return out


def to_json(metrics: dict) -> str:
    """JSON text; NaN is not valid JSON and never appears (n/a values are null)."""
    return json.dumps(metrics, indent=2, allow_nan=False) + "\n"


def write_metrics(directory: str, metrics: dict, meta: dict) -> tuple[str, str]:
    """Write `metrics.json` ({"meta": meta, "metrics": metrics}) and `metrics.md` (meta + table)
    into `directory`, atomically. Returns their paths."""
    os.makedirs(directory, exist_ok=True)
    json_path = os.path.join(directory, "metrics.json")
    md_path = os.path.join(directory, "metrics.md")
    atomic_write_text(json_path, to_json({"meta": meta, "metrics": metrics}))
    title = f"# AE2 evaluation: {meta.get('dataset') or 'embeddings'}"
    head = [title, ""] + [f"- {k}: {v}" for k, v in meta.items()] + [""]
    table = format_table(metrics, meta.get("dataset"))
    atomic_write_text(md_path, "\n".join(head) + "\n" + table + "\n")
    return json_path, md_path


def _headline_rows(metrics: dict, dataset: str | None) -> list[tuple[str, str]]:
    """(label, value) of the headline numbers: 3 F1, 3 mAP@10 (x100), progression, tau."""
    rows = []
    for group, label in (("classification_f1", "F1"), ("retrieval_map10", "mAP@10")):
        for s, h in zip(SETTINGS, _HEADERS):
            rows.append((f"{label} {h}", _pct((metrics.get(group) or {}).get(s))))
    key = progression_headline(metrics, dataset)
    which = "time feature" if key != "progression_r2" else "plain"
    rows.append((f"Progression R^2 ({which})", _num(metrics.get(key))))
    rows.append(("Kendall's tau", _num(metrics.get("kendalls_tau"))))
    return rows


def format_comparison(runs: list[dict], names: list[str], dataset: str | None = None) -> str:
    """One markdown table, a column per run, a row per headline metric."""
    if len(runs) != len(names):
        raise ValueError(f"{len(runs)} metric sets but {len(names)} names")
    columns = [_headline_rows(m, dataset) for m in runs]
    lines = ["| Metric | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for i, (label, _) in enumerate(columns[0]):
        lines.append(f"| {label} | " + " | ".join(c[i][1] for c in columns) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m byov.eval.tables",
                                description="side-by-side table of metrics json files")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="compare evaluate.py --json outputs")
    c.add_argument("files", nargs="+")
    c.add_argument("--names", nargs="+", default=None)
    c.add_argument("--dataset", default=None)
    args = p.parse_args(argv)
    runs = []
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        runs.append(data.get("metrics", data))  # metrics.json nests them under "metrics"
    names = args.names or [os.path.basename(os.path.dirname(os.path.abspath(f)))
                           for f in args.files]
    print(format_comparison(runs, names, args.dataset))


if __name__ == "__main__":
    main()
