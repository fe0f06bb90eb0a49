"""The report's index.html: self-contained (inline CSS, no JavaScript, no network), figures
referenced by relative path so the folder can be moved or archived as a whole."""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

from byov.atomic import atomic_write_text
from byov.eval.tables import progression_headline

SETTINGS = ("regular", "ego2exo", "exo2ego")

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1360px; padding: 0 16px; color: #1d1d1d; line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 21px; margin-top: 36px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 17px; }
.meta { color: #555; font-size: 14px; } .how { color: #333; max-width: 1000px; }
figure { margin: 12px 0 24px 0; } figure img { max-width: 100%; height: auto;
     border: 1px solid #e3e3e3; } figcaption { font-size: 14px; color: #444; }
table { border-collapse: collapse; margin: 10px 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 5px 10px; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.model td { font-weight: 600; background: #f7fbff; }
pre { background: #f6f6f6; padding: 10px; font-size: 13px; overflow-x: auto;
      columns: 3 260px; }
ul.notes { font-size: 14px; color: #444; } nav a { margin-right: 14px; }
.ok { color: #1a9850; font-weight: 600; } .bad { color: #d73027; font-weight: 600; }
"""


@dataclass
class Section:
    anchor: str
    title: str
    how: str = ""  # how to read the figures (HTML)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)
    body: str = ""  # extra HTML


def _pct(v) -> str:
    return "n/a" if v is None else f"{100.0 * v:.2f}"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def metrics_table(rows: list[tuple[str, dict, bool]], dataset: str | None) -> str:
    """HTML table: one row per (name, metrics dict, is_model); F1 and mAP@10 x100, the headline
    progression R^2 and Kendall's tau, as in evaluate.py's table."""
    head = ("<tr><th rowspan=2>embeddings</th><th colspan=3>phase classification F1 (x100)</th>"
            "<th colspan=3>frame retrieval mAP@10 (x100)</th><th rowspan=2>progression R²</th>"
            "<th rowspan=2>Kendall's τ</th></tr><tr>"
            + "<th>regular</th><th>ego2exo</th><th>exo2ego</th>" * 2 + "</tr>")
    lines = [head]
    for name, m, is_model in rows:
        f1 = m.get("classification_f1") or {}
        mp = m.get("retrieval_map10") or {}
        prog = m.get(progression_headline(m, dataset)) if "progression_r2" in m else None
        cells = ([_pct(f1.get(s)) for s in SETTINGS] + [_pct(mp.get(s)) for s in SETTINGS]
                 + [_num(prog), _num(m.get("kendalls_tau"))])
        cls = ' class="model"' if is_model else ""
        lines.append(f"<tr{cls}><td>{html.escape(name)}</td>"
                     + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
    return "<table>" + "\n".join(lines) + "</table>"


def write_page(path: str, title: str, meta: list[str], sections: list[Section],
               notes: list[str]) -> str:
    """Write index.html at `path`; figure paths in sections are relative to its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "".join(f'<div class="meta">{m}</div>' for m in meta),
             "<nav>" + "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>'
                               for s in sections) + "</nav>"]
    for s in sections:
        parts.append(f'<h2 id="{s.anchor}">{html.escape(s.title)}</h2>')
        if s.how:
            parts.append(f'<p class="how">{s.how}</p>')
        parts.append(s.body)
        for rel, caption in s.figures:
            if not os.path.isfile(os.path.join(folder, rel)):
                raise FileNotFoundError(f"figure {rel} is missing from {folder}")
            parts.append(f'<figure><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if notes:
        parts.append('<h2 id="notes">Notes</h2><ul class="notes">'
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
