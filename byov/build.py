"""Build the frozen frame encoder and the BYOV model from a flat config dict.

The dict is the resolved config (utils/config.py's fields, as stored in every checkpoint), so a
checkpoint alone is enough to rebuild its model [DEC 9].
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
                               freeze=config["freeze_base"], pretrained=pretrained)


def check_backbone_width(config: Mapping, frame_encoder) -> None:
    if frame_encoder.dim != config["hidden_dim"]:
        raise ModelConfigError(
            f"hidden_dim is {config['hidden_dim']} but the {frame_encoder.name} backbone gives "
            f"{frame_encoder.dim}-d tokens; set --hidden_dim {frame_encoder.dim} (or "
            f"hidden_dim: {frame_encoder.dim} in the yaml)")


def tokens_to_keep(config: Mapping, num_patches: int) -> int:
    """K for selective token merging: round(N * topk_ratio) from the real N [DEC 5]."""
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


def model_from_checkpoint(ckpt: Mapping, config: Mapping, pretrained: bool = True):
    """(frame_encoder, model) rebuilt from a checkpoint's config and loaded strictly.

    `config` is the checkpoint's config with any location overrides applied (dataset_root,
    vision_encoder_path, ...); architecture keys must be the checkpoint's own.
    """
    from byov.checkpoint import load_state_strict

    frame_encoder = build_frame_encoder_from_config(config, pretrained=pretrained)
    check_backbone_width(config, frame_encoder)
    if ckpt.get("backbone") is not None:
        load_state_strict(frame_encoder, ckpt["backbone"], "backbone")
    model = build_byov(config)
    load_state_strict(model.encoder, ckpt["encoder"], "encoder")
    load_state_strict(model.decoder, ckpt["decoder"], "decoder")
    if model.target_encoder is not None:
        if ckpt.get("target") is None:
            raise ModelConfigError("the config says target: ema but the checkpoint holds no "
                                   "EMA teacher ('target' entry)")
        load_state_strict(model.target_encoder, ckpt["target"], "target")
    return frame_encoder, model
