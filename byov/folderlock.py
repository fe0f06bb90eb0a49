"""One writer per folder: an exclusive advisory lock on `<folder>/.lock`.

Two `train.py` processes started into the same `--output_dir` (twice by accident, a job-array
typo) would interleave their logs and overwrite each other's checkpoints; two evaluations into
the same `--embed_dir` would leave one model's key over the other's embeddings. The first one
takes the lock; the second refuses at once, naming the folder, the holder and the flag to change. The lock is the kernel's
(`fcntl.flock`), so it is released when the holder exits, even when it is killed: a crashed run
never leaves a stale lock behind. On network filesystems without flock support the lock is
refused with a message rather than silently skipped.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket

from byov.errors import ByovError

LOCK_NAME = ".lock"


class FolderLockedError(ByovError):
    """Another process holds the folder."""


class FolderLock:
    """Context manager: `with FolderLock(folder): ...` holds `<folder>/.lock` exclusively.

    Args:
        output_dir: the folder (created if missing; removed again if the block fails before
            anything but the lock was written).
        what, holder, flag: the words of the refusal: "<what> <folder> is in use by another
            <holder> (...); ... choose another <flag>".
    Raises:
        FolderLockedError: another live process holds it (its pid and host are named).
    """

    def __init__(self, output_dir: str, what: str = "run folder",
                 holder: str = "training process", flag: str = "--output_dir"):
        self.output_dir = output_dir
        self.what, self.holder, self.flag = what, holder, flag
        self.path = os.path.join(output_dir, LOCK_NAME)
        self._fd: int | None = None
        self._created = False

    def acquire(self) -> "FolderLock":
        self._created = not os.path.isdir(self.output_dir)
        os.makedirs(self.output_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FolderLockedError(
                    f"{self.what} {self.output_dir} is in use by another {self.holder} "
                    f"({holder}); wait for it to finish, stop it, or choose another "
                    f"{self.flag}") from e
            raise FolderLockedError(
                f"cannot lock {self.what} {self.output_dir} ({e.strerror}); this filesystem may "
                f"not support file locks: use a {self.flag} on a local disk") from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, exc_type, *exc) -> None:
        self.release()
        # a run refused before it wrote anything leaves no folder behind
        if exc_type is not None and self._created and os.listdir(self.output_dir) == [LOCK_NAME]:
            os.remove(self.path)
            os.rmdir(self.output_dir)

