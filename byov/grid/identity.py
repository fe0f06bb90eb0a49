"""What a benchmark job's result came from: its settings, its data and the code that ran it.

A job's identity has three parts, recorded in its done marker and shown in the tables:

- `signature`: the job's config file content and exact arguments (`grid._signature`);
- `data`: `data_fingerprint` of the dataset's train, val and test splits (label.pickle, split
  lists, every video's full-content hash), so corrected test labels or a repaired video make
  every job of that dataset run again;
- `code`: a hash of the project's Python sources (`byov/`, `utils/`, `train.py`, `evaluate.py`),
  exact whether or not the checkout is a git repository or has uncommitted edits; the git commit
  (and `+dirty` for uncommitted edits), or the package version outside git, is shown beside it
  for people.

A job is done only when all three equal the current ones (`byov.grid.runner.job_state`).
"""
from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from typing import Mapping

SPLITS = ("train", "val", "test")
_SOURCES = ("byov", "utils", "train.py", "evaluate.py")


def _source_files(root: str) -> list[str]:
    files = []
    for entry in _SOURCES:
        path = os.path.join(root, entry)
        if os.path.isfile(path):
            files.append(path)
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    return files


def _git(root: str, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def code_version(root: str) -> dict[str, str]:
    """{"hash": 'src:<blake2b of the sources>', "label": 'git <commit>[+dirty]' or 'byov <ver>'}.

    `root` is the project root (the folder holding byov/ and train.py)."""
    h = hashlib.blake2b(digest_size=8)
    for path in _source_files(root):
        h.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.blake2b(f.read(), digest_size=16).digest())
    commit = _git(root, "rev-parse", "--short=12", "HEAD")
    if commit:
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", *_SOURCES)
        label = f"git {commit}" + ("+dirty" if dirty else "")
    else:
        try:
            import importlib.metadata
            label = f"byov {importlib.metadata.version('byov')}"
        except Exception:  # not installed as a package either
            label = "byov (no git, not installed)"
    return {"hash": "src:" + h.hexdigest(), "label": label}


_DATA: dict[tuple[str, str], str] = {}


def dataset_identity(dataset_root: str, dataset: str) -> str:
    """`data_fingerprint` of the train, val and test splits of `dataset` under `dataset_root`
    (computed once per dataset per process; the hash memo makes it cheap across runs).

    Raises:
        DataError: the data is missing or broken (the message names the file and the fix).
    """
    from byov.data.fingerprint import data_fingerprint

    key = (os.path.abspath(os.path.expanduser(dataset_root)), dataset)
    if key not in _DATA:
        _DATA[key] = data_fingerprint(key[0], key[1], SPLITS)
    return _DATA[key]


def forget_data() -> None:
    """Drop the per-process data identities (the data may have changed since)."""
    _DATA.clear()


def short(identity: Mapping) -> str:
    """'data <12 hex>, code <label> (<hash>)' for tables and messages."""
    data = str(identity.get("data") or "?").split(":")[-1][:12]
    code = identity.get("code") or {}
    return f"data {data}, code {code.get('label', '?')} ({code.get('hash', '?')})"
