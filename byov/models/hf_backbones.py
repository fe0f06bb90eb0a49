"""The Hugging Face frozen backbones of recent ego-exo work: DINOv2 and SigLIP 2.

| name    | transformers class           | default weights                 | N at 224 | d   |
|---------|------------------------------|---------------------------------|----------|-----|
| dinov2  | Dinov2Model (patch 14)       | facebook/dinov2-base (large: d 1024) | 256 | 768 |
| siglip2 | SiglipVisionModel (patch 16) | google/siglip2-base-patch16-224 | 196      | 768 |

Tokens are the patch tokens of the last encoder layer BEFORE the final norm (dinov2's
`layernorm`, siglip's `post_layernorm`), as the CLIP path takes them before `post_layernorm`;
DINOv2's CLS token is dropped (SigLIP has none), and SigLIP's attention-pooling head, which only
makes the pooled output, is removed. N and d come from the model: (S / patch)^2 and hidden_size.

`siglip2` supports the fixed-resolution SigLIP 2 checkpoints (google/siglip2-{base,large,so400m,
giant-opt}-patch{14,16}-{224,256,384,512}), whose config has model_type "siglip" and which
transformers loads with the SigLIP classes; SigLIP 1 checkpoints load the same way. The NaFlex
checkpoints (google/siglip2-*-naflex, model_type "siglip2") take variable-resolution patch
sequences and are refused with an error that says so. `dinov2` supports Dinov2Model checkpoints
(facebook/dinov2-{small,base,large,giant}); the with-registers variant is refused.

Preprocessing comes from the image processor config (preprocessor_config.json) of the model
folder: the local save_pretrained folder, or the hub id's snapshot in the Hugging Face cache.
When the folder has none, the family's documented defaults are used and a warning says so:
  dinov2:  resize the short side to 256 (bicubic), centre crop 224, ImageNet mean/std
           (facebook/dinov2-base's BitImageProcessor config);
  siglip2: resize to 224 x 224 (bilinear), mean = std = 0.5
           (google/siglip2-base-patch16-224's SiglipImageProcessor config).
The sizes scale with --input_size (DINOv2 at 448: resize 512, crop 448).
"""
from __future__ import annotations

import json
import os
import warnings

import torch
import torch.nn as nn

from byov.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from byov.models.frame_encoders import (FrameEncoder, WeightsNotFoundError, hf_fetch_advice,
                                        require_hf_dir)

PROCESSOR_FILE = "preprocessor_config.json"
DEFAULT_WEIGHTS = {"dinov2": "facebook/dinov2-base", "siglip2": "google/siglip2-base-patch16-224"}
# model_type values each backbone loads (config.json of the folder / hub id)
_MODEL_TYPES = {"dinov2": ("dinov2",), "siglip2": ("siglip", "siglip_vision_model")}
# the documented image processor configs of the default checkpoints (see the module docstring)
DEFAULT_PROCESSORS = {
    "dinov2": {"do_resize": True, "size": {"shortest_edge": 256}, "resample": 3,
               "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
               "do_normalize": True, "image_mean": list(IMAGENET_MEAN),
               "image_std": list(IMAGENET_STD)},
    "siglip2": {"do_resize": True, "size": {"height": 224, "width": 224}, "resample": 2,
                "do_normalize": True, "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5]},
}
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}  # PIL's codes


class BackboneConfigError(WeightsNotFoundError):
    """A model folder that is not the kind of checkpoint the backbone supports."""


# ------------------------------------------------------------------------------ preprocessing
def _side(value, what: str, where: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        if value.get("height") == value.get("width") and value.get("height"):
            return int(value["height"])
    raise BackboneConfigError(f"{where}: {what} {value!r} is not a square size or a "
                              f"shortest_edge; byov feeds square frames")


def preprocessing_from_processor(processor: dict, input_size: int, source: str) -> Preprocessing:
    """The Preprocessing an image processor config describes, at the input size S.

    The processor's model size (its crop, or its resize size without a crop) maps to S; a
    resize larger than the crop (DINOv2: 256 -> 224) scales with it: resize = round(S *
    size / crop). Raises BackboneConfigError for what byov cannot reproduce (NaFlex, a
    rescale other than 1/255)."""
    where = source
    if "max_num_patches" in processor or "Siglip2ImageProcessor" in str(
            processor.get("image_processor_type", "")):
        raise BackboneConfigError(f"{where} is a NaFlex (variable resolution) image processor; "
                                  f"byov supports fixed-resolution checkpoints only, e.g. "
                                  f"google/siglip2-base-patch16-224")
    if processor.get("do_rescale", True) and abs(
            float(processor.get("rescale_factor", 1 / 255)) - 1 / 255) > 1e-9:
        raise BackboneConfigError(f"{where}: rescale_factor {processor.get('rescale_factor')} "
                                  f"is not 1/255, which byov's preprocessing assumes")
    resample = processor.get("resample", 3)
    if resample not in _RESAMPLE:
        raise BackboneConfigError(f"{where}: resample {resample!r} is none of PIL's nearest (0),"
                                  f" lanczos (1), bilinear (2), bicubic (3)")
    if processor.get("do_normalize", True):
        mean = tuple(float(v) for v in processor.get("image_mean", processor.get("mean")))
        std = tuple(float(v) for v in processor.get("image_std", processor.get("std")))
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    size = _side(processor.get("size"), "size", where) if processor.get("do_resize", True) \
        else None
    resize = input_size
    if processor.get("do_center_crop") and processor.get("crop_size") is not None:
        crop = _side(processor["crop_size"], "crop_size", where)
        if size is not None and size > crop:
            resize = round(input_size * size / crop)
    return Preprocessing(resize=resize, crop=input_size, interpolation=_RESAMPLE[resample],
                         mean=mean, std=std, source=source)


def _processor_file(path: str) -> str | None:
    """preprocessor_config.json of a local folder, or of a hub id (the cache; downloaded when
    online). None when there is none."""
    if os.path.isdir(path):
        file = os.path.join(path, PROCESSOR_FILE)
        return file if os.path.isfile(file) else None
    try:
        from huggingface_hub import hf_hub_download

        from byov.hub import _offline
        return hf_hub_download(path, PROCESSOR_FILE, local_files_only=_offline())
    except Exception:  # not cached offline, or the repository has no processor config
        return None


def backbone_preprocessing(name: str, path: str | None, input_size: int) -> Preprocessing:
    """The Preprocessing of backbone `name` (dinov2 | siglip2) whose weights are at `path` (a
    folder or hub id; None for random init): its preprocessor_config.json, else the family's
    documented defaults (with a warning naming what was missing)."""
    file = _processor_file(path) if path else None
    if file is not None:
        try:
            with open(file, encoding="utf-8") as f:
                processor = json.load(f)
        except (OSError, ValueError) as e:
            raise BackboneConfigError(f"cannot read {file} ({e}); fix or delete it") from e
        return preprocessing_from_processor(processor, input_size, file)
    source = f"{name} defaults ({DEFAULT_WEIGHTS[name]}'s image processor config)"
    if path:
        warnings.warn(f"no {PROCESSOR_FILE} for {path}: using the {source}")
    return preprocessing_from_processor(DEFAULT_PROCESSORS[name], input_size, source)


# ---------------------------------------------------------------------------------- loading
def _load(name: str, path: str):
    from transformers import AutoConfig, Dinov2Model, SiglipVisionModel

    how = hf_fetch_advice(path, f"`AutoModel.from_pretrained('{path}').save_pretrained(DIR)` (plus "
                                f"its image processor: `AutoImageProcessor.from_pretrained("
                                f"'{path}').save_pretrained(DIR)`)")
    require_hf_dir(path, name, DEFAULT_WEIGHTS[name])
    where = "local directory" if os.path.isdir(path) else "hub id"
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise WeightsNotFoundError(f"cannot load the {name} config from {where} '{path}' "
                                   f"(offline, or not in the cache): {str(e).rstrip('. ')}. "
                                   f"{how}") from e
    if config.model_type not in _MODEL_TYPES[name]:
        extra = (" NaFlex SigLIP 2 checkpoints (google/siglip2-*-naflex) are not supported; use "
                 "a fixed-resolution one such as google/siglip2-base-patch16-224."
                 if config.model_type.startswith("siglip2") else "")
        raise BackboneConfigError(f"{path} holds a '{config.model_type}' model, but --backbone "
                                  f"{name} loads {' / '.join(_MODEL_TYPES[name])} checkpoints "
                                  f"(e.g. {DEFAULT_WEIGHTS[name]}).{extra}")
    cls = Dinov2Model if name == "dinov2" else SiglipVisionModel
    try:
        return cls.from_pretrained(path, dtype=torch.float32)
    except OSError as e:
        raise WeightsNotFoundError(f"cannot load {name} weights from {where} '{path}': "
                                   f"{str(e).rstrip('. ')}. {how}") from e


def _random_init(name: str, input_size: int):
    from transformers import Dinov2Config, Dinov2Model, SiglipVisionConfig, SiglipVisionModel

    if name == "dinov2":  # base size, patch 14
        return Dinov2Model(Dinov2Config(patch_size=14, image_size=input_size))
    return SiglipVisionModel(SiglipVisionConfig(patch_size=16, image_size=input_size))


class _Dinov2Encoder(FrameEncoder):
    def _tokens(self, images):
        # layernorm was replaced by Identity: the last layer's tokens before the final norm
        return self.backbone(pixel_values=images).last_hidden_state[:, 1:]  # drop CLS


class _SiglipEncoder(FrameEncoder):
    def _tokens(self, images):
        interp = self.input_size != self.backbone.config.image_size
        # post_layernorm replaced by Identity and no pooling head: pre-norm patch tokens
        return self.backbone(pixel_values=images, interpolate_pos_encoding=interp).last_hidden_state


def build_hf_backbone(name: str, path: str, input_size: int, pretrained: bool,
                      freeze: bool) -> FrameEncoder:
    """A dinov2 or siglip2 FrameEncoder: images (n, 3, S, S) -> tokens (n, (S/p)^2, d).

    Args:
        path: hub id or save_pretrained folder ("" = DEFAULT_WEIGHTS[name]).
        pretrained: False builds a random-init base-size model (benches).
    Raises:
        WeightsNotFoundError: the weights are not available locally (the message says what to
            fetch and where), or the folder holds another kind of model (BackboneConfigError).
        ValueError: input_size is not a multiple of the patch size.
    """
    path = path or DEFAULT_WEIGHTS[name]
    if pretrained:
        model, source = _load(name, path), path
    else:
        model, source = _random_init(name, input_size), "random-init"
    patch = model.config.patch_size
    if input_size % patch:
        raise ValueError(f"input_size {input_size} must be a multiple of {name}'s patch size "
                         f"{patch} (e.g. {patch * (224 // patch)})")
    if name == "dinov2":
        model.layernorm = nn.Identity()
        if getattr(model.embeddings, "mask_token", None) is not None:
            # only used for masked pre-training: no grads even when unfrozen (keeps DDP happy)
            model.embeddings.mask_token.requires_grad_(False)
        cls = _Dinov2Encoder
    else:
        vision = getattr(model, "vision_model", model)  # transformers 4.x nests the tower
        vision.post_layernorm = nn.Identity()
        if getattr(vision, "use_head", False):
            vision.use_head = False
            del vision.head
        cls = _SiglipEncoder
    preprocessing = backbone_preprocessing(name, path if pretrained else None, input_size)
    encoder = cls(name, model, (input_size // patch) ** 2, model.config.hidden_size, input_size,
                  preprocessing.mean, preprocessing.std, source, freeze)
    encoder.preprocessing = preprocessing
    return encoder
