"""Ctrl-C (SIGINT) and SIGTERM (a scheduler's stop, `kill`) end an entry point with one line that
says what was kept and how to go on, and the exit status 128 + signal number (the shell's
convention), instead of a KeyboardInterrupt traceback or, for SIGTERM, no word at all.

The signal becomes an exception in the main thread, so `with` blocks and `finally` clauses run
as for any error: the log is closed, the run lock released, distributed groups torn down, and
files are only ever replaced atomically, so nothing half-written is left to be reused. Then the
process ends at once (`os._exit`): worker threads still inside C code (a libsvm fit cannot be
stopped) would otherwise hold the exit until they finish.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised in the main thread; `signum` names it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def exit_on_interrupt(program: str, what_next: str) -> Iterator[None]:
    """Run the block; on SIGINT or SIGTERM print `program: interrupted by SIG...; what_next` to
    stderr and end the process with status 128 + the signal number (no SystemExit: see the
    module docstring)."""
    previous = {s: signal.signal(s, _raise) for s in SIGNALS}
    try:
        yield
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        for s, handler in previous.items():  # a second Ctrl-C while exiting stops at once
            signal.signal(s, handler)
        # on a terminal, off the line a progress bar may hold
        print(f"{chr(10) if sys.stderr.isatty() else ''}{program}: interrupted by "
              f"{signal.Signals(signum).name}; {what_next}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
