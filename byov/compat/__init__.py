"""Loading the released BYOV modules' weights (and the parity fixtures made from them).

The released `byov_encoder` / `byov_decoder` use our names except for the block lists, which are
called `encoder.{i}` / `decoder.{i}` there and `blocks.{i}` here.
"""
from __future__ import annotations

import os
import re

import torch

from byov.models.byov import BYOV

_BLOCKS = {"encoder": re.compile(r"^encoder\.(\d+)\."), "decoder": re.compile(r"^decoder\.(\d+)\.")}


def _rename(sd: dict, which: str) -> dict:
    return {_BLOCKS[which].sub(r"blocks.\1.", k): v for k, v in sd.items()}


def convert_released_state_dicts(encoder_sd: dict, decoder_sd: dict) -> tuple[dict, dict]:
    """Map released key names onto BYOVEncoder / BYOVDecoder names (tensors are shared)."""
    return _rename(encoder_sd, "encoder"), _rename(decoder_sd, "decoder")


def model_from_released_config(config: dict, compat_released_decoder: bool) -> BYOV:
    """Build a features-target BYOV from the released flag names (hidden_dim, embedding_size, ...).

    Without an `mcm_ratio` key the cross-view ratio is the released hard-wired 2 * mask_ratio.
    """
    from byov.methods.byov_method import build_byov
    from byov.spec import released_model_spec

    return build_byov(released_model_spec(config, compat_released_decoder))


def load_released(path: str) -> tuple[BYOV, dict]:
    """Load a parity fixture (tests/fixtures/model_parity*.pt) into our BYOV, strictly.

    `view2_msm_fixed` False selects compat_released_decoder=True. The model is returned in eval mode.

    Returns:
        (model, fixture dict as stored).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"parity fixture not found: {path} (they live in tests/fixtures/)")
    fx = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("config", "encoder_state_dict", "decoder_state_dict", "view2_msm_fixed"):
        if key not in fx:
            raise KeyError(f"{path} is not a BYOV parity fixture: key '{key}' is missing")
    model = model_from_released_config(fx["config"], not fx["view2_msm_fixed"])
    enc_sd, dec_sd = convert_released_state_dicts(fx["encoder_state_dict"],
                                                  fx["decoder_state_dict"])
    model.encoder.load_state_dict(enc_sd, strict=True)
    model.decoder.load_state_dict(dec_sd, strict=True)
    return model.eval(), fx
