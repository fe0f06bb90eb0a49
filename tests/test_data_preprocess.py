"""Cache frames -> backbone inputs (REFERENCE §2.9)."""
import cv2
import numpy as np
import pytest
import torch

from byov.data.preprocess import (BACKBONES, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD,
                                  preprocess_frames)


def _blue(n=2, size=256):
    frames = np.zeros((n, size, size, 3), np.uint8)
    frames[..., 0] = 255  # BGR: pure blue
    return frames


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shape_and_dtype(backbone):
    x = preprocess_frames(_blue(3), backbone, 224)
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    assert x.shape == (3, 3, 224, 224) and x.is_contiguous()


@pytest.mark.parametrize("backbone, red, blue", [
    ("clip", -CLIP_MEAN[0] / CLIP_STD[0], (1 - CLIP_MEAN[2]) / CLIP_STD[2]),
    ("resnet50", -IMAGENET_MEAN[0] / IMAGENET_STD[0], (1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]),
    ("vit_b_16", -IMAGENET_MEAN[0] / IMAGENET_STD[0], (1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]),
    ("efficientnet_lite0", -1.0, 1.0),
])
def test_rgb_order_and_scaling(backbone, red, blue):
    x = preprocess_frames(_blue(), backbone, 112)
    # BGR blue must land in RGB channel 2; channel 0 (red) holds the zero pixel value
    torch.testing.assert_close(x[:, 0], torch.full_like(x[:, 0], red))
    torch.testing.assert_close(x[:, 2], torch.full_like(x[:, 2], blue))


def test_clip_matches_released_arithmetic():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    ref = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_CUBIC) for f in frames])
    ref = ref[..., ::-1] / 255.0
    ref = ((ref - np.array(CLIP_MEAN)) / np.array(CLIP_STD)).astype(np.float32)
    out = preprocess_frames(frames, "clip", 224).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(out, ref)  # float64 math, then float32: bit-exact
    assert preprocess_frames(frames[:0], "clip", 224).shape == (0, 3, 224, 224)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown backbone 'vit_l'"):
        preprocess_frames(_blue(), "vit_l", 224)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(_blue().astype(np.float32), "clip", 224)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(_blue()[..., :2], "clip", 224)
