"""Cached 256x256 BGR frames -> backbone input tensors (REFERENCE §2.9).

Every backbone squashes 256 -> input_size with cv2.INTER_CUBIC (the released BYOV path), converts
to RGB after the resize and scales in float64 before casting to float32, as released for CLIP.
No crop, no augmentation.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("clip", "resnet50", "vit_b_16", "efficientnet_lite0")

# backbone -> (mean, std) applied to RGB/255; None = x/127.5 - 1 (timm tf_efficientnet_lite0)
_NORM = {
    "clip": (CLIP_MEAN, CLIP_STD),
    "resnet50": (IMAGENET_MEAN, IMAGENET_STD),
    "vit_b_16": (IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": None,
}


def check_backbone(backbone: str) -> None:
    if backbone not in _NORM:
        raise ValueError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")


def preprocess_frames(frames_bgr: np.ndarray, backbone: str, input_size: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 BGR (the cache gives H = W = 256) -> (n, 3, S, S) float32, S = input_size.

    clip: RGB/255 then CLIP mean/std; resnet50, vit_b_16: RGB/255 then ImageNet mean/std;
    efficientnet_lite0: RGB/127.5 - 1.
    """
    check_backbone(backbone)
    if not isinstance(frames_bgr, np.ndarray) or frames_bgr.dtype != np.uint8 \
            or frames_bgr.ndim != 4 or frames_bgr.shape[-1] != 3:
        raise ValueError(f"frames must be a uint8 array (n, H, W, 3) BGR, got "
                         f"{getattr(frames_bgr, 'dtype', type(frames_bgr))} "
                         f"{getattr(frames_bgr, 'shape', '')}")
    if input_size <= 0:
        raise ValueError(f"input_size must be positive, got {input_size}")
    n = frames_bgr.shape[0]
    resized = np.empty((n, input_size, input_size, 3), dtype=np.uint8)
    for i in range(n):
        resized[i] = cv2.resize(frames_bgr[i], (input_size, input_size),
                                interpolation=cv2.INTER_CUBIC)
    rgb = resized[..., ::-1]
    norm = _NORM[backbone]
    if norm is None:
        x = rgb / 127.5 - 1.0
    else:
        mean, std = norm
        x = (rgb / 255.0 - np.asarray(mean)) / np.asarray(std)  # float64, as released
    x = x.astype(np.float32).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x))
