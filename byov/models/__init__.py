"""BYOV model: blocks, masking, selective token merging, encoder/decoder, EMA teacher, backbones.

`build_frame_encoder`, `FrameEncoder` and `WeightsNotFoundError` are imported lazily (they pull
in transformers / torchvision / timm).
"""
from .blocks import Block, interpolate_pos_embed, sincos_pos_embed_1d
from .byov import BYOV, BYOVDecoder, BYOVEncoder, masked_mse
from .ema import ema_update, init_target, momentum_schedule
from .masking import draw_noise, len_keep, random_masking
from .stm import merge_video_tokens, num_selected_tokens, selective_token_merge

_LAZY = ("FrameEncoder", "WeightsNotFoundError", "build_frame_encoder")

__all__ = ["BYOV", "BYOVDecoder", "BYOVEncoder", "Block", "draw_noise", "ema_update",
           "init_target", "interpolate_pos_embed", "len_keep", "masked_mse", "merge_video_tokens",
           "momentum_schedule", "num_selected_tokens", "random_masking", "selective_token_merge",
           "sincos_pos_embed_1d", *_LAZY]


def __getattr__(name):
    if name == "build_frame_encoder":
        from . import backbones
        return backbones.build_frame_encoder
    if name in _LAZY:
        from . import frame_encoders
        return getattr(frame_encoders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
