"""One entry point for AE2's five alignment objectives (the released `AlignmentLoss`).

`alignment_loss(objective, embeddings, steps, seq_lens, pos_steps, global_step, **settings)`
returns `(loss, loss2)` like zihuixue/AlignEgoExo models/loss.py:14-27: `loss` is what training
backpropagates, `loss2` is a zero tensor except for dtw_contrastive (dtw_ratio x mean hinge).

Released quirks that change numbers, reproduced by default (keyword = default):
- `dtw_l2_normalize=False`: the DTW objectives' 'cosine' similarity is a plain dot product.
- `tcc_symmetric=False`: TCC runs one cycle per pair, view 1 -> view 2 -> view 1.
- `vava_released_inter=True`: vava's inter term has swapped cross-entropy arguments and is
  detached (no gradient).
- dtw_contrastive's cyclic half comes from `first_half` or `generator` (the released code uses
  Python's global `random`); vava's phi uses `global_step` (the released `--task align` passes 0).
Differences that do not change numbers: tables live on the inputs' device (released: CPU), and
the objective is named exactly (released: substring of `--loss`, see objective_from_flag).
"""
from __future__ import annotations

import contextlib

import torch

from byov.ae2.dtw import dtw_consistency_loss, dtw_contrastive_loss, dtw_loss
from byov.ae2.tcc import tcc_loss
from byov.ae2.vava import vava_loss

OBJECTIVES = ("tcc", "dtw", "dtw_consistency", "dtw_contrastive", "vava")
NON_CYCLIC_DATASETS = ("break_eggs", "tennis_forehand")


def objective_from_flag(loss_flag: str) -> str:
    """The objective the released `--loss` value selects: 'tcc' if it contains 'tcc', else the
    DTW variant it names if it contains 'dtw', else 'vava' if it contains 'vava'
    (models/loss.py:15-27)."""
    if "tcc" in loss_flag:
        return "tcc"
    if "dtw" in loss_flag:
        if loss_flag not in ("dtw", "dtw_consistency", "dtw_contrastive"):
            raise ValueError(f"released compute_dtw_loss has no alignment_type {loss_flag!r}")
        return loss_flag
    if "vava" in loss_flag:
        return "vava"
    raise ValueError(f"unknown AE2 loss {loss_flag!r}; choose one of {OBJECTIVES}")


def is_cyclic(dataset: str) -> bool:
    """The released rule (models/loss.py:12): every dataset but break_eggs and tennis_forehand."""
    return dataset not in NON_CYCLIC_DATASETS


def alignment_loss(objective: str, embeddings: torch.Tensor, steps: torch.Tensor | None = None,
                   seq_lens: torch.Tensor | None = None, pos_steps: torch.Tensor | None = None,
                   global_step: int = 0, *, scale_factor: float = 0.01, tcc_temp: float = 0.1,
                   dtw_ratio: float = 1.0, dtw_beta: float = 0.0, cyclic: bool = False,
                   first_half=None, generator=None, dtw_l2_normalize: bool = False,
                   tcc_symmetric: bool = False, vava_released_inter: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute one AE2 objective on a batch of clip pairs.

    Args:
        objective: one of OBJECTIVES.
        embeddings: (B, 2, T, D), view 1 and view 2 of each pair.
        steps: (B, 2, T) int64 sampled frame indices; seq_lens: (B, 2) video lengths. tcc only.
        pos_steps: (B, 2, S) int64 indices into 0..T-1. dtw_contrastive only.
        global_step: training step. vava only (its prior weight).
        scale_factor: dtw_scale_factor (dtw, dtw_consistency, dtw_contrastive).
        tcc_temp: TCC temperature. dtw_ratio, dtw_beta, cyclic, first_half, generator:
            dtw_contrastive (see dtw.dtw_contrastive_loss). Quirk switches: module docstring.
    Returns:
        (loss, loss2), 0-d tensors on the embeddings' device.
    Raises:
        ValueError: unknown objective or missing / misshaped inputs for it.

    Under autocast (the bf16 GPU default) the objective itself runs in float32 with autocast off:
    soft-DTW refuses half precision (its log-sum-exp recursion loses the small cost
    differences), and the similarity matmuls would otherwise be cast down. The embedder before
    it still runs in bf16. Without autocast nothing changes (fp32 in, fp32 out).
    """
    with _autocast_off(embeddings.device.type):
        return _alignment_loss(objective, embeddings.float(), steps, seq_lens, pos_steps,
                               global_step, scale_factor=scale_factor, tcc_temp=tcc_temp,
                               dtw_ratio=dtw_ratio, dtw_beta=dtw_beta, cyclic=cyclic,
                               first_half=first_half, generator=generator,
                               dtw_l2_normalize=dtw_l2_normalize, tcc_symmetric=tcc_symmetric,
                               vava_released_inter=vava_released_inter)


def _autocast_off(device_type: str):
    """Autocast switched off for `device_type` while it is on; nothing otherwise (also for
    device types autocast does not know, e.g. meta)."""
    try:
        on = torch.is_autocast_enabled(device_type)
    except RuntimeError:
        on = False
    return torch.autocast(device_type, enabled=False) if on else contextlib.nullcontext()


def _alignment_loss(objective, embeddings, steps, seq_lens, pos_steps, global_step, *,
                    scale_factor, tcc_temp, dtw_ratio, dtw_beta, cyclic, first_half, generator,
                    dtw_l2_normalize, tcc_symmetric, vava_released_inter):
    if objective == "tcc":
        return tcc_loss(embeddings, steps, seq_lens, temperature=tcc_temp, symmetric=tcc_symmetric)
    if objective == "dtw":
        return dtw_loss(embeddings, scale_factor=scale_factor, l2_normalize=dtw_l2_normalize)
    if objective == "dtw_consistency":
        return dtw_consistency_loss(embeddings, scale_factor=scale_factor,
                                    l2_normalize=dtw_l2_normalize)
    if objective == "dtw_contrastive":
        return dtw_contrastive_loss(embeddings, pos_steps, scale_factor=scale_factor,
                                    dtw_ratio=dtw_ratio, dtw_beta=dtw_beta, cyclic=cyclic,
                                    first_half=first_half, generator=generator,
                                    l2_normalize=dtw_l2_normalize)
    if objective == "vava":
        return vava_loss(embeddings, global_step, released_inter=vava_released_inter)
    raise ValueError(f"unknown AE2 objective {objective!r}; choose one of {OBJECTIVES}")


def settings_from_released(args: dict) -> dict:
    """alignment_loss keywords from the released argparse values (a dict with tcc_temp,
    dtw_scale_factor, dtw_ratio, dtw_beta and dataset or cyclic), e.g. a parity fixture's
    `settings`."""
    cyclic = args["cyclic"] if "cyclic" in args else is_cyclic(args["dataset"])
    return {"scale_factor": float(args["dtw_scale_factor"]), "tcc_temp": float(args["tcc_temp"]),
            "dtw_ratio": float(args["dtw_ratio"]), "dtw_beta": float(args["dtw_beta"]),
            "cyclic": bool(cyclic)}
