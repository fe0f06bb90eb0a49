"""The benchmark's tables: one per dataset in the papers' layout, mean ± std over seeds.

Columns (BYOV Table 1 / AE2 layout): phase classification F1 regular / ego2exo / exo2ego, frame
retrieval mAP@10 regular / ego2exo / exo2ego (both x100, as printed in the papers), phase
progression R^2 (the headline variant: with the frame-index feature for pour_liquid, plain
elsewhere, as the released evaluator does) and Kendall's tau. Rows: each trained method, each
trivial baseline, then the published numbers for that dataset where they exist. The spread is the
sample standard deviation over seeds (n - 1 in the denominator); one seed has none.

A metric can be undefined for a seed (null in its test_metrics.json: a collapsed model's tau, a
one-class SVM split). A cell then averages the seeds that have a value and says so: "71.20
(n=1/2)" with a note naming the seeds whose value is missing; the row's n is the number of
seeds run. Every row also carries the identity its results came from (data fingerprint and
code version, `byov.grid.identity`): a row never mixes data or code versions.
"""
from __future__ import annotations

import decimal
import json
import math
import os
import statistics
from typing import Any

from byov.atomic import atomic_write_json, atomic_write_text
from byov.eval.tables import progression_headline
from byov.grid import published
from byov.grid.jobs import BASELINES, Grid, GridError, Job

COLUMNS = published.COLUMNS
TITLES = ("F1 Reg", "F1 E2X", "F1 X2E", "mAP@10 Reg", "mAP@10 E2X", "mAP@10 X2E",
          "Progression", "τ")
# Charades-Ego (video-level protocol, byov/eval/video_level.py): mAP x100 per setting
VIDEO_COLUMNS = ("map_regular", "map_ego2exo", "map_exo2ego")
VIDEO_TITLES = ("mAP Reg", "mAP E2X", "mAP X2E")
PERCENT = frozenset(COLUMNS[:6] + VIDEO_COLUMNS)  # x100 in the tables (as in the papers)


def video_headline(metrics: dict) -> dict[str, float | None]:
    """The 3 Charades-Ego columns of one evaluation (already x100 in the json)."""
    vm = metrics.get("video_map") or {}
    return {f"map_{s}": vm.get(s) for s in ("regular", "ego2exo", "exo2ego")}


def headline(metrics: dict, dataset_key: str) -> dict[str, float | None]:
    """The 8 table columns of one evaluation (evaluate.py --json output), in table units."""
    out: dict[str, float | None] = {}
    for group, prefix in (("classification_f1", "f1"), ("retrieval_map10", "map10")):
        for setting in ("regular", "ego2exo", "exo2ego"):
            v = (metrics.get(group) or {}).get(setting)
            out[f"{prefix}_{setting}"] = None if v is None else 100.0 * v
    out["progression"] = metrics.get(progression_headline(metrics, dataset_key))
    out["kendalls_tau"] = metrics.get("kendalls_tau")
    return out


def aggregate(per_seed: list[dict[str, float | None]],
              columns: tuple[str, ...] = COLUMNS) -> dict[str, dict[str, Any]]:
    """{column: {mean, std, n, of, missing, per_seed}} over the defined (non-null, finite)
    values; `of` is the number of seeds, `missing` the positions (in per_seed) without one."""
    out = {}
    for c in columns:
        values = [r.get(c) for r in per_seed]
        ok = [v is not None and math.isfinite(v) for v in values]
        defined = [v for v, good in zip(values, ok) if good]
        out[c] = {"mean": statistics.fmean(defined) if defined else None,
                  "std": statistics.stdev(defined) if len(defined) > 1 else None,
                  "n": len(defined), "of": len(values),
                  "missing": [i for i, good in enumerate(ok) if not good], "per_seed": values}
    return out


def _load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data.get("metrics", data) if isinstance(data, dict) else {}


def read_marker(job: Job) -> dict | None:
    from byov.grid.runner import read_marker as read
    return read(job)


def _identity(job: Job) -> dict:
    marker = read_marker(job) or {}
    return {"data": marker.get("data"), "code": marker.get("code")}


def dataset_table(dataset: str, jobs: list[Job], done: set[int], checkpoint: str) -> dict:
    """The table (a json-able dict) of one dataset from its finished jobs."""
    from byov.grid.identity import short
    from byov.spec import VIDEO_LEVEL_DATASETS

    key = jobs[0].dataset_key
    video = key in VIDEO_LEVEL_DATASETS
    notes: list[str] = []
    columns, titles = (VIDEO_COLUMNS, VIDEO_TITLES) if video else (COLUMNS, TITLES)
    rows = _result_rows(jobs, done, (lambda m: video_headline(m)) if video
                        else (lambda m: headline(m, key)), columns, titles, notes)
    made = sorted({short(r["identity"]) for r in rows if r.get("identity")})
    if made:
        notes.append(f"results made with {' | '.join(made)}")
    ckpt = ("best.pth where the run wrote one, else last.pth (which one per seed: below)"
            if checkpoint == "best" else "last.pth")
    if video:
        from byov.eval.video_level import PUBLISHED, PUBLISHED_SOURCE
        rows += [_published_row(name, PUBLISHED_SOURCE, dict(zip(VIDEO_COLUMNS, values)))
                 for name, values in PUBLISHED.items()]
        notes.insert(0, "test split; mean ± sample std over seeds (n = seeds); video-level mAP "
                        "x100 (mean-pooled embeddings, linear probe; classes without a positive "
                        f"test video excluded); trained methods evaluated with {ckpt}; the "
                        "published rows' split, class count and probe are not published")
    else:
        rows += [_published_row(name, published.BYOV_TABLE1_SOURCE, values)
                 for name, values in published.published_rows(key).items()]
        if not published.published_rows(key):
            notes.append(f"no published numbers for dataset '{key}' (BYOV Table 1 covers "
                         f"{', '.join(published.AE2_DATASETS)})")
        notes.insert(0, f"test split; mean ± sample std over seeds (n = seeds); F1 and mAP@10 "
                        f"x100; progression R^2 "
                        f"{'with the frame-index feature' if key == 'pour_liquid' else 'plain'}; "
                        f"trained methods evaluated with {ckpt}")
    return {"dataset": dataset, "dataset_key": key, "config": jobs[0].config_path,
            "columns": list(columns), "titles": list(titles), "rows": rows, "notes": notes}


def _published_row(name: str, source: str, values: dict) -> dict:
    return {"name": f"{name} (published)", "kind": "published", "method": name, "seeds": [],
            "n": None, "source": source,
            "values": {c: {"mean": v, "std": None, "n": None, "per_seed": []}
                       for c, v in values.items()}}


def _result_rows(jobs: list[Job], done: set[int], headline_of, columns, titles,
                 notes: list[str]) -> list[dict]:
    """One row per method / baseline: mean ± std over its finished seeds (`headline_of(metrics)`
    -> {column: value}), refusing seeds of different data or code versions, with notes on the
    jobs not finished, the seeds without a value in a cell and the checkpoint each seed used."""
    from byov.grid.identity import short

    rows = []
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.kind, job.method), []).append(job)
    for (kind, method), members in groups.items():
        finished = [j for j in members if j.id in done]
        missing = [j.name for j in members if j.id not in done]
        if missing:
            notes.append(f"not finished (left out): {', '.join(missing)}")
        if not finished:
            continue
        per_seed = [headline_of(_load(j.metrics_path)) for j in finished]
        title = method if kind == "train" else \
            f"{BASELINES[method].title if method in BASELINES else method} (baseline)"
        identities = [_identity(j) for j in finished]
        if any(i != identities[0] for i in identities):
            # job_state only calls a job done on the current data and code, so this is a table
            # built from a hand-edited folder: refuse to average it
            raise GridError(f"{title}: finished seeds of different data or code versions "
                            f"({'; '.join(sorted(set(map(short, identities))))}); rerun the "
                            f"grid to redo the stale ones")
        values = aggregate(per_seed, columns)
        for column, title_ in zip(columns, titles):
            if values[column]["missing"] and values[column]["n"]:
                seeds = [finished[i].seed for i in values[column]["missing"]]
                notes.append(f"{title}, {title_}: no value for seed(s) "
                             f"{', '.join(map(str, seeds))} (null in test_metrics.json); the "
                             f"cell is over n={values[column]['n']} of {len(finished)} seeds")
        used = [os.path.basename((read_marker(j) or {}).get("checkpoint") or "")
                for j in finished] if kind == "train" else []
        for name in sorted(set(used)):
            seeds = [str(j.seed) for j, u in zip(finished, used) if u == name]
            what = {"best.pth": "best.pth (chosen on val)",
                    "last.pth": "last.pth (the final epoch, not chosen on val)"}.get(
                        name, name or "an unrecorded checkpoint")
            notes.append(f"{title}: seed(s) {', '.join(seeds)} tested with {what}")
        rows.append({"name": title, "kind": "ours" if kind == "train" else "baseline",
                     "method": method, "seeds": [j.seed for j in finished], "n": len(finished),
                     "values": values, "identity": identities[0], "checkpoints": used,
                     "files": [j.metrics_path for j in finished]})
    return rows


def _cell(value: dict, column: str) -> str:
    mean, std = value["mean"], value["std"]
    of, n = value.get("of"), value.get("n")
    if mean is None:
        return "n/a" if not of else f"n/a (n=0/{of})"
    digits = 2 if column in PERCENT else 4
    text = _round(mean, digits)
    text = text if std is None else f"{text} ± {_round(std, digits)}"
    return text if not value.get("missing") else f"{text} (n={n}/{of})"


def _round(value: float, digits: int) -> str:
    """Half away from zero on the shortest decimal form, as a reader rounds (79.565 -> 79.57;
    binary formatting would print 79.56 because the float is 79.56499...)."""
    step = decimal.Decimal(1).scaleb(-digits)
    return str(decimal.Decimal(repr(value)).quantize(step, rounding=decimal.ROUND_HALF_UP))


def format_rows(rows: list[dict], columns=COLUMNS, titles=TITLES) -> str:
    lines = ["| Method | n | " + " | ".join(titles) + " |",
             "|---|---:|" + "---:|" * len(titles)]
    for row in rows:
        n = "" if row["n"] is None else str(row["n"])
        lines.append(f"| {row['name']} | {n} | "
                     + " | ".join(_cell(row["values"][c], c) for c in columns) + " |")
    return "\n".join(lines)


def format_table(table: dict) -> str:
    """Markdown: a heading, the table, then its notes."""
    head = f"## {table['dataset']}"
    if table["dataset_key"] != table["dataset"]:
        head += f" (dataset: {table['dataset_key']})"
    notes = "\n".join(f"- {n}" for n in table["notes"])
    return (f"{head}\n\n{format_rows(table['rows'], table['columns'], table['titles'])}"
            f"\n\n{notes}\n")


def average_section(tables: list[dict]) -> str:
    """Published 4-dataset averages (PRISM; BYOV Table 1's mean), and ours averaged over the
    same four datasets when the grid has all of them."""
    rows = []
    by_key = {t["dataset_key"]: t for t in tables}
    if all(d in by_key for d in published.AE2_DATASETS):
        names = [r["name"] for r in by_key[published.AE2_DATASETS[0]]["rows"]
                 if r["kind"] != "published"]
        for name in names:
            found = [next((r for r in by_key[d]["rows"] if r["name"] == name), None)
                     for d in published.AE2_DATASETS]
            if any(f is None for f in found):
                continue
            values = {}
            for c in COLUMNS:
                means = [f["values"][c]["mean"] for f in found]
                values[c] = {"mean": (statistics.fmean(means) if None not in means else None),
                             "std": None}
            rows.append({"name": f"{name} (ours, mean of dataset means)", "n": None,
                         "values": values})
    for name, values in published.byov_table1_mean().items():
        rows.append({"name": f"{name} (BYOV Table 1, mean)", "n": None,
                     "values": {c: {"mean": values[c], "std": None} for c in COLUMNS}})
    for name, values in published.prism_rows().items():
        rows.append({"name": f"{name} (PRISM)", "n": None,
                     "values": {c: {"mean": values[c], "std": None} for c in COLUMNS}})
    return ("## Published, 4-dataset average\n\n"
            "Averages over Break Eggs, Pour Milk, Pour Liquid and Tennis Forehand, not "
            "per-dataset numbers: compare them only with an average over the same four "
            f"datasets. Sources: {published.PRISM_AVERAGE_SOURCE}; "
            f"{published.BYOV_TABLE1_SOURCE}, averaged here. PRISM's CLIP tau (0.047) differs "
            "from the mean of BYOV's CLIP row (0.0196); one of them is mis-transcribed.\n\n"
            + format_rows(rows) + "\n")


def write_tables(grid: Grid, jobs: list[Job], done: set[int]) -> list[str]:
    """<output_root>/tables/<dataset>.md|json and <output_root>/tables.md; returns the paths."""
    folder = os.path.join(grid.output_root, "tables")
    tables, paths = [], []
    for dataset, _ in grid.datasets:
        members = [j for j in jobs if j.dataset == dataset]
        if not members:
            continue
        table = dataset_table(dataset, members, done, grid.checkpoint)
        tables.append(table)
        md, js = os.path.join(folder, f"{dataset}.md"), os.path.join(folder, f"{dataset}.json")
        atomic_write_text(md, format_table(table))
        atomic_write_json(js, table)
        paths += [md, js]
    combined = os.path.join(grid.output_root, "tables.md")
    text = f"# Benchmark tables\n\nGrid: {grid.path}\n\n" + "\n".join(
        format_table(t) for t in tables) + "\n" + average_section(tables)
    atomic_write_text(combined, text)
    return paths + [combined]
