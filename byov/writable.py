"""One error for "cannot write here": a read-only, unwritable or full output folder.

train.py (`--output_dir`), evaluate.py (`--embed_dir`, `--json`) and the report (`--out`) check
their output folder with `probe_writable` before the first expensive step (a real file is
created and removed, so a read-only mount, missing permissions or a full disk show up at once;
`os.access` misses read-only mounts seen through root and full disks), and wrap their writes
in `writing(...)`, so a disk that fills later (e.g. while `eval/epoch_XXXX/` is written) gives
the same `CannotWriteError`, naming the path and the fix, instead of a raw OSError traceback.
Checkpoint writes raise `byov.checkpoint.CheckpointWriteError`, a CannotWriteError too.
"""
from __future__ import annotations

import contextlib
import errno
import os
import uuid

from byov.errors import ByovError

# errors that can only come from writing: converted wherever they are raised inside `writing`
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
# errors that come from writing when they name a path inside the output folder
_PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM}


class CannotWriteError(ByovError, OSError):
    """An output that cannot be written: the message names the path, the reason and the fix.

    An OSError (with the original `errno` and `filename`), so code that catches OSError still
    does; its text is the message alone."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


def _fix(err: int | None, flag: str) -> str:
    if err in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG):
        return (f"free disk space (or quota) on that filesystem, or give {flag} a path on "
                f"another one; what was written before is kept")
    if err == errno.EROFS:
        return f"the filesystem is read-only: give {flag} a path in a writable folder"
    return f"make it writable (chmod / chown) or give {flag} a path in a writable folder"


def _file_in_the_way(path: str) -> str | None:
    """The existing non-folder on `path` or above it (a path under a regular file), if any."""
    path = os.path.abspath(path)
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return path if os.path.exists(path) and not os.path.isdir(path) else None


def cannot_write(path: str, what: str, flag: str, e: OSError) -> CannotWriteError:
    """The CannotWriteError for OSError `e` raised while writing `what` at `path`."""
    where = e.filename if isinstance(e.filename, str) and e.filename else path
    blocker = _file_in_the_way(path) if e.errno in (errno.EEXIST, errno.ENOTDIR) else None
    if blocker is not None:  # "File exists" / "Not a directory" would not say what is wrong
        err = CannotWriteError(f"cannot write {what} at {path!r}: {blocker!r} is a file, not a "
                               f"folder; give {flag} a path in a folder")
        err.errno, err.filename = e.errno, blocker
        return err
    err = CannotWriteError(f"cannot write {what} at {where!r} "
                           f"({e.strerror or type(e).__name__}); {_fix(e.errno, flag)}")
    err.errno, err.filename = e.errno, where
    return err


def probe_writable(folder: str, what: str, flag: str) -> str:
    """Write (then remove) a small file in `folder`, creating it for the test and removing
    what was created again; returns `folder`.

    Raises:
        CannotWriteError: naming `folder`, the reason and the fix (`flag` names the option that
            chooses the folder, e.g. "--output_dir").
    """
    probe = os.path.join(folder, f".byov_write_probe.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    created = []  # folders made here, removed again: the probe leaves nothing behind
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        created.append(path)
        path = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)  # one block: a full disk fails here, not at the first step
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # named as the user's folder, not the probe file inside it
        where = e.filename if e.filename != probe else folder
        raise cannot_write(folder, what, flag, OSError(e.errno, e.strerror, where)) from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)
        for made in created:  # leaf first
            with contextlib.suppress(OSError):
                os.rmdir(made)
    return folder


@contextlib.contextmanager
def writing(folder: str, what: str, flag: str):
    """Turn an OSError from writing inside `folder` into a CannotWriteError naming it.

    ENOSPC / EDQUOT / EROFS / EFBIG are always writes; EACCES / EPERM only when the error names
    a path inside `folder` (a read error elsewhere keeps its own type).
    """
    try:
        yield
    except CannotWriteError:
        raise
    except OSError as e:
        inside = isinstance(e.filename, str) and os.path.abspath(e.filename).startswith(
            os.path.abspath(folder) + os.sep)
        if e.errno in _WRITE_ERRNOS or (e.errno in _PERMISSION_ERRNOS and inside):
            raise cannot_write(folder, what, flag, e) from e
        raise
