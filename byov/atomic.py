"""Atomic file writes: a temp file in the target's folder, flushed, then renamed onto the target.

A reader (or a resumed run) therefore sees the old file or the complete new one, never a partial
write; on failure the temp file is removed and the previous file is left as it was.
"""
from __future__ import annotations

import glob
import json
import os
import re
import tempfile
import time
from typing import Any, Callable


def atomic_write(path: str, write: Callable[[Any], None], text: bool = False,
                 fsync: bool = False) -> None:
    """Call `write(f)` on a temp file next to `path`, then rename it onto `path`.

    text: open the temp file as utf-8 text instead of bytes. fsync: flush it to disk before the
    rename (for files whose loss would cost a run, e.g. checkpoints and cache manifests).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; the file gets the permissions an ordinary open() would give
        # (0666 less the umask), so collaborators can read checkpoints, metrics and caches
        os.fchmod(fd, 0o666 & ~_umask())
        with (os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")) as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), text=True)


def atomic_write_json(path: str, data: Any, fsync: bool = False) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=1), text=True, fsync=fsync)


def remove_orphan_temps(path: str, min_age_s: float = 3600.0) -> list[str]:
    """Delete `<path>.tmp.<pid>.<hex>` files left by a writer that was killed (kill -9, a
    preempted job): those whose pid is no live process here and that were last written more than
    `min_age_s` ago (a writer on another host of a shared filesystem is not mistaken for a dead
    one while it is still writing). Returns the paths removed."""
    removed = []
    for tmp in glob.glob(glob.escape(path) + ".tmp.*"):
        match = re.fullmatch(re.escape(path) + r"\.tmp\.(\d+)\.[0-9a-f]+", tmp)
        if not match:
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # the writer is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        try:
            if time.time() - os.path.getmtime(tmp) > min_age_s:
                os.remove(tmp)
                removed.append(tmp)
        except OSError:
            pass  # gone already, or not ours to remove
    return removed
