"""The evaluation's thread pool: one BLAS thread per worker, and an interrupt never waits.

The workers are the parallelism (libsvm and LAPACK release the GIL), so BLAS gets one thread
each: oversubscribed OpenBLAS threads spin against each other on a busy machine. On an exception
in the submitting thread (Ctrl-C, SIGTERM: `byov.cli.interrupt`) queued work is cancelled and
not waited for, so the error reaches the entry point at once instead of after every queued fit.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def worker_threads(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor of `workers` threads under a one-thread BLAS limit."""
    with threadpool_limits(limits=1, user_api="blas"):
        pool = ThreadPoolExecutor(workers)
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
