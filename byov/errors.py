"""The base of every error caused by the user's input or set-up (a wrong path, missing weights, a
bad setting, a diverging run). Entry points print such an error's message without a traceback;
anything else is a bug and keeps its traceback."""


class ByovError(Exception):
    """Mixed into each of byov's user-facing errors; its message names the problem and the fix."""
