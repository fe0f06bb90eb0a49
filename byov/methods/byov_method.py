"""BYOV as a training method: frozen frame encoder + selective token merging + BYOV encoder/decoder.

Training input per item: two clips of T frames (pixels from the h5 frame cache, or tokens / merged
features from the feature cache), merged per frame by STM over the T sampled frames, then the
masked self-view and cross-view losses of `byov.models.byov.BYOV` (paper Sec. 3; released
byov_model.py). Embedding a whole video: STM over ADJACENT frames, chunk by chunk, then the
unmasked encoder (released evaluation path).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from byov.errors import ByovError
from byov.methods.base import Method
from byov.models.masking import draw_noise
from byov.models.stm import merge_video_tokens, selective_token_merge

LOSS_TERMS = ("all", "msm", "mcm")


def step_noise(batch: int, num_frames: int, entropy: Sequence[int],
               device: torch.device | str = "cpu") -> dict:
    """Mask noise for one step, a pure function of `entropy` (e.g. (seed, stream, step, rank)).

    Returns {x1_msm, x1_mcm, x2_msm, x2_mcm} -> (batch, num_frames) uniform noise on `device`.
    """
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(list(entropy))
                                          .generate_state(1)[0]))
    return {k: v.to(device, non_blocking=True) for k, v in
            draw_noise(batch, num_frames, generator=g).items()}


class ByovMethod(Method):
    """BYOV training and embedding.

    Args:
        frame_encoder: a `FrameEncoder` ((n, 3, S, S) -> (n, N, d) tokens); used for pixel
            inputs only (training from a feature cache never runs it).
        model: `BYOV` (encoder, decoder, optional EMA teacher).
        k: tokens kept per frame by STM.
        source: where frames come from, `.load(video, indices)` -> pixels (n, 3, S, S), tokens
            (n, N, d) or merged features (n, d): a `FrameSource` or a feature cache's source.
        num_frames, pairing: T and the pair rule of the training sampler.
        chunk_size: frames per backbone forward when embedding whole videos.
        loss_terms: "all" (the paper's sum), "msm" (self-view term alone) or "mcm" (the two
            cross-view terms alone), a diagnostic switch; every term is still logged.
        momenta: per-step EMA momentum schedule (target "ema"), indexed by the global step.
        memo_features: keep each video's merged frozen features between evaluations (valid only
            while the backbone is frozen).
    """

    name = "byov"
    loss_keys = ("loss", "msm", "mcm_view1", "mcm_view2")

    def __init__(self, frame_encoder: nn.Module, model: nn.Module, k: int, source, *,
                 num_frames: int, pairing: str = "merged", chunk_size: int = 64,
                 loss_terms: str = "all", momenta: np.ndarray | None = None,
                 memo_features: bool = True):
        super().__init__()
        if loss_terms not in LOSS_TERMS:
            raise ValueError(f"loss_terms must be one of {LOSS_TERMS}; got {loss_terms!r}")
        self.frame_encoder = frame_encoder
        self.model = model
        self.k, self.source, self.num_frames = int(k), source, int(num_frames)
        self.pairing, self.chunk_size, self.loss_terms = pairing, int(chunk_size), loss_terms
        self.momenta = momenta
        self._memo: dict[str, torch.Tensor] | None = {} if memo_features else None

    # -- training ------------------------------------------------------------------------------
    def merged(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 2, T, ...) pixels / tokens / merged features -> (B, 2, T, d) merged features."""
        b, v, t = inputs.shape[:3]
        if inputs.dim() == 6:
            tokens = self.frame_encoder(inputs.flatten(0, 2))  # (B*2*T, N, d)
            inputs = tokens.view(b, v, t, *tokens.shape[1:])
        if inputs.dim() == 5:
            return selective_token_merge(inputs.flatten(0, 1), self.k).view(b, v, t, -1)
        if inputs.dim() == 4:
            return inputs
        raise ValueError(f"inputs must be (B, 2, T, 3, S, S), (B, 2, T, N, d) or (B, 2, T, d); "
                         f"got {tuple(inputs.shape)}")

    def forward(self, batch: Mapping[str, torch.Tensor], entropy: Sequence[int]) -> dict:
        inputs = batch["inputs"]
        x = self.merged(inputs)
        if getattr(self.frame_encoder, "frozen", True) or inputs.dim() != 6:
            x = x.detach()
        noise = step_noise(x.shape[0], x.shape[2], entropy, x.device)
        out = self.model(x[:, 0], x[:, 1], noise)
        if self.loss_terms == "msm":
            out["loss"] = out["msm"]
        elif self.loss_terms == "mcm":
            out["loss"] = out["mcm_view1"] + out["mcm_view2"]
        return out

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = self.model.trainable_parameters()
        if not getattr(self.frame_encoder, "frozen", True):
            params += [p for p in self.frame_encoder.parameters() if p.requires_grad]
        return params

    def after_optimizer_step(self, step: int) -> dict:
        if self.momenta is None:
            return {}
        momentum = float(self.momenta[min(step + 1, len(self.momenta) - 1)])
        self.model.update_target(momentum)
        return {"ema_momentum": momentum}

    def configure_schedules(self, total_steps: int, schedule) -> None:
        if schedule.ema_momentum is not None and self.model.target_encoder is not None:
            from byov.models.ema import momentum_schedule
            self.momenta = momentum_schedule(schedule.ema_momentum, total_steps)

    @classmethod
    def frame_encoder_spec(cls, spec):
        return spec.encoder

    @classmethod
    def reads_frames(cls, spec) -> bool:
        return spec.features.kind == "fly"

    @classmethod
    def needs_pretrained_weights(cls, ckpt: Mapping) -> bool:
        return ckpt.get("backbone") is None  # a frozen backbone is not stored

    def pair_dataset(self, videos: Sequence, seed: int, length: int):
        from byov.data.datasets import PairDataset
        return PairDataset(videos, self.num_frames, self.source, self.pairing, seed=seed,
                           length=length)

    # -- checkpoints ---------------------------------------------------------------------------
    def state_entries(self) -> dict[str, dict]:
        state = {"encoder": self.model.encoder.state_dict(),
                 "decoder": self.model.decoder.state_dict()}
        if self.model.target_encoder is not None:
            state["target"] = self.model.target_encoder.state_dict()
        if not getattr(self.frame_encoder, "frozen", True):
            state["backbone"] = self.frame_encoder.state_dict()
        return state

    def load_state_entries(self, ckpt: Mapping, where: str = "checkpoint") -> None:
        from byov.checkpoint import CheckpointError, load_state_strict

        for part in ("encoder", "decoder"):
            if ckpt.get(part) is None:
                raise CheckpointError(f"{where} has no '{part}' entry, which a BYOV model needs")
        if ckpt.get("backbone") is not None:
            load_state_strict(self.frame_encoder, ckpt["backbone"], "backbone", where)
        load_state_strict(self.model.encoder, ckpt["encoder"], "encoder", where)
        load_state_strict(self.model.decoder, ckpt["decoder"], "decoder", where)
        if self.model.target_encoder is not None:
            if ckpt.get("target") is None:
                raise CheckpointError(f"{where}: the config says target: ema but the checkpoint "
                                      f"holds no EMA teacher ('target' entry)")
            load_state_strict(self.model.target_encoder, ckpt["target"], "target", where)
        self.clear_memo()

    # -- whole videos --------------------------------------------------------------------------
    def clear_memo(self) -> None:
        if self._memo is not None:
            self._memo.clear()

    @torch.no_grad()
    def merged_video(self, video) -> torch.Tensor:
        """STM features of a whole video over adjacent frames: (L, d) float32 on the CPU (the
        frozen-features baseline, and the encoder's input)."""
        memo = self._memo if getattr(self.frame_encoder, "frozen", True) else None
        if memo is not None and video.path in memo:
            return memo[video.path]
        device = self.device
        L = video.num_frames

        def chunks():
            for start in range(0, L, self.chunk_size):
                x = self.source.load(video, np.arange(start, min(start + self.chunk_size, L)))
                yield self.frame_encoder(x.to(device)) if x.dim() == 4 else x.to(device)

        if getattr(self.source, "kind", "pixels") == "merged":  # merged over adjacent frames
            x = self.source.load(video, np.arange(L)).float()
        else:
            x = merge_video_tokens(chunks(), self.k).float().cpu()
        if memo is not None:
            memo[video.path] = x
        return x

    @torch.no_grad()
    def embed_video(self, video, weights: str = "online") -> torch.Tensor:
        x = self.merged_video(video).to(self.device)
        return self.model.embed(x[None], weights)[0].float().cpu()

    def train(self, mode: bool = True) -> "ByovMethod":
        super().train(mode)
        # a frozen backbone stays in eval mode (FrameEncoder.train enforces it as well)
        self.frame_encoder.train(mode and not getattr(self.frame_encoder, "frozen", True))
        return self


# -- building from specs ---------------------------------------------------------------------------
class ModelConfigError(ByovError, ValueError):
    """The config does not fit the backbone (e.g. hidden_dim differs from its token width)."""


def check_backbone_width(hidden_dim: int, frame_encoder) -> None:
    """Raises ModelConfigError when the backbone's token width is not `hidden_dim`."""
    if frame_encoder.dim != hidden_dim:
        raise ModelConfigError(
            f"hidden_dim is {hidden_dim} but the {frame_encoder.name} backbone gives "
            f"{frame_encoder.dim}-d tokens; set --hidden_dim {frame_encoder.dim} (or "
            f"hidden_dim: {frame_encoder.dim} in the yaml)")


def build_byov(spec) -> nn.Module:
    """The trainable BYOV encoder + decoder (+ EMA teacher when target == "ema") of a
    `byov.spec.ByovModelSpec`."""
    from byov.models.byov import BYOV

    return BYOV(in_dim=spec.hidden_dim, embed_dim=spec.embedding_size,
                dec_dim=spec.decoder_embedding_size, depth=spec.n_layers,
                depth_dec=spec.n_layers_dec, n_heads=spec.n_heads, mlp_ratio=spec.mlp_ratio,
                num_frames=spec.num_frames, mask_ratio=spec.mask_ratio, mcm_ratio=spec.mcm_ratio,
                compat_released_decoder=spec.compat_released_decoder, target=spec.target)


def frame_source(spec, frame_encoder=None):
    """Where a `byov.spec.MethodSpec`'s training clips and evaluation videos come from: the h5
    frame cache (`features: fly`, pixels) or the feature cache (`tokens` / `merged`, checked
    against the backbone)."""
    if spec.features.kind != "fly":
        from byov.features.cache import feature_source
        return feature_source(spec.features, frame_encoder)
    from byov.data.datasets import FrameSource
    from byov.models.frame_encoders import input_pipeline
    return FrameSource(spec.data.root, spec.data.dataset,
                       input_pipeline(spec.encoder.backbone, frame_encoder),
                       spec.encoder.input_size, spec.data.frame_cache_dir)


def build_byov_method(spec, pretrained: bool = True, frame_encoder=None) -> ByovMethod:
    """`ByovMethod` (frame encoder, BYOV model, STM K, frame source) of a `byov.spec.MethodSpec`.

    The EMA momentum schedule (target "ema") is set by the training set-up, which knows the
    number of steps; without it `after_optimizer_step` does not update the teacher.

    Raises:
        ModelConfigError: hidden_dim differs from the backbone's token width.
        WeightsNotFoundError: pretrained weights are not available locally.
    """
    from byov.models.backbones import frame_encoder_from_spec

    if frame_encoder is None:
        frame_encoder = frame_encoder_from_spec(spec.encoder, pretrained=pretrained)
    check_backbone_width(spec.byov.hidden_dim, frame_encoder)
    return ByovMethod(frame_encoder, build_byov(spec.byov),
                      spec.features.merge.tokens_to_keep(frame_encoder.num_patches),
                      frame_source(spec, frame_encoder), num_frames=spec.num_frames,
                      pairing=spec.pairing, chunk_size=spec.chunk_size,
                      loss_terms=spec.loss_terms, memo_features=spec.encoder.freeze)

