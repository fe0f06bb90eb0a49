import os
import sys

# Tests never reach a model hub: a missing model must fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
if ROOT not in sys.path:  # utils/ and the entry points live at the project root
    sys.path.insert(0, ROOT)
