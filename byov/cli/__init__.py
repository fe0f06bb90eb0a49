"""The command-line front ends of the library's `python -m` tools (`byov.features`, `byov.report`,
`byov.grid`): thin modules that resolve settings with the project's `utils/config.py` and
call the library. They are the only byov code that imports `utils/`; the library never imports
them (a test checks the import graph)."""
from __future__ import annotations

import os
import sys


def import_project_config():
    """The module `utils.config` of the checkout this package sits in.

    Run from outside the project root, `utils/` (next to `byov/`) is put on sys.path first.
    """
    try:
        import utils.config as config_module
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
        import utils.config as config_module
    return config_module
