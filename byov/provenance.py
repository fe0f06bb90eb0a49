"""Where a run came from: the command that trained it, the byov version and the git commit.

`record_command` appends one JSON line per start of `train.py` (a fresh run, then each resume) to
`<output_dir>/command.jsonl`; `read_commands` reads them back (the model card of
`python -m byov.export` quotes them). The git commit is that of the checkout byov runs from
(`git rev-parse HEAD` there, plus whether the tree had uncommitted changes), or None outside git.
"""
from __future__ import annotations

import datetime
import json
import os
import shlex
import subprocess
from typing import Sequence

import byov

COMMAND_FILE = "command.jsonl"


def project_root() -> str:
    """The folder holding byov/ (the checkout, for an editable install)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(byov.__file__)))


def git_commit(root: str | None = None) -> dict | None:
    """{"commit": 40-hex sha, "dirty": bool} of the git checkout at `root` (default: byov's own),
    or None when it is not a git checkout or git is not installed."""
    root = root or project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}


def provenance() -> dict:
    """{"byov_version", "git"} of the running code."""
    return {"byov_version": byov.__version__, "git": git_commit()}


def record_command(output_dir: str, argv: Sequence[str], resumed_from: str | None = None,
                   world_size: int = 1) -> str:
    """Append this start of training to <output_dir>/command.jsonl; returns the file's path.

    Args:
        argv: the entry point and its arguments as typed, e.g. ["train.py", "--config", ...].
        resumed_from: the checkpoint a resume continued, None for a fresh run.
        world_size: training processes (torchrun's --nproc_per_node x nodes).
    """
    record = {"command": "python " + shlex.join(argv), "argv": list(argv), "cwd": os.getcwd(),
              "resumed_from": resumed_from, "world_size": int(world_size),
              "date": datetime.datetime.now().isoformat(timespec="seconds"), **provenance()}
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, COMMAND_FILE)
    with open(path, "a", encoding="utf-8") as f:  # one line per start; appending is atomic enough
        f.write(json.dumps(record) + "\n")
    return path


def read_commands(run_dir: str) -> list[dict]:
    """The records of <run_dir>/command.jsonl in order ([] when absent; torn lines skipped)."""
    path = os.path.join(run_dir, COMMAND_FILE)
    if not os.path.isfile(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
    return out
