import os
import sys

# Tests never reach a model hub: a missing model must fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
if ROOT not in sys.path:  # utils/ and the entry points live at the project root
    sys.path.insert(0, ROOT)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Dataset folder (str) of a tiny synthetic dataset, csv layout, generated once per session.

    `<tmp>/ego_dataN/synthetic`: 3/2/2 videos per split (train 2 ego + 1 exo, val and test 1 + 1),
    20-40 frames of 64x64, K = 4 phases. The root deliberately contains "ego" [DEC 6].
    dataset_root = os.path.dirname(synthetic_root), dataset = "synthetic".
    """
    from byov.data.synthetic import generate
    root = tmp_path_factory.mktemp("ego_data")
    return generate(str(root / "synthetic"), layout="csv", seed=0, videos_per_split=(3, 2, 2),
                    min_frames=20, max_frames=40, size=64)
