"""Build the frozen frame encoder, the BYOV model and the BYOV method from a flat config dict.

The dict is the resolved config (utils/config.py's fields, as stored in every checkpoint), so a
checkpoint alone is enough to rebuild its model.
"""
from __future__ import annotations

from typing import Mapping

from byov.errors import ByovError
from byov.models.byov import BYOV
from byov.models.stm import num_selected_tokens


class ModelConfigError(ByovError, ValueError):
    """The config does not fit the backbone (e.g. hidden_dim differs from its token width)."""


def build_frame_encoder_from_config(config: Mapping, pretrained: bool = True):
    """-> FrameEncoder for config['backbone'] with its weights (see models.frame_encoders)."""
    from byov.models.frame_encoders import build_frame_encoder

    return build_frame_encoder(config["backbone"], path=config["vision_encoder_path"],
                               input_size=config["input_size"],
                               resnet_stage=config["resnet_stage"],
                               freeze=config["freeze_base"],
                               pretrained=pretrained and config.get("pretrained", True))


def check_backbone_width(config: Mapping, frame_encoder) -> None:
    if frame_encoder.dim != config["hidden_dim"]:
        raise ModelConfigError(
            f"hidden_dim is {config['hidden_dim']} but the {frame_encoder.name} backbone gives "
            f"{frame_encoder.dim}-d tokens; set --hidden_dim {frame_encoder.dim} (or "
            f"hidden_dim: {frame_encoder.dim} in the yaml)")


def tokens_to_keep(config: Mapping, num_patches: int) -> int:
    """K for selective token merging: round(N * topk_ratio) from the backbone's real patch count N
    (`num_tokens` > 0 overrides N, as the released code's constant 196 did)."""
    return num_selected_tokens(num_patches, config["topk_ratio"], config["num_tokens"])


def build_byov(config: Mapping) -> BYOV:
    """The trainable BYOV encoder + decoder (+ EMA teacher when target == 'ema')."""
    return BYOV(in_dim=config["hidden_dim"], embed_dim=config["embedding_size"],
                dec_dim=config["decoder_embedding_size"], depth=config["n_layers"],
                depth_dec=config["n_layers_dec"], n_heads=config["n_heads"],
                mlp_ratio=config["mlp_ratio"], num_frames=config["num_frames"],
                mask_ratio=config["mask_ratio"], mcm_ratio=config["mcm_ratio"],
                compat_released_decoder=config["compat_released_decoder"],
                target=config["target"])


def frame_source(config: Mapping, frame_encoder=None):
    """Where training clips and evaluation videos come from: the h5 frame cache (`features:
    fly`, pixels) or the feature cache (`tokens` / `merged`, checked against the backbone)."""
    if config["features"] != "fly":
        from byov.features.cache import feature_source
        return feature_source(config, frame_encoder)
    from byov.data.datasets import FrameSource
    return FrameSource(config["dataset_root"], config["dataset"],
                       input_pipeline(config, frame_encoder), config["input_size"],
                       config["frame_cache_dir"])


def input_pipeline(config: Mapping, frame_encoder=None):
    """What byov.data.preprocess turns frames into the backbone's input with: the frame
    encoder's own `Preprocessing` (dinov2, siglip2: from its image processor config), else the
    backbone name (a fixed rule)."""
    if frame_encoder is not None and frame_encoder.preprocessing is not None:
        return frame_encoder.preprocessing
    return config["backbone"]


def build_byov_method(config: Mapping, pretrained: bool = True, frame_encoder=None):
    """`ByovMethod` (frame encoder, BYOV model, STM K, frame source) for the config.

    The EMA momentum schedule (target "ema") is set by the training set-up, which knows the
    number of steps; without it `after_optimizer_step` does not update the teacher.
    """
    from byov.methods.byov_method import ByovMethod

    if frame_encoder is None:
        frame_encoder = build_frame_encoder_from_config(config, pretrained=pretrained)
    check_backbone_width(config, frame_encoder)
    return ByovMethod(frame_encoder, build_byov(config),
                      tokens_to_keep(config, frame_encoder.num_patches),
                      frame_source(config, frame_encoder), num_frames=config["num_frames"],
                      pairing=config["pairing"], chunk_size=config["encode_chunk_size"],
                      loss_terms=config.get("loss_terms", "all"),
                      memo_features=config["freeze_base"])


def model_from_checkpoint(ckpt: Mapping, config: Mapping, pretrained: bool = True):
    """(frame_encoder, model) of a BYOV checkpoint, rebuilt from `config` and loaded strictly.

    `config` is the checkpoint's config with any location overrides applied (dataset_root,
    vision_encoder_path, ...); architecture keys must be the checkpoint's own.
    """
    method = build_byov_method(config, pretrained=pretrained)
    method.load_state_entries(ckpt)
    return method.frame_encoder, method.model
