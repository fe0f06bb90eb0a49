"""What BYOV learns on the synthetic demo: loss-term / target / pairing / mask ablation and long runs.

    OMP_NUM_THREADS=1 python bench/ablation.py               # train what is missing, then report
    python bench/ablation.py --report_only                   # tables and figure from finished runs
    python bench/ablation.py --variants all,ego_exo --seeds 0 --long   # a subset, no long runs

Every run is the demo recipe (configs/demo.yaml: 20 epochs, lr 1e-4, token cache) with one change
(`VARIANTS`), a seed, and downstream val evaluation plus a checkpoint every `--every` epochs, so
each run leaves a val curve in its log.jsonl and the checkpoint of every evaluated epoch.

* Table runs (`--variants` x `--seeds`, `--epochs`, default 20): the checkpoint of the evaluated
  epoch with the highest val `val_score` (what `best.pth` of a `--epochs` run is) is evaluated once
  on test; the table gives mean ± std over seeds (population std, ddof 0).
* Long runs (`--long variant=seeds ...`, `--long_epochs`): curves only (plus the test
  numbers of their own best and last checkpoints). With a constant lr and no EMA teacher a run's
  first `--epochs` epochs do not depend on its length (pairs, masks and batches are functions of
  seed, epoch and step; checked: the demo's own 20-epoch run and the 60-epoch `all` run of seed
  0 log identical val metrics at epochs 9 and 19), so a table cell whose variant has a long run
  with the same seed reads that run's first `--epochs` epochs unless its own `--epochs` run
  already exists; an EMA teacher's momentum schedule spans the whole run, so `ema` always gets
  its own `--epochs` runs.
* References on val (dashed lines in the figure, and the curves' epoch-0 point): the untrained
  model (`--baseline random_init`, per seed), `--baseline time` and `--baseline frozen`.

Runs go to <out>/e<epochs>/<variant>/seed<k> and <out>/long<E>/<variant>/seed<k>; a run whose log
already reaches its last epoch is not trained again, an interrupted one resumes (the demo config
sets resume: auto), and finished evaluations (their json files) are reused. Training runs one at a
time as `train.py` subprocesses; evaluations run in this process through `evaluate.main`. Writes
<out>/summary.json, <out>/table.md and the curves figure (--figure). Select on val only: test
numbers are computed once per chosen checkpoint and never used to choose anything.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

# variant name -> the train.py flags that differ from configs/demo.yaml
VARIANTS = {
    "all": [],                                   # the paper's loss: MSM + two MCM terms
    "msm": ["--loss_terms", "msm"],              # self-view term alone
    "mcm": ["--loss_terms", "mcm"],              # the two cross-view terms alone
    "ema": ["--target", "ema"],                  # bootstrap EMA teacher's latents as target
    "ego_exo": ["--pairing", "ego_exo"],         # every pair one ego + one exo clip
    "mcm_ego_exo": ["--loss_terms", "mcm", "--pairing", "ego_exo"],
    "mask_low": ["--mask_ratio", "0.25", "--mcm_ratio", "0.5"],    # more of each view visible
    "mask_high": ["--mask_ratio", "0.6", "--mcm_ratio", "0.9"],    # T=16: 6 and 1 frames visible
}
# variants whose schedule spans the whole run (prefix of a longer run != a shorter run)
LENGTH_DEPENDENT = {"ema"}
CROSS = ("classification_f1/ego2exo", "classification_f1/exo2ego",
         "retrieval_map10/ego2exo", "retrieval_map10/exo2ego")
TABLE_ROWS = (("F1 Regular", "classification_f1", "regular", 100),
              ("F1 Ego2Exo", "classification_f1", "ego2exo", 100),
              ("F1 Exo2Ego", "classification_f1", "exo2ego", 100),
              ("mAP@10 Regular", "retrieval_map10", "regular", 100),
              ("mAP@10 Ego2Exo", "retrieval_map10", "ego2exo", 100),
              ("mAP@10 Exo2Ego", "retrieval_map10", "exo2ego", 100),
              ("Progression R^2", "progression_r2", None, 1),
              ("Kendall's tau", "kendalls_tau", None, 1))


def run_dir(out: str, kind: str, epochs: int, variant: str, seed: int) -> str:
    return os.path.join(out, f"{kind}{epochs}", variant, f"seed{seed}")


def read_log(path: str) -> list[dict]:
    """The per-epoch summary lines of a run's log.jsonl (those with `epoch_seconds`)."""
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                if "epoch_seconds" in d:
                    rows.append(d)
    return rows


def finished(folder: str, epochs: int) -> bool:
    rows = read_log(os.path.join(folder, "log.jsonl"))
    return bool(rows) and rows[-1]["epoch"] >= epochs - 1 and os.path.isfile(
        os.path.join(folder, "checkpoints", "last.pth"))


def train(folder: str, variant: str, seed: int, epochs: int, args) -> float:
    """Train (or resume) one run as a subprocess; returns its wall seconds (0 when skipped)."""
    if finished(folder, epochs):
        return 0.0
    cmd = [sys.executable, "train.py", "--config", "configs/demo.yaml",
           "--dataset_root", args.dataset_root, "--output_dir", folder, "--seed", str(seed),
           "--epochs", str(epochs), "--ds_every_n_epoch", str(args.every),
           "--save_every", str(args.every), *VARIANTS[variant]]
    print(f"[ablation] {' '.join(cmd[1:])}", flush=True)
    os.makedirs(folder, exist_ok=True)
    t0 = time.time()
    with open(os.path.join(folder, "train.stdout"), "a", encoding="utf-8") as log:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - t0
    print(f"[ablation]   done in {seconds:.0f} s", flush=True)
    return seconds


def evaluate(argv: list[str], json_path: str) -> dict:
    """evaluate.py in this process (its printout goes to <json>.log); reuses a finished json."""
    if os.path.isfile(json_path):
        with open(json_path, encoding="utf-8") as f:
            return json.load(f)
    import evaluate as ev
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.main([*argv, "--json", json_path])
    with open(json_path + ".log", "w", encoding="utf-8") as f:
        f.write(buf.getvalue())
    with open(json_path, encoding="utf-8") as f:
        return json.load(f)


def eval_checkpoint(folder: str, stem: str, args) -> dict:
    ckpt = os.path.join(folder, "checkpoints", f"{stem}.pth")
    target = os.path.join(folder, "eval", f"test_{stem}")
    return evaluate(["--ckpt", ckpt, "--dataset_root", args.dataset_root, "--eval_mode", "test",
                     "--embed_dir", target], os.path.join(target, "metrics_test.json"))


def eval_baseline(name: str, split: str, seed: int, args) -> dict:
    target = os.path.join(args.out, "baselines", split, f"{name}_seed{seed}")
    return evaluate(["--config", "configs/demo.yaml", "--dataset_root", args.dataset_root,
                     "--output_dir", os.path.join(args.out, "baselines"), "--seed", str(seed),
                     "--baseline", name, "--eval_mode", split, "--embed_dir", target],
                    os.path.join(target, f"metrics_{split}.json"))


def view_stats(folder: str, split: str) -> dict:
    """How much of an embedding is the view: two shares of the `split` embeddings' variance.

    view_share: sum over the two views of n_v * |mean_v - mean|^2 over sum |x - mean|^2, i.e. the
    fraction of the total variance that a per-view constant offset explains (0 = the two views'
    means coincide, 1 = every frame sits on its view's mean). phase_share: after subtracting each
    view's mean, the fraction of the remaining variance between the phases' means.
    """
    from byov.eval.io import load_split
    d = load_split(folder, split)
    x = d.embeds.astype(np.float64)
    ego = d.is_ego
    total = ((x - x.mean(0)) ** 2).sum()
    between = sum(m.sum() * ((x[m].mean(0) - x.mean(0)) ** 2).sum() for m in (ego, ~ego))
    xc = x.copy()
    for m in (ego, ~ego):
        xc[m] -= x[m].mean(0)
    phases = sum(m.sum() * (xc[m].mean(0) ** 2).sum()
                 for m in (d.labels == p for p in np.unique(d.labels)))
    return {"view_share": float(between / total), "phase_share": float(phases / (xc ** 2).sum())}


def centred_metrics(folder: str, split: str) -> dict:
    """Classification and retrieval on embeddings with each split's per-view mean subtracted.

    A diagnostic, not the protocol: it uses the eval split's own view means (no labels), and
    tells whether the cross-view loss is a constant per-view offset (numbers recover) or more.
    """
    from byov.eval import evaluate_embeddings
    from byov.eval.io import SplitData, load_split
    out = []
    for name in ("train", split):
        d = load_split(folder, name)
        x = d.embeds.astype(np.float64).copy()
        for m in (d.is_ego, ~d.is_ego):
            x[m] -= x[m].mean(0)
        out.append(SplitData(x.astype(np.float32), d.labels, d.videos, name))
    return evaluate_embeddings(out[0], out[1], "classification,retrieval", progress=False)


def diagnostics(folder: str) -> dict:
    """view_stats and centred_metrics of a test embedding folder."""
    return {"view": view_stats(folder, "test"), "centred": centred_metrics(folder, "test")}


def add_view_stats(folder: str, rows: list[dict]) -> None:
    """Adds val/view_share, val/phase_share and val/retrieval_map10/cross (the mean of the two
    cross-view mAP@10) to the log rows of evaluated epochs."""
    for r in rows:
        if r.get("val/retrieval_map10/ego2exo") is not None:
            r["val/retrieval_map10/cross"] = (r["val/retrieval_map10/ego2exo"]
                                              + r["val/retrieval_map10/exo2ego"]) / 2
        d = os.path.join(folder, "eval", f"epoch_{r['epoch']:04d}")
        if r.get("val/val_score") is not None and os.path.isfile(os.path.join(d, "val_embeds.npy")):
            r.update({f"val/{k}": v for k, v in view_stats(d, "val").items()})


def best_epoch(rows: list[dict], upto: int) -> int:
    """The evaluated epoch (< upto) with the highest val_score; first one on ties, as the trainer."""
    scored = [(r["val/val_score"], -r["epoch"]) for r in rows
              if r["epoch"] < upto and r.get("val/val_score") is not None]
    if not scored:
        raise RuntimeError("no downstream val evaluation in the log")
    return -max(scored)[1]


def metric(m: dict, group: str, setting: str | None) -> float:
    v = m.get(group) if setting is None else (m.get(group) or {}).get(setting)
    return float("nan") if v is None else float(v)


def fmt(values: list[float], scale: float) -> str:
    a = np.asarray(values, dtype=float) * scale
    digits = 2 if scale == 100 else 3
    if len(a) == 1:
        return f"{a[0]:.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}"


def markdown_table(columns: dict[str, list[dict]]) -> str:
    names = list(columns)
    lines = ["| Metric | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for label, group, setting, scale in TABLE_ROWS:
        cells = [fmt([metric(m, group, setting) for m in columns[n]], scale) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def diagnostics_table(columns: dict[str, list[dict]]) -> str:
    names = list(columns)
    rows = (("view share of variance", lambda d: d["view"]["view_share"], 1),
            ("phase share within views", lambda d: d["view"]["phase_share"], 1),
            ("centred F1 Ego2Exo", lambda d: metric(d["centred"], "classification_f1", "ego2exo"), 100),
            ("centred F1 Exo2Ego", lambda d: metric(d["centred"], "classification_f1", "exo2ego"), 100),
            ("centred mAP@10 Ego2Exo", lambda d: metric(d["centred"], "retrieval_map10", "ego2exo"), 100),
            ("centred mAP@10 Exo2Ego", lambda d: metric(d["centred"], "retrieval_map10", "exo2ego"), 100))
    lines = ["| Diagnostic | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, get, scale in rows:
        lines.append(f"| {label} | " + " | ".join(fmt([get(d) for d in columns[n]], scale)
                                                   for n in names) + " |")
    return "\n".join(lines)


def curves(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["epoch"] + 1, r[key]) for r in rows if r.get(key) is not None]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)


def ref_value(m: dict, key: str) -> float:
    """A curve key ("val/classification_f1/ego2exo", "val/view_share") read from a reference's
    metrics dict (with its "view" stats)."""
    parts = key[4:].split("/")
    if parts[-1] == "cross":
        return (metric(m, parts[0], "ego2exo") + metric(m, parts[0], "exo2ego")) / 2
    if len(parts) == 1:
        return m["view"][parts[0]]
    return metric(m, *parts)


def plot(summary: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("val/classification_f1/ego2exo", "val F1 ego2exo", "time_f1e2x"),
              ("val/classification_f1/exo2ego", "val F1 exo2ego", "time_f1x2e"),
              ("val/classification_f1/regular", "val F1 regular", None),
              ("val/retrieval_map10/cross", "val mAP@10, mean of ego2exo and exo2ego", None),
              ("val/view_share", "val view share of variance", None),
              ("train/loss", "train loss (each run's own objective)", None))
    groups = [("long", f"{summary['long_epochs']}-epoch runs (mean ± std where > 1 seed)"),
              ("table", f"{summary['epochs']}-epoch runs, mean ± std over seeds "
                        f"{','.join(map(str, summary['seeds']))}")]
    groups = [g for g in groups if summary[g[0]]]
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(3.6 * len(panels),
                                                                3.3 * len(groups)),
                             squeeze=False)
    # tab10 without its gray (C7), which the baseline lines use
    colors = {v: f"C{i}" for i, v in zip((0, 1, 2, 3, 4, 5, 6, 8, 9), VARIANTS)}
    refs = summary["val_references"]
    for gi, (group, title) in enumerate(groups):
        for pi, (key, label, _) in enumerate(panels):
            ax = axes[gi][pi]
            for variant, runs in summary[group].items():
                series = [curves(r["curve"], key) for r in runs]
                if not series or not len(series[0][0]):
                    continue
                x = series[0][0]
                ys = np.array([s[1] for s in series if len(s[1]) == len(x)])
                if key.startswith("val/"):  # the untrained model (per seed) at epoch 0
                    init = [refs["random_init"][str(r["seed"])] for r in runs]
                    init = np.array([ref_value(m, key) for m in init])
                    x = np.concatenate([[0], x])
                    ys = np.concatenate([init[:len(ys), None], ys], axis=1)
                mean = ys.mean(axis=0)
                ax.plot(x, mean, marker="o", ms=3, color=colors[variant],
                        label=f"{variant} (n={len(ys)})")
                if len(ys) > 1:
                    ax.fill_between(x, mean - ys.std(axis=0), mean + ys.std(axis=0),
                                    color=colors[variant], alpha=0.15)
            if key.startswith("val/"):
                for name, style in (("time", ":"), ("frozen", "--")):
                    ax.axhline(ref_value(refs[name], key), color="gray", ls=style, lw=1,
                               label=f"{name} baseline")
                ax.set_ylim(0, 1)
            else:
                ax.set_yscale("log")
            ax.set_xlabel("epochs trained")
            ax.set_title(label, fontsize=10)
            ax.grid(alpha=0.3)
        axes[gi][0].set_ylabel(title, fontsize=9)
        axes[gi][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"[ablation] wrote {path}")


def main(argv=None) -> dict:
    # before torch is imported (evaluations run in this process; train.py inherits them): one
    # thread is faster on 2 shared cores, and nothing is fetched from the hub
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = lambda s: [v for v in s.split(",") if v]  # noqa: E731
    ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    p.add_argument("--variants", type=names,
                   default=names("all,msm,mcm,ema,ego_exo,mask_high"),
                   help=f"comma-separated table variants, of: {', '.join(VARIANTS)}")
    p.add_argument("--seeds", type=ints, default=ints("0,1,2"), help="table seeds, e.g. 0,1,2")
    p.add_argument("--epochs", type=int, default=20, help="table runs' length (demo: 20)")
    p.add_argument("--long", nargs="*", default=["all=0,1,2", "msm=0", "mcm=0,1,2", "ema=0"],
                   metavar="VARIANT=SEEDS", help="long runs, e.g. all=0,1,2 msm=0")
    p.add_argument("--long_epochs", type=int, default=60, help="long runs' length")
    p.add_argument("--every", type=int, default=5, help="ds_every_n_epoch and save_every")
    p.add_argument("--coarse_every", type=int, default=10,
                   help="also test the best-on-val epoch among those evaluated every this many "
                        "epochs (the demo config's ds_every_n_epoch before this study: 10)")
    p.add_argument("--dataset_root", default="runs/ablation/data",
                   help="where the synthetic data and its token cache live (made if absent)")
    p.add_argument("--out", default="runs/ablation", help="run folders, table.md, summary.json")
    p.add_argument("--figure", default="docs/figures/ablation_curves.png")
    p.add_argument("--report_only", action="store_true", help="train nothing")
    args = p.parse_args(argv)
    try:
        long_spec = {v: ints(seeds) for v, seeds in (item.split("=") for item in args.long)}
    except ValueError:
        p.error(f"--long takes VARIANT=SEEDS items (all=0,1,2); got {args.long}")
    for v in args.variants + list(long_spec):
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    if args.epochs % args.every or args.long_epochs % args.every:
        p.error("--epochs and --long_epochs must be multiples of --every (a checkpoint at the end)")
    if args.coarse_every % args.every or args.epochs % args.coarse_every:
        p.error("--coarse_every must be a multiple of --every and divide --epochs")
    os.chdir(ROOT)

    long_runs = {(v, s): run_dir(args.out, "long", args.long_epochs, v, s)
                 for v, seeds in long_spec.items() for s in seeds}
    table_runs = {}
    for v in args.variants:
        for s in args.seeds:
            own = run_dir(args.out, "e", args.epochs, v, s)
            if ((v, s) in long_runs and v not in LENGTH_DEPENDENT
                    and not finished(own, args.epochs)):
                table_runs[(v, s)] = long_runs[(v, s)]
            else:
                table_runs[(v, s)] = run_dir(args.out, "e", args.epochs, v, s)
    wall = {}
    if not args.report_only:
        # table runs first (the table needs them), then the remaining long runs
        todo = [(f, v, s, args.epochs) for (v, s), f in table_runs.items()
                if f not in long_runs.values()]
        todo += [(f, v, s, args.long_epochs) for (v, s), f in long_runs.items()]
        for folder, v, s, epochs in todo:
            wall[folder] = train(folder, v, s, epochs, args)

    refs = {"random_init": {str(s): eval_baseline("random_init", "val", s, args)
                            for s in sorted(set(args.seeds).union(*long_spec.values()))},
            "time": eval_baseline("time", "val", 0, args),
            "frozen": eval_baseline("frozen", "val", 0, args)}
    test_refs = {name: eval_baseline(name, "test", 0, args)
                 for name in ("time", "frozen", "random_init")}

    def base(split: str, name: str, seed: int) -> str:
        return os.path.join(args.out, "baselines", split, f"{name}_seed{seed}")

    for name in ("time", "frozen"):
        refs[name] = {**refs[name], "view": view_stats(base("val", name, 0), "val")}
    for seed, m in refs["random_init"].items():
        refs["random_init"][seed] = {**m, "view": view_stats(base("val", "random_init", seed),
                                                             "val")}
    test_view = {n: {"view": view_stats(base("test", n, 0), "test"),
                     "centred": centred_metrics(base("test", n, 0), "test")} for n in test_refs}
    summary = {"test_reference_view": test_view, "epochs": args.epochs,
               "long_epochs": args.long_epochs, "every": args.every, "seeds": args.seeds, "long_seeds": long_spec, "table": {}, "long": {},
               "val_references": refs, "test_references": test_refs, "wall_seconds": wall}
    for (v, s), folder in table_runs.items():
        rows = read_log(os.path.join(folder, "log.jsonl"))
        if not rows or rows[-1]["epoch"] < args.epochs - 1:
            print(f"[ablation] {folder}: not finished, left out")
            continue
        add_view_stats(folder, rows)
        e = best_epoch(rows, args.epochs)
        test = eval_checkpoint(folder, f"epoch_{e:04d}", args)
        tdir = os.path.join(folder, "eval", f"test_epoch_{e:04d}")
        coarse = best_epoch([r for r in rows if (r["epoch"] + 1) % args.coarse_every == 0],
                            args.epochs)
        summary["table"].setdefault(v, []).append(
            {"seed": s, "folder": folder, "best_epoch": e, "test": test,
             "coarse_epoch": coarse,
             "test_coarse": eval_checkpoint(folder, f"epoch_{coarse:04d}", args),
             "test_last": eval_checkpoint(folder, f"epoch_{args.epochs - 1:04d}", args),
             "test_last_diag": diagnostics(
                 os.path.join(folder, "eval", f"test_epoch_{args.epochs - 1:04d}")),
             "test_view": view_stats(tdir, "test"), "test_centred": centred_metrics(tdir, "test"),
             "curve": [r for r in rows if r["epoch"] < args.epochs]})
    for (v, s), folder in long_runs.items():
        rows = read_log(os.path.join(folder, "log.jsonl"))
        if not rows or rows[-1]["epoch"] < args.long_epochs - 1:
            print(f"[ablation] {folder}: not finished, left out")
            continue
        add_view_stats(folder, rows)
        e = best_epoch(rows, args.long_epochs)
        summary["long"].setdefault(v, []).append(
            {"seed": s, "folder": folder, "best_epoch": e, "curve": rows,
             "test_best": eval_checkpoint(folder, f"epoch_{e:04d}", args),
             "test_last": eval_checkpoint(folder, f"epoch_{args.long_epochs - 1:04d}", args),
             "test_last_diag": diagnostics(
                 os.path.join(folder, "eval", f"test_epoch_{args.long_epochs - 1:04d}"))})

    columns = {f"baseline: {n}": [m] for n, m in test_refs.items()}
    # the untrained model depends on the seed: its mean ± std over the table's seeds
    columns["baseline: random_init"] = [eval_baseline("random_init", "test", s, args)
                                        for s in args.seeds]
    columns[f"baseline: random_init (n={len(args.seeds)})"] = columns.pop("baseline: random_init")
    columns.update({f"{v} (n={len(r)})": [x["test"] for x in r]
                    for v, r in summary["table"].items()})
    text = [f"Test split, checkpoint = best val_score among epochs evaluated every {args.every} "
            f"within {args.epochs} epochs; mean ± std over seeds (ddof 0).", "",
            markdown_table(columns), ""]
    for key, what in (("test_coarse", f"best val_score among epochs evaluated every "
                                      f"{args.coarse_every}"),
                      ("test_last", f"the last epoch ({args.epochs - 1}), no selection")):
        text += [f"Test split, checkpoint = {what}; mean ± std over seeds.", "",
                 markdown_table({f"{v} (n={len(r)})": [x[key] for x in r]
                                 for v, r in summary["table"].items()}), ""]
    diag = {f"baseline: {n}": [t] for n, t in test_view.items()}
    diag.update({f"{v} (n={len(r)})": [{"view": x["test_view"], "centred": x["test_centred"]}
                                       for x in r] for v, r in summary["table"].items()})
    text += ["Diagnostics on the same test embeddings: view share of variance, phase share "
             "within views, and cross-view numbers after subtracting each split's per-view mean "
             "(not the protocol).", "", diagnostics_table(diag), ""]
    last = {f"{v} (n={len(r)})": [x["test_last_diag"] for x in r]
            for v, r in summary["table"].items()}
    last.update({f"{v} {args.long_epochs} ep (n={len(r)})": [x["test_last_diag"] for x in r]
                 for v, r in summary["long"].items()})
    text += [f"The same diagnostics at the last epoch (no selection): epoch {args.epochs - 1} of "
             f"the table runs, epoch {args.long_epochs - 1} of the long runs.", "",
             diagnostics_table(last), ""]
    text.append("best epochs (0-based) per seed: " + "; ".join(
        f"{v}: {[x['best_epoch'] for x in r]}" for v, r in summary["table"].items()))
    text.append(f"best epochs among every {args.coarse_every}: " + "; ".join(
        f"{v}: {[x['coarse_epoch'] for x in r]}" for v, r in summary["table"].items()))
    if summary["long"]:
        text += ["", f"Long runs ({args.long_epochs} epochs): test of the best-on-val and of the "
                 "last checkpoint", ""]
        cols = {}
        for v, r in summary["long"].items():
            for x in r:
                cols[f"{v} s{x['seed']} best (ep {x['best_epoch']})"] = [x["test_best"]]
                cols[f"{v} s{x['seed']} last"] = [x["test_last"]]
        text.append(markdown_table(cols))
    table = "\n".join(text)
    print(table)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    if summary["table"] or summary["long"]:
        plot(summary, args.figure)
    return summary


if __name__ == "__main__":
    main()
