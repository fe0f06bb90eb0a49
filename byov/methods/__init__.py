"""Training methods: BYOV (default) and AE2's alignment objectives, behind one interface.

`build_method(spec)` turns a `byov.spec.MethodSpec` into a `Method` (see `base.Method`): the
model, its sampler, its loss, its checkpoint entries and its whole-video embedding. A new method
is a `Method` subclass with a builder, registered in `BUILDERS` below. `--method` selects it:

    byov             masked self-view + cross-view modelling (this project's subject)
    tcc              temporal cycle consistency (AE2 baseline)
    dtw              soft-DTW alignment cost (AE2 baseline)
    dtw_consistency  soft-DTW with a cycle-consistency cross-entropy (AE2 baseline)
    dtw_contrastive  AE2's own objective: soft-DTW with a time-reversed negative
    vava             VAVA, optimal-transport alignment with priors (AE2 baseline)
"""
from __future__ import annotations

from byov.methods.base import Method

METHODS = ("byov", "tcc", "dtw", "dtw_consistency", "dtw_contrastive", "vava")
AE2_METHODS = METHODS[1:]


def _build_byov(spec, pretrained, frame_encoder):
    from byov.methods.byov_method import build_byov_method
    return build_byov_method(spec, pretrained=pretrained, frame_encoder=frame_encoder)


def _build_ae2(spec, pretrained, frame_encoder):
    from byov.methods.ae2_method import build_ae2_method
    return build_ae2_method(spec, pretrained=pretrained)


# --method value -> builder(spec, pretrained, frame_encoder); imported lazily (the AE2 embedder
# pulls in torchvision's ResNet-50, BYOV the transformers backbones)
BUILDERS = {"byov": _build_byov, **{name: _build_ae2 for name in AE2_METHODS}}


def display_name(name: str) -> str:
    """How tables and figures name the method `--method name` (BYOV, TCC, DTW_CONTRASTIVE, ...)."""
    return "BYOV" if name == "byov" else name.upper()


def method_class(name: str) -> type[Method]:
    """The `Method` subclass of `--method name` (for its class-level hooks)."""
    if name == "byov":
        from byov.methods.byov_method import ByovMethod
        return ByovMethod
    if name in AE2_METHODS:
        from byov.methods.ae2_method import AE2Method
        return AE2Method
    raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")


def build_method(spec, pretrained: bool = True, frame_encoder=None) -> Method:
    """The method `spec.name` selects (a `byov.spec.MethodSpec`), built on the CPU.

    Args:
        pretrained: load the backbone's pretrained weights (False: random init, for tests).
        frame_encoder: an already built frame encoder (methods that use one; see
            `Method.frame_encoder_spec`).
    Raises:
        ValueError: an unknown method; ModelConfigError / WeightsNotFoundError from the builders.
    """
    if spec.name not in BUILDERS:
        raise ValueError(f"unknown method {spec.name!r}; valid: {', '.join(BUILDERS)}")
    return BUILDERS[spec.name](spec, pretrained and spec.encoder.pretrained, frame_encoder)


__all__ = ["AE2_METHODS", "BUILDERS", "METHODS", "Method", "build_method",
           "display_name", "method_class"]
