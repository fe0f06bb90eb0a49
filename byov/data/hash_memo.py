"""A small persistent memo of whole-file content hashes, so each video is read in full once.

An entry is keyed by what changes whenever a file's bytes may have changed: its real path, device,
inode, size, mtime (ns) and ctime (ns). Any edit in place moves the mtime and the ctime (the
ctime cannot be set back by `touch -d` or `os.utime`), a replaced file has a new inode, a `cp -r`
copy is a new path: each of these is a miss and the file is hashed again. A copy therefore costs
one read, and its hash equals the original's, so caches keyed by the hash stay valid.

Where the memo lives (first that is set):
    $BYOV_HASH_MEMO                       a folder
    $XDG_CACHE_HOME/byov/content_hashes
    ~/.cache/byov/content_hashes
It is never inside the data root (which may be read-only). One small JSON file per entry, written
atomically (temp file + rename), so concurrent processes (DDP ranks, Slurm tasks) never read a
half-written entry; two writers of the same entry write the same value. A memo folder that cannot
be written is not an error: hashes are then computed every run (a warning says so once), and
kept for the rest of the process in memory.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from typing import Callable

ENV_VAR = "BYOV_HASH_MEMO"
_MEMORY: dict[tuple, str] = {}  # this process's entries (also when the folder is unwritable)
_WARNED: set[str] = set()


def memo_dir() -> str:
    """The memo folder (module docstring), as an absolute path with `~` expanded."""
    folder = os.environ.get(ENV_VAR)
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        folder = os.path.join(base, "byov", "content_hashes")
    return os.path.abspath(os.path.expanduser(folder))


def file_key(path: str, st: os.stat_result) -> tuple:
    """(realpath, dev, inode, size, mtime_ns, ctime_ns) of an open file's `fstat`."""
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns)


def _entry_path(folder: str, key: tuple, kind: str) -> str:
    name = hashlib.blake2b(repr((kind,) + key).encode("utf-8", "surrogateescape"),
                           digest_size=16).hexdigest()
    return os.path.join(folder, name[:2], name + ".json")


def lookup(key: tuple, kind: str) -> str | None:
    """The remembered value of `key`, or None (a missing, unreadable or foreign entry)."""
    if (kind,) + key in _MEMORY:
        return _MEMORY[(kind,) + key]
    path = _entry_path(memo_dir(), key, kind)
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    # the stored key is compared too, so a hash collision of file names can never answer
    if not isinstance(entry, dict) or entry.get("key") != [kind, *map(_plain, key)]:
        return None
    value = entry.get("value")
    return value if isinstance(value, str) else None


def _plain(part):
    return part if isinstance(part, int) else os.fsencode(part).decode("utf-8", "replace")


def remember(key: tuple, kind: str, value: str) -> None:
    """Store `value` for `key` (in memory, and in the memo folder when it is writable)."""
    _MEMORY[(kind,) + key] = value
    folder = memo_dir()
    path = _entry_path(folder, key, kind)
    try:
        from byov.atomic import atomic_write_json
        atomic_write_json(path, {"key": [kind, *map(_plain, key)], "value": value})
    except OSError as e:
        if folder not in _WARNED:
            _WARNED.add(folder)
            warnings.warn(f"cannot write the content-hash memo in {folder} ({e.strerror or e}); "
                          f"every video is hashed in full again in each run. Set {ENV_VAR} to "
                          f"a writable folder to remember them", stacklevel=3)


def memoized(path: str, kind: str, compute: Callable[[object], str]) -> str:
    """`compute(file)` for the file at `path` (opened "rb"), remembered by `file_key`.

    The key is taken from the open file before it is read and checked again after: a file that
    changed while it was read is not remembered (its next use hashes it again).

    Raises:
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as f:
        key = file_key(path, os.fstat(f.fileno()))
        known = lookup(key, kind)
        if known is not None:
            return known
        value = compute(f)
        after = file_key(path, os.fstat(f.fileno()))
    if after == key:
        remember(key, kind, value)
    return value
