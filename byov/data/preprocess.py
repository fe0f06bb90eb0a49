"""Cached 256x256 BGR frames -> backbone input tensors (docs/released_code.md#preprocessing).

Every backbone squashes 256 -> input_size with cv2.INTER_CUBIC (the released BYOV path) and
converts to RGB after the resize. Mean/std backbones then follow the released order of operations
exactly (BYOV dataset/video_align_dataset.py, get_frames_h5py): `frame.astype(np.float32) / 255.0`
(a float32 division), then `(frame - mean) / std` with float64 mean/std arrays (so float64 math),
then a cast to float32. Dividing in float64 instead moves ~58% of the values by one float32 ulp.
No crop, no augmentation.

The Hugging Face backbones (dinov2, siglip2) take their resize rule and mean/std from their
image processor's config instead (`Preprocessing`, read by byov.models.hf_backbones): a square
resize with the processor's interpolation (cv2's kernel of that name), an optional centred crop to
the input size, then the same float32 / 255 and float64 (x - mean) / std arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass

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


# cv2 kernels by the names of PIL's resample codes that image processors store (0..3)
INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "lanczos": cv2.INTER_LANCZOS4,
                  "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class Preprocessing:
    """A backbone's frame -> input rule taken from its image processor's config.

    Attributes:
        resize: side of the square each (square) cached frame is resized to, in pixels.
        crop: side of the centred crop, = the input size S (resize == crop: no crop).
        interpolation: a key of INTERPOLATIONS (cv2's kernel of that name, not PIL's
            antialiased one, as the released CLIP path).
        mean, std: per RGB channel, applied to RGB / 255.
        source: where the numbers come from (a preprocessor_config.json, or the family's
            documented defaults); informative, not part of the arithmetic.
    """
    resize: int
    crop: int
    interpolation: str
    mean: tuple
    std: tuple
    source: str = ""

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of "
                             f"{', '.join(INTERPOLATIONS)}")
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop {self.crop} must be positive and <= resize {self.resize}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean {self.mean} / std {self.std} must have 3 values, std > 0")


def check_backbone(backbone) -> None:
    if isinstance(backbone, Preprocessing):
        return
    if backbone not in _NORM:
        raise ValueError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}, or the "
                         f"Preprocessing of a Hugging Face backbone (dinov2, siglip2: its frame "
                         f"encoder's `preprocessing`, read from its image processor config)")


def preprocess_frames(frames_bgr: np.ndarray, backbone, input_size: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 BGR (the cache gives H = W = 256) -> (n, 3, S, S) float32, S = input_size.

    clip: RGB/255 then CLIP mean/std; resnet50, vit_b_16: RGB/255 then ImageNet mean/std, both
    bit-identical to the released arithmetic (module docstring); efficientnet_lite0: RGB/127.5 - 1
    (float64, then float32). A `Preprocessing` (dinov2, siglip2): its resize, centred crop to S
    and mean/std, with the same arithmetic as clip.
    """
    check_backbone(backbone)
    if isinstance(backbone, Preprocessing) and backbone.crop != input_size:
        raise ValueError(f"the preprocessing crops to {backbone.crop}, but input_size is "
                         f"{input_size}")
    if not isinstance(frames_bgr, np.ndarray) or frames_bgr.dtype != np.uint8 \
            or frames_bgr.ndim != 4 or frames_bgr.shape[-1] != 3:
        raise ValueError(f"frames must be a uint8 array (n, H, W, 3) BGR, got "
                         f"{getattr(frames_bgr, 'dtype', type(frames_bgr))} "
                         f"{getattr(frames_bgr, 'shape', '')}")
    if input_size <= 0:
        raise ValueError(f"input_size must be positive, got {input_size}")
    n = frames_bgr.shape[0]
    side, kernel = input_size, cv2.INTER_CUBIC
    if isinstance(backbone, Preprocessing):
        side, kernel = backbone.resize, INTERPOLATIONS[backbone.interpolation]
    resized = np.empty((n, side, side, 3), dtype=np.uint8)
    for i in range(n):
        resized[i] = cv2.resize(frames_bgr[i], (side, side), interpolation=kernel)
    if side != input_size:  # centred crop, offsets as transformers' center_crop
        top = (side - input_size) // 2
        resized = resized[:, top:top + input_size, top:top + input_size]
    rgb = resized[..., ::-1]
    norm = ((backbone.mean, backbone.std) if isinstance(backbone, Preprocessing)
            else _NORM[backbone])
    if norm is None:
        x = rgb / 127.5 - 1.0
    else:
        mean, std = norm
        # released: uint8 -> float32, / 255.0 in float32, then float64 (x - mean) / std
        x = rgb.astype(np.float32) / np.float32(255.0)
        x = (x - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    x = x.astype(np.float32).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x))


def describe(backbone, input_size: int) -> str:
    """The frame -> input pipeline of `preprocess_frames`, spelled out (feature-cache manifests
    record it, so a cache made with other arithmetic is refused)."""
    check_backbone(backbone)
    s = int(input_size)
    if isinstance(backbone, Preprocessing):
        p = backbone
        crop = f" -> centre crop {p.crop}x{p.crop}" if p.crop != p.resize else ""
        mean, std = (", ".join(f"{m:g}" for m in values) for values in (p.mean, p.std))
        return (f"h5 frame cache 256x256 BGR uint8 (INTER_AREA) -> cv2 {p.interpolation} "
                f"{p.resize}x{p.resize}{crop} -> RGB -> float32 x/255 (float32 division) -> "
                f"(x - mean)/std in float64 -> float32; mean ({mean}), std ({std})")
    head = f"h5 frame cache 256x256 BGR uint8 (INTER_AREA) -> cv2.INTER_CUBIC {s}x{s} -> RGB -> "
    norm = _NORM[backbone]
    if norm is None:
        return head + "x/127.5 - 1 in float64 -> float32"
    mean = ", ".join(f"{m:g}" for m in norm[0])
    std = ", ".join(f"{m:g}" for m in norm[1])
    return (head + f"float32 x/255 (float32 division) -> (x - mean)/std in float64 -> float32; "
            f"mean ({mean}), std ({std})")
