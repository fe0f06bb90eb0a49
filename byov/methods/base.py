"""What a training method is to the rest of byov: its model, its sampler, its loss, its embedding.

A method is an `nn.Module` (the module DDP wraps). The training loop and run assembly
(`byov.training`), checkpoints and the downstream evaluation (`byov.downstream`) use only the
interface below, so BYOV and AE2's alignment objectives share one loop, one checkpoint format and
one evaluation. What differs between methods before a model exists (which backbone to build up
front, whether pixels are read, which schedules apply) are the class-level hooks at the end.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn as nn


class Method(nn.Module):
    """Base class of a training method.

    Attributes:
        name: the `--method` value.
        loss_keys: the scalar entries of `forward`'s output that are logged ("loss" first; the
            loss that is back-propagated).
        checkpoint_parts: the checkpoint entries `state_entries` writes (e.g. encoder, decoder).
    """

    name: str = ""
    loss_keys: tuple[str, ...] = ("loss",)

    def forward(self, batch: Mapping[str, torch.Tensor], entropy: Sequence[int]) -> dict:
        """One training (or validation) step's loss terms.

        Args:
            batch: a collated batch of the method's `pair_dataset`, on the model's device.
            entropy: integers that seed every random draw of the step (mask noise, cyclic
                halves), e.g. (seed, stream, step, rank): a resumed run redraws exactly what the
                interrupted one would have drawn.
        Returns:
            dict with at least the `loss_keys` as 0-d tensors.
        """
        raise NotImplementedError

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates (teachers and frozen backbones excluded)."""
        raise NotImplementedError

    def after_optimizer_step(self, step: int) -> dict:
        """Called after optimizer step `step` (0-based, global); returns scalars to log."""
        return {}

    def pair_dataset(self, videos: Sequence, seed: int, length: int):
        """The training sampler: a map-style dataset of `length` items; item i of epoch e is a
        pure function of (seed, e, i) (`set_epoch(e)` selects the epoch)."""
        raise NotImplementedError

    def state_entries(self) -> dict[str, dict]:
        """Checkpoint entries: {"encoder": state_dict, ...} (plain tensors only)."""
        raise NotImplementedError

    def load_state_entries(self, ckpt: Mapping, where: str = "checkpoint") -> None:
        """Load `state_entries` back, strictly; raises CheckpointError naming what does not fit."""
        raise NotImplementedError

    def embed_video(self, video, weights: str = "online") -> torch.Tensor:
        """Per-frame embeddings of a whole video for the downstream tasks: (L, D) float32, CPU."""
        raise NotImplementedError

    def configure_schedules(self, total_steps: int, schedule) -> None:
        """Per-step schedules of the method itself (e.g. BYOV's EMA momentum), from the run's
        `byov.spec.ScheduleSpec` and its number of optimizer steps. Default: none."""

    # -- class-level hooks: what the run assembly and the evaluation ask before building -------
    @classmethod
    def frame_encoder_spec(cls, spec):
        """The `FrameEncoderSpec` of a shared frozen backbone to build before the data (it
        extracts a missing feature cache), or None when the method builds its own model."""
        return None

    @classmethod
    def reads_frames(cls, spec) -> bool:
        """Whether training and embedding read pixels (h5 frame caches) rather than a feature
        cache, for the `byov.spec.MethodSpec` `spec`."""
        return True

    @classmethod
    def needs_pretrained_weights(cls, ckpt: Mapping) -> bool:
        """Whether rebuilding the model of checkpoint `ckpt` needs the backbone's pretrained
        weights (parts the checkpoint does not hold). Default: no, the checkpoint is whole."""
        return False

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")
