"""Run the grid's jobs: one after another here (local / torchrun), or as a Slurm job array.

Each step is a subprocess of the same Python (`sys.executable`) in the project root, its output
appended to the job's log file. A job is done when its folder holds `test_metrics.json` and
`benchmark_done.json` with the job's whole identity (`byov.grid.identity`): its signature
(its config file's content and exact arguments), the data fingerprint of its dataset's
train/val/test splits and the code version; done jobs are skipped. A job whose data or code
changed since its result (or since its checkpoint was trained) is redone: its folder is moved
aside (`<run>.superseded-<time>`, kept) and it runs from scratch. Otherwise training runs with
`--resume auto`: a folder without `checkpoints/last.pth` starts fresh, one whose last.pth is
short of the final epoch continues from it, and one trained to the end is only evaluated; a
folder trained for more epochs than the job asks is refused (it is another run).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
from typing import Callable, Sequence

import yaml

from byov.atomic import atomic_write_json, atomic_write_text
from byov.grid import identity as ident
from byov.grid.jobs import Capabilities, Grid, GridError, Job
from byov.errors import ByovError

MARKER = "benchmark_done.json"
# run-folder config keys that may differ between an existing run and the grid's job: where things
# are, how many epochs (raising it continues the run), and evaluation-only settings
UNCOMPARED_KEYS = frozenset((
    "epochs", "resume", "output_dir", "dataset_root", "frame_cache_dir", "feature_cache_dir",
    "vision_encoder_path", "num_workers", "device", "log_every", "save_every", "ckpt", "weights",
    "eval_task", "eval_mode", "few_shot", "progression_time_feature", "encode_chunk_size"))
# torchrun's variables: a benchmark started inside a torchrun job must not hand them down
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
              "MASTER_PORT", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")


class JobFailed(ByovError, RuntimeError):
    """A job's step exited with an error; the message names the job, the step and its log."""


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def probe_capabilities(python: str = sys.executable, cwd: str | None = None) -> Capabilities:
    """Ask `train.py --help` and `evaluate.py --help` which of --method / --baseline they take
    (both CLIs gain flags over time; the runner uses what is there)."""
    cwd = cwd or repo_root()

    def help_text(script: str) -> str:
        proc = subprocess.run([python, script, "--help"], cwd=cwd, capture_output=True,
                              text=True, env=child_env(), timeout=300)
        if proc.returncode != 0:
            raise JobFailed(f"{python} {script} --help failed (exit {proc.returncode}) in {cwd}: "
                            f"{proc.stderr.strip()[-2000:]}")
        return proc.stdout

    train_help, eval_help = help_text("train.py"), help_text("evaluate.py")
    method = re.search(r"--method\b", train_help) is not None
    match = re.search(r"--baseline\b(?:\s+\{([^}]*)\})?", eval_help)
    choices = tuple(c.strip() for c in match.group(1).split(",")) if match and match.group(1) \
        else None
    return Capabilities(method_flag=method, baseline_flag=match is not None,
                        baseline_choices=choices)


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env["PYTHONUNBUFFERED"] = "1"  # the log files follow the run as it goes
    return env


def checkpoint_epoch(path: str) -> int | None:
    """The 0-based epoch stored in a checkpoint, or None if it cannot be read."""
    entry = _checkpoint_entries(path)
    return None if entry is None else entry[0]


def _checkpoint_entries(path: str) -> tuple[int, str | None] | None:
    """(0-based epoch, data fingerprint of its train/val data or None) of a checkpoint, or None
    if it cannot be read."""
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return int(state["epoch"]), state.get("data_fingerprint")
    except Exception:  # a truncated or foreign file: training --resume auto will say what
        return None


def read_marker(job: Job) -> dict | None:
    path = os.path.join(job.run_dir, MARKER)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _data(job: Job):
    """The job's `byov.spec.DataSpec`, its root made absolute: jobs run in the project root, so
    a relative dataset_root is relative to it."""
    import dataclasses

    from byov.spec import data_spec
    data = data_spec(job.config)
    root = os.path.expanduser(data.root)
    return dataclasses.replace(data, root=root if os.path.isabs(root)
                               else os.path.join(repo_root(), root))


def current_identity(job: Job) -> dict:
    """{"signature", "data", "code"} the job's result must have been made with (identity.py)."""
    return {"signature": job.signature,
            "data": ident.dataset_identity(_data(job).root, _data(job).dataset),
            "code": ident.code_version(repo_root())}


def _changed(recorded: dict, job: Job) -> list[str]:
    """What of data / code differs between a done marker and now ([] = nothing)."""
    now = current_identity(job)
    out = []
    if recorded.get("data") != now["data"]:
        out.append(f"data {str(recorded.get('data') or 'not recorded').split(':')[-1][:12]} -> "
                   f"{now['data'].split(':')[-1][:12]}")
    if (recorded.get("code") or {}).get("hash") != now["code"]["hash"]:
        was = recorded.get("code") or {}
        out.append(f"code {was.get('label', 'not recorded')} ({was.get('hash', '?')}) -> "
                   f"{now['code']['label']} ({now['code']['hash']})")
    return out


def job_state(job: Job) -> tuple[str, str]:
    """(state, description): state is done | redo | fresh | resume | evaluate.

    redo: the folder holds a result (or a checkpoint) of other data or other code; `run_job`
    moves it aside and runs the job from scratch."""
    marker = read_marker(job)
    if marker is not None:
        changed = _changed(marker, job)
        if changed:
            return "redo", f"redo from scratch ({'; '.join(changed)} since its result)"
        if marker.get("signature") == job.signature and os.path.isfile(job.metrics_path):
            used = os.path.basename(marker.get("checkpoint") or "") or "baseline"
            return "done", f"done ({used})"
    if job.kind == "baseline":
        return "evaluate", "evaluate the baseline"
    last = os.path.join(job.run_dir, "checkpoints", "last.pth")
    if not os.path.isfile(last):
        return "fresh", f"train {job.epochs} epochs from scratch"
    entry = _checkpoint_entries(last)
    epoch = None if entry is None else entry[0]
    if entry is not None and entry[1] is not None:
        from byov.data.fingerprint import data_fingerprint
        data = _data(job)
        trained_on = data_fingerprint(data.root, data.dataset, ("train", "val"))
        if entry[1] != trained_on:
            return "redo", ("redo from scratch (last.pth was trained on other train/val data "
                            "than the dataset holds now)")
    if epoch is not None and epoch + 1 >= job.epochs:
        return "evaluate", f"trained ({epoch + 1} epochs), evaluate"
    done = "?" if epoch is None else epoch + 1
    return "resume", f"resume after epoch {done} of {job.epochs} (last.pth)"


def set_aside(job: Job, why: str, log: Callable[[str], None] = print) -> str:
    """Move the job's folder to `<run_dir>.superseded-<time>` (kept, never deleted)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = f"{job.run_dir}.superseded-{stamp}"
    os.replace(job.run_dir, aside)
    log(f"  {job.name}: {why}; its folder moved to {aside}")
    return aside


def check_run_config(job: Job) -> None:
    """Refuse to continue a run folder trained with other settings than the job's (the trainer
    only checks the architecture; a changed lr would otherwise mix into the run silently)."""
    path = os.path.join(job.run_dir, "config.yaml")
    if job.kind != "train" or not os.path.isfile(path) or job_state(job)[0] == "redo":
        return  # a folder of other data or code is set aside, not continued
    last = os.path.join(job.run_dir, "checkpoints", "last.pth")
    epoch = checkpoint_epoch(last) if os.path.isfile(last) else None
    if epoch is not None and epoch + 1 > job.epochs:
        raise GridError(f"{job.run_dir} holds a run of {job.name} trained for {epoch + 1} "
                        f"epochs, but the grid now asks for {job.epochs}: evaluating it would "
                        f"sign a {epoch + 1}-epoch run as this job. Set epochs back to "
                        f"{epoch + 1}, use another output_root, or delete that folder to "
                        f"retrain it")
    with open(path, encoding="utf-8") as f:
        saved = yaml.safe_load(f) or {}
    # keys of both (the trainer also records facts that are not settings, and an older run may
    # lack a newer setting)
    differ = sorted(k for k in set(saved) & set(job.config) if k not in UNCOMPARED_KEYS
                    and saved[k] != job.config[k])
    if differ:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {job.config.get(k)!r} now"
                           for k in differ[:6])
        raise GridError(f"{job.run_dir} holds a run of {job.name} trained with other settings "
                        f"({detail}); use another output_root, or delete that folder to "
                        f"retrain it")


def train_command(job: Job, launcher: str, nproc: int, python: str = sys.executable
                  ) -> list[str]:
    """The command that trains `job` here: `python train.py ...`, or under torchrun (one node)."""
    if launcher == "torchrun":
        return [python, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={nproc}", "train.py", *job.train_argv]
    return [python, "train.py", *job.train_argv]


def run_logged(cmd: Sequence[str], log: str, step: str, cwd: str) -> int:
    """Run `cmd` with its stdout and stderr appended to `log`; returns the exit status."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        f.write(f"\n===== {stamp} {step}: {shlex.join(cmd)}\n")
        f.flush()
        return subprocess.run(list(cmd), cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                              env=child_env()).returncode


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _step(job: Job, cmd: Sequence[str], step: str, cwd: str) -> None:
    rc = run_logged(cmd, job.log, step, cwd)
    if rc != 0:
        raise JobFailed(f"job {job.name} failed at {step} (exit {rc}); its log is {job.log}. "
                        f"Last lines:\n{_tail(job.log)}")


@contextlib.contextmanager
def _file_lock(path: str):
    """An exclusive lock (fcntl.flock) on `path`, so that Slurm tasks of the same dataset do not
    extract its feature cache at the same time; a no-op where flock does not exist."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare(job: Job, python: str = sys.executable, cwd: str | None = None) -> None:
    """Before training: the frozen-backbone feature cache when the config uses one (finished
    videos are skipped, so this is quick once done)."""
    if job.kind != "train" or not job.extract_argv or job_state(job)[0] not in ("fresh",
                                                                                "resume", "redo"):
        return
    with _file_lock(os.path.join(os.path.dirname(job.log), ".extract.lock")):
        _step(job, [python, "-m", "byov.features", "extract", *job.extract_argv],
              "feature extraction", cwd or repo_root())


def needs_training(job: Job) -> bool:
    return job.kind == "train" and job_state(job)[0] in ("fresh", "resume", "redo")


def chosen_checkpoint(job: Job) -> str:
    """best.pth (when the grid asks for it and one exists), else last.pth; training must have
    reached the final epoch."""
    folder = os.path.join(job.run_dir, "checkpoints")
    last = os.path.join(folder, "last.pth")
    if not os.path.isfile(last):
        raise JobFailed(f"job {job.name}: no {last} after training; see {job.log}")
    epoch = checkpoint_epoch(last)
    if epoch is None or epoch + 1 < job.epochs:
        raise JobFailed(f"job {job.name}: {last} holds epoch {epoch} (0-based), short of the "
                        f"{job.epochs} epochs asked; training stopped early, see {job.log}")
    best = os.path.join(folder, "best.pth")
    if job.checkpoint == "best" and os.path.isfile(best):
        return best
    if job.checkpoint == "best":
        print(f"  {job.name}: no best.pth (no val evaluation chose one); testing last.pth, the "
              f"final epoch (not chosen on val)")
    return last


def finish(job: Job, python: str = sys.executable, cwd: str | None = None) -> None:
    """Evaluate on the test split into test_metrics.json, then write the done marker."""
    cwd = cwd or repo_root()
    ckpt = chosen_checkpoint(job) if job.kind == "train" else None
    with contextlib.suppress(FileNotFoundError):
        os.remove(job.metrics_path)  # a stale file must not pass for this evaluation's
    argv = job.eval_argv + (["--ckpt", ckpt] if ckpt else [])
    _step(job, [python, "evaluate.py", *argv], "evaluation", cwd)
    if not os.path.isfile(job.metrics_path):
        raise JobFailed(f"job {job.name}: evaluate.py exited normally but wrote no "
                        f"{job.metrics_path}; see {job.log}")
    ident.forget_data()  # the identity recorded is the data's as it is now, after the run
    atomic_write_json(os.path.join(job.run_dir, MARKER), {
        "job": job.name, **current_identity(job), "checkpoint": ckpt,
        "finished": datetime.datetime.now().isoformat(timespec="seconds")})


def run_job(job: Job, launcher: str = "local", nproc: int = 1, python: str = sys.executable,
            cwd: str | None = None) -> str:
    """Run what `job` still needs (extract, train, evaluate); returns the state it started in."""
    state, what = job_state(job)
    if state == "done":
        return state
    if state == "redo":
        set_aside(job, what)
    check_run_config(job)
    if job.kind == "train" and state in ("fresh", "resume", "redo"):
        prepare(job, python, cwd)
        _step(job, train_command(job, launcher, nproc, python), "training", cwd or repo_root())
    finish(job, python, cwd)
    return state


def run_grid(jobs: list[Job], launcher: str, nproc: int, continue_on_error: bool = False,
             log: Callable[[str], None] = print) -> list[tuple[Job, str]]:
    """Run the jobs one after another; returns the failures [(job, message)]. Without
    continue_on_error the first failure is raised (JobFailed)."""
    for job in jobs:  # refuse a mismatched run folder before anything runs
        check_run_config(job)
    failures = []
    for i, job in enumerate(jobs, 1):
        state, what = job_state(job)
        if state == "done":
            log(f"[{i}/{len(jobs)}] {job.name}: {what}, skipped")
            continue
        log(f"[{i}/{len(jobs)}] {job.name}: {what} (log: {job.log})")
        try:
            run_job(job, launcher, nproc)
        except JobFailed as e:
            if not continue_on_error:
                raise
            failures.append((job, str(e)))
            log(f"  FAILED: {str(e).splitlines()[0]}")
    return failures


# -- Slurm --------------------------------------------------------------------------------------

TEMPLATE = os.path.join("scripts", "slurm", "byov_array.sbatch")


def write_jobs_file(path: str, jobs: list[Job]) -> None:
    """One JSON object per line; line i (0-based) is array task i."""
    atomic_write_text(path, "".join(json.dumps(j.to_dict(), sort_keys=True) + "\n"
                                    for j in jobs))


def read_job(path: str, index: int) -> Job:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not 0 <= index < len(lines):
        raise GridError(f"{path} holds {len(lines)} jobs; there is no job {index} (is the array "
                        f"larger than the jobs file? rewrite both with --launcher slurm)")
    return Job.from_dict(json.loads(lines[index]))


def write_sbatch(grid: Grid, jobs: list[Job], python: str = sys.executable,
                 template_path: str | None = None) -> tuple[str, str] | None:
    """Write <output_root>/slurm/{jobs.jsonl, byov_array.sbatch} for `jobs` (one array task
    each). Returns (script, jobs file), or None when there is nothing to run."""
    if not jobs:
        return None
    template_path = template_path or os.path.join(repo_root(), TEMPLATE)
    with open(template_path, encoding="utf-8") as f:
        text = f.read()
    s = grid.slurm
    folder = os.path.join(grid.output_root, "slurm")
    jobs_file = os.path.join(folder, "jobs.jsonl")
    array = f"0-{len(jobs) - 1}" + (f"%{s['max_parallel']}" if s.get("max_parallel") else "")
    directives = [f"#SBATCH --{k.replace('_', '-')}={s[k]}"
                  for k in ("partition", "account", "time", "cpus_per_task", "mem") if s.get(k)]
    directives += [f"#SBATCH {d}" for d in (s.get("directives") or [])]
    values = {
        "__ARRAY__": array, "__NODES__": str(s.get("nodes", 1)),
        "__GPUS_PER_NODE__": str(s.get("gpus_per_node", grid.nproc)),
        "__DIRECTIVES__": "\n".join(directives) or "# (no partition/time/account set in the grid)",
        "__LOG_DIR__": os.path.join(grid.output_root, "logs", "slurm"),
        "__REPO__": shlex.quote(repo_root()), "__PYTHON__": shlex.quote(python),
        "__JOBS_FILE__": shlex.quote(jobs_file), "__RDZV_PORT__": str(s.get("rdzv_port", 29500)),
        "__SETUP__": s.get("setup") or "# (no setup commands in the grid: slurm.setup)",
        "__GRID__": shlex.quote(grid.path),
    }
    for key, value in values.items():
        text = text.replace(key, value)
    left = sorted(set(re.findall(r"__[A-Z_]+__", text)))
    if left:
        raise GridError(f"{template_path}: unknown placeholder(s) {', '.join(left)}")
    os.makedirs(values["__LOG_DIR__"], exist_ok=True)
    write_jobs_file(jobs_file, jobs)
    script = os.path.join(folder, "byov_array.sbatch")
    atomic_write_text(script, text)
    return script, jobs_file
