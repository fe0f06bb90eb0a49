"""Atomic file writes: a temp file in the target's folder, flushed, then renamed onto the target.

A reader (or a resumed run) therefore sees the old file or the complete new one, never a partial
write; on failure the temp file is removed and the previous file is left as it was.
"""
from __future__ import annotations

import json
import os
import tempfile
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
        with (os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")) as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), text=True)


def atomic_write_json(path: str, data: Any, fsync: bool = False) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=1), text=True, fsync=fsync)
