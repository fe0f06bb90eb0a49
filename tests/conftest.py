import os
import sys

# Tests never reach a model hub: a missing model must fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The content-hash memo (byov.data.hash_memo) of a test session lives in a temp folder, never in
# the user's ~/.cache.
if "BYOV_HASH_MEMO" not in os.environ:
    import tempfile
    os.environ["BYOV_HASH_MEMO"] = tempfile.mkdtemp(prefix="byov_hash_memo_")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")  # parity fixtures, see its README.md
if ROOT not in sys.path:  # utils/ and the entry points live at the project root
    sys.path.insert(0, ROOT)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Dataset folder (str) of a tiny synthetic dataset, csv layout, generated once per session.

    `<tmp>/ego_dataN/synthetic`: 3/2/2 videos per split (train 2 ego + 1 exo, val and test 1 + 1),
    20-40 frames of 64x64, K = 4 phases. The root deliberately contains "ego" (docs/design.md#ego-and-exo-by-parent-folder).
    dataset_root = os.path.dirname(synthetic_root), dataset = "synthetic".
    """
    from byov.data.synthetic import generate
    root = tmp_path_factory.mktemp("ego_data")
    return generate(str(root / "synthetic"), layout="csv", seed=0, videos_per_split=(3, 2, 2),
                    min_frames=20, max_frames=40, size=64)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """Directory (str) of a tiny random-init CLIP vision model (`save_pretrained` layout).

    32x32 input, 16x16 patches -> N = 4 tokens of d = 32; use with `--backbone clip
    --vision_encoder_path DIR --input_size 32 --hidden_dim 32`. Seeded, so identical per session.
    """
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = str(tmp_path_factory.mktemp("tiny_clip"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=16))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def train_cache_dir(tmp_path_factory):
    """Frame-cache folder (str) shared by the tiny training runs (the dataset stays untouched)."""
    return str(tmp_path_factory.mktemp("frame_cache"))


@pytest.fixture
def args(synthetic_root, tiny_clip_dir, train_cache_dir, tmp_path):
    """args(name, **overrides) -> train.py arguments of a tiny run in the folder tmp_path/name."""
    from train_helpers import train_args

    def make(name="run", **overrides):
        return train_args(synthetic_root, tiny_clip_dir, str(tmp_path / name), train_cache_dir,
                          **overrides)
    return make
