"""Cached 256x256 BGR frames -> backbone input tensors (docs/released_code.md#preprocessing).

Every backbone squashes 256 -> input_size with cv2.INTER_CUBIC (the released BYOV path) and
converts to RGB after the resize. Mean/std backbones then follow the released order of operations
exactly (BYOV dataset/video_align_dataset.py, get_frames_h5py): `frame.astype(np.float32) / 255.0`
(a float32 division), then `(frame - mean) / std` with float64 mean/std arrays (so float64 math),
then a cast to float32. Dividing in float64 instead moves ~58% of the values by one float32 ulp.
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

    clip: RGB/255 then CLIP mean/std; resnet50, vit_b_16: RGB/255 then ImageNet mean/std, both
    bit-identical to the released arithmetic (module docstring); efficientnet_lite0: RGB/127.5 - 1
    (float64, then float32).
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
        # released: uint8 -> float32, / 255.0 in float32, then float64 (x - mean) / std
        x = rgb.astype(np.float32) / np.float32(255.0)
        x = (x - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    x = x.astype(np.float32).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x))


def describe(backbone: str, input_size: int) -> str:
    """The frame -> input pipeline of `preprocess_frames`, spelled out (feature-cache manifests
    record it, so a cache made with other arithmetic is refused)."""
    check_backbone(backbone)
    s = int(input_size)
    head = f"h5 frame cache 256x256 BGR uint8 (INTER_AREA) -> cv2.INTER_CUBIC {s}x{s} -> RGB -> "
    norm = _NORM[backbone]
    if norm is None:
        return head + "x/127.5 - 1 in float64 -> float32"
    mean = ", ".join(f"{m:g}" for m in norm[0])
    std = ", ".join(f"{m:g}" for m in norm[1])
    return (head + f"float32 x/255 (float32 division) -> (x - mean)/std in float64 -> float32; "
            f"mean ({mean}), std ({std})")
