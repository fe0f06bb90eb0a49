"""Cache frames -> backbone inputs (docs/released_code.md#preprocessing)."""
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


def released_get_frames(frames_bgr, mean, std, input_size):
    """The released per-frame arithmetic, restated line by line (BYOV
    dataset/video_align_dataset.py, VideoAlignmentDataset.get_frames_h5py, then the
    `np.array(frames).astype(np.float32)` of its callers)."""
    image_mean, image_std = np.array(mean), np.array(std)
    out = []
    for frame_ in frames_bgr:
        frame = cv2.resize(frame_, (input_size, input_size), interpolation=cv2.INTER_CUBIC)
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        frame = frame.astype(np.float32) / 255.0
        frame = (frame - image_mean) / image_std
        out.append(frame)
    return np.array(out).astype(np.float32)


@pytest.mark.parametrize("backbone, mean, std", [("clip", CLIP_MEAN, CLIP_STD),
                                                 ("resnet50", IMAGENET_MEAN, IMAGENET_STD),
                                                 ("vit_b_16", IMAGENET_MEAN, IMAGENET_STD)])
def test_matches_released_arithmetic_bit_for_bit(backbone, mean, std):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    ref = released_get_frames(frames, mean, std, 224)
    out = preprocess_frames(frames, backbone, 224).numpy().transpose(0, 2, 3, 1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)  # bit-exact, not merely close
    # the check has teeth: dividing in float64 (the earlier code) moves many values by 1 ulp
    resized = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_CUBIC)
                        for f in frames])[..., ::-1]
    f64 = ((resized / 255.0 - np.array(mean)) / np.array(std)).astype(np.float32)
    differ = np.count_nonzero(f64 != ref)
    assert differ > ref.size // 4
    assert np.max(np.abs(f64 - ref)) < 1e-6  # in the last bits only
    assert preprocess_frames(frames[:0], backbone, 224).shape == (0, 3, 224, 224)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown backbone 'vit_l'"):
        preprocess_frames(_blue(), "vit_l", 224)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(_blue().astype(np.float32), "clip", 224)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(_blue()[..., :2], "clip", 224)
