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


def _save_processor(path, processor):
    import json
    with open(os.path.join(path, "preprocessor_config.json"), "w", encoding="utf-8") as f:
        json.dump(processor, f)


@pytest.fixture(scope="session")
def tiny_dinov2_dir(tmp_path_factory):
    """Directory (str) of a tiny random-init Dinov2Model (`save_pretrained` layout) with a
    DINOv2-style preprocessor_config.json (short side 32, bicubic, centre crop 28, ImageNet
    mean/std: facebook/dinov2-base's 256 / 224 rule at 28 px).

    28x28 input, 14x14 patches -> N = 4 tokens of d = 32; use with `--backbone dinov2
    --vision_encoder_path DIR --input_size 28 --hidden_dim 32`. Seeded."""
    import torch
    from transformers import Dinov2Config, Dinov2Model

    path = str(tmp_path_factory.mktemp("tiny_dinov2"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, mlp_ratio=2, patch_size=14,
                                         image_size=28))
    model.save_pretrained(path)
    _save_processor(path, {"image_processor_type": "BitImageProcessor", "do_resize": True,
                           "size": {"shortest_edge": 32}, "resample": 3, "do_center_crop": True,
                           "crop_size": {"height": 28, "width": 28}, "do_rescale": True,
                           "rescale_factor": 1 / 255, "do_normalize": True,
                           "image_mean": [0.485, 0.456, 0.406],
                           "image_std": [0.229, 0.224, 0.225]})
    return path


@pytest.fixture(scope="session")
def tiny_siglip2_dir(tmp_path_factory):
    """Directory (str) of a tiny random-init SigLIP model saved whole (text + vision towers, as
    the fixed-resolution google/siglip2-*-224 checkpoints are), with a SigLIP-style
    preprocessor_config.json (32 x 32, bilinear, mean = std = 0.5).

    32x32 input, 16x16 patches -> N = 4 tokens of d = 32; use with `--backbone siglip2
    --vision_encoder_path DIR --input_size 32 --hidden_dim 32`. Seeded."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    path = str(tmp_path_factory.mktemp("tiny_siglip2"))
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 2}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = SiglipModel(SiglipConfig(
            text_config={**tower, "vocab_size": 64, "max_position_embeddings": 16,
                         "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
            vision_config={**tower, "image_size": 32, "patch_size": 16}))
    model.save_pretrained(path)
    _save_processor(path, {"image_processor_type": "SiglipImageProcessor", "do_resize": True,
                           "size": {"height": 32, "width": 32}, "resample": 2,
                           "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
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
