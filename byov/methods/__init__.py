"""Training methods: BYOV (default) and AE2's alignment objectives, behind one interface.

`build_method(config)` turns the resolved flat config into a `Method` (see `base.Method`): the
model, its sampler, its loss and its whole-video embedding. `--method` selects it:

    byov             masked self-view + cross-view modelling (this project's subject)
    tcc              temporal cycle consistency (AE2 baseline)
    dtw              soft-DTW alignment cost (AE2 baseline)
    dtw_consistency  soft-DTW with a cycle-consistency cross-entropy (AE2 baseline)
    dtw_contrastive  AE2's own objective: soft-DTW with a time-reversed negative
    vava             VAVA, optimal-transport alignment with priors (AE2 baseline)
"""
from __future__ import annotations

from typing import Mapping

from byov.methods.base import Method

METHODS = ("byov", "tcc", "dtw", "dtw_consistency", "dtw_contrastive", "vava")
AE2_METHODS = METHODS[1:]


def build_method(config: Mapping, pretrained: bool = True, frame_encoder=None) -> Method:
    """The method `config["method"]` selects, built from the flat config (on the CPU).

    Args:
        pretrained: load the backbone's pretrained weights (False: random init, for tests).
        frame_encoder: BYOV only: an already built frame encoder to use instead of building one.
    Raises:
        ValueError: an unknown method; ModelConfigError / WeightsNotFoundError from the builders.
    """
    name = config.get("method", "byov")
    pretrained = pretrained and config.get("pretrained", True)
    if name == "byov":
        from byov.build import build_byov_method
        return build_byov_method(config, pretrained=pretrained, frame_encoder=frame_encoder)
    if name in AE2_METHODS:
        from byov.methods.ae2_method import build_ae2_method
        return build_ae2_method(config, pretrained=pretrained)
    raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")


__all__ = ["AE2_METHODS", "METHODS", "Method", "build_method"]
