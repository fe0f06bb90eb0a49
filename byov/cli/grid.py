"""Run a benchmark grid (methods x datasets x seeds + trivial baselines) and write the tables.

    python -m byov.grid GRID.yaml                  # run what is missing, then the tables
    python -m byov.grid GRID.yaml --dry-run        # only say what each job would do
    python -m byov.grid GRID.yaml --launcher torchrun --nproc 4
    python -m byov.grid GRID.yaml --launcher slurm [--submit]   # write (and submit) an array
    python -m byov.grid GRID.yaml --tables-only    # collect the tables of finished jobs
    python -m byov.grid --run-job JOBS.jsonl --index I --phase PHASE
        # one job of a written array (what each Slurm task runs); PHASE: check (exit 0 when
        # done), prepare, train-args (print them), finish (evaluate, mark done) or all

The grid format is described in byov/grid/jobs.py and in docs/grid.md.
Tables: <output_root>/tables/<dataset>.md|json and <output_root>/tables.md.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

from byov.cli import import_project_config

PHASES = ("check", "prepare", "train-args", "finish", "all")




def make_resolver(cfgmod):
    """resolve(train.py argv) -> the resolved flat config dict, as train.py would see it."""
    parser = cfgmod.build_parser("resolve a benchmark job's config")
    if "method" not in cfgmod.KEYS:  # train.py's --method may be its own flag, not a config key
        parser.add_argument("--method")

    def resolve(argv):
        cfg, _ = cfgmod.load_config(list(argv), parser)
        return cfgmod.to_dict(cfg)
    return resolve


def fit_to_entry_points(jobs, cfgmod) -> None:
    """Give train.py, evaluate.py and `python -m byov.features extract` only the config flags
    each uses (they refuse the others): a grid's `overrides: {epochs: 4}` reach train.py alone.
    The jobs' signatures stay those of the full argument lists (finished grids stay done)."""
    for job in jobs:
        job.train_argv = cfgmod.argv_for("train", job.train_argv)
        job.eval_argv = cfgmod.argv_for("evaluate", job.eval_argv)
        if job.extract_argv is not None:
            job.extract_argv = cfgmod.argv_for("extract", job.extract_argv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m byov.grid", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split(
        "\n", 2)[2])
    p.add_argument("grid", nargs="?", help="the grid yaml (e.g. configs/grid/demo.yaml)")
    p.add_argument("--launcher", choices=("local", "torchrun", "slurm"), default=None,
                   help="override the grid's launcher")
    p.add_argument("--nproc", type=int, default=None,
                   help="processes per training job under torchrun (GPUs per node for slurm)")
    p.add_argument("--tables-only", action="store_true",
                   help="run nothing; write the tables of the finished jobs")
    p.add_argument("--dry-run", action="store_true", help="print each job's state and stop")
    p.add_argument("--continue-on-error", action="store_true",
                   help="run the other jobs after one fails (exit status 1 at the end)")
    p.add_argument("--submit", action="store_true",
                   help="with --launcher slurm: submit the written array with sbatch")
    p.add_argument("--run-job", metavar="JOBS_FILE", default=None,
                   help="run one job of a jobs file written by --launcher slurm")
    p.add_argument("--index", type=int, default=None, help="with --run-job: the job's line")
    p.add_argument("--phase", choices=PHASES, default="all", help="with --run-job")
    return p


def run_one(args) -> int:
    from byov.grid import runner

    if args.index is None:
        raise SystemExit("--run-job needs --index I (the array task id)")
    job = runner.read_job(args.run_job, args.index)
    if args.phase == "check":
        state, what = runner.job_state(job)
        print(f"{job.name}: {what}")
        return 0 if state == "done" else 1
    if args.phase == "prepare":
        state, what = runner.job_state(job)
        if state == "redo":
            runner.set_aside(job, what)
        runner.check_run_config(job)
        runner.prepare(job)
    elif args.phase == "train-args":
        if runner.needs_training(job):
            print(shlex.join(job.train_argv))
    elif args.phase == "finish":
        if runner.job_state(job)[0] != "done":
            runner.finish(job)
    else:
        runner.run_job(job, "torchrun" if (args.nproc or 1) > 1 else "local", args.nproc or 1)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run_job:
        return run_one(args)
    if not args.grid:
        parser.error("give a grid file (e.g. configs/grid/demo.yaml) or --run-job")
    from byov.grid import runner, tables
    from byov.grid.jobs import GridError, load_grid, make_jobs

    grid = load_grid(args.grid)
    grid.launcher = args.launcher or grid.launcher
    grid.nproc = args.nproc or grid.nproc
    cfgmod = import_project_config()
    for where, values in [("overrides", grid.overrides)] + [
            (f"dataset_overrides.{k}", v) for k, v in grid.dataset_overrides.items()] + [
            (f"method_overrides.{k}", v) for k, v in grid.method_overrides.items()]:
        bad = sorted(set(values) - set(cfgmod.KEYS))
        if bad:
            raise GridError(f"{grid.path}: {where}: unknown config key(s) {', '.join(bad)}; "
                            f"valid keys are the fields of Config in utils/config.py")
    caps = runner.probe_capabilities()
    try:
        jobs = make_jobs(grid, make_resolver(cfgmod), caps)
    except cfgmod.ConfigError as e:
        raise GridError(f"{grid.path}: {e}") from e
    fit_to_entry_points(jobs, cfgmod)
    from byov.spec import eval_spec
    from byov.spec.protocol import ProtocolError, check_training_protocol
    for job in jobs:  # best.pth must be choosable by every training job, before any runs
        if job.kind == "train":
            try:
                check_training_protocol(eval_spec(job.config))
            except ProtocolError as e:
                raise GridError(f"{grid.path}: job {job.name}: {e}") from e

    failures = []
    if args.dry_run:
        for job in jobs:
            print(f"{job.name}: {runner.job_state(job)[1]}  ({job.run_dir})")
        return 0
    if not args.tables_only and grid.launcher == "slurm":
        pending = [j for j in jobs if runner.job_state(j)[0] != "done"]
        for job in pending:
            runner.check_run_config(job)
        written = runner.write_sbatch(grid, pending)
        if written is None:
            print("every job is done; nothing to submit")
        else:
            script, jobs_file = written
            print(f"wrote {script} ({len(pending)} array tasks) and {jobs_file}")
            if args.submit:
                proc = subprocess.run(["sbatch", script], capture_output=True, text=True)
                if proc.returncode != 0:
                    raise runner.JobFailed(f"sbatch {script} failed (exit {proc.returncode}): "
                                           f"{proc.stderr.strip()}")
                print(proc.stdout.strip())
            else:
                print(f"submit with:\n  sbatch {shlex.quote(script)}")
            print(f"when the array has finished:\n  {shlex.quote(sys.executable)} -m "
                  f"byov.grid {shlex.quote(args.grid)} --tables-only")
            return 0
    elif not args.tables_only:
        failures = runner.run_grid(jobs, grid.launcher, grid.nproc, args.continue_on_error)
    done = {j.id for j in jobs if runner.job_state(j)[0] == "done"}
    paths = tables.write_tables(grid, jobs, done)
    with open(paths[-1], encoding="utf-8") as f:
        print("\n" + f.read())
    print(f"{len(done)} of {len(jobs)} jobs done; tables written to "
          f"{os.path.join(grid.output_root, 'tables')}/ and {paths[-1]}")
    for job, message in failures:
        print(f"FAILED {job.name}: {message}", file=sys.stderr)
    return 1 if failures else 0


def run() -> None:
    """The `python -m` entry: main() with its errors printed as one line and a non-zero exit."""
    from byov.errors import ByovError
    try:
        sys.exit(main())
    except (ByovError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    run()
