"""AE2's three soft-DTW objectives: `dtw`, `dtw_consistency` and `dtw_contrastive` (AE2's own).

Released: zihuixue/AlignEgoExo models/dtw_loss.py (compute_dtw_loss and the functions it calls).
All take embeddings (B, 2, T, D) (view 1, view 2 of each pair) and return `(loss, loss2)` like
the released `AlignmentLoss.forward`; `loss2` is a zero tensor except for dtw_contrastive.

Released behaviour kept by default, behind keywords:
- `l2_normalize=False`: the released 'cosine' similarity is a plain dot product of the
  (unnormalised) embeddings; True uses a real cosine similarity.
- dtw_contrastive `first_half` / `generator`: the released code picks the half of `pos_steps` of a
  cyclic action with Python's global `random.random() < 0.5`; here the choice is passed in, or drawn
  from the generator given (torch's default generator when none is given).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from byov.ae2.softdtw import GAMMA, dtw_cost, soft_dtw, soft_dtw_ragged, soft_dtw_table

LABEL_SMOOTHING = 0.1  # released compute_dtw_loss default (models/dtw_loss.py:228)
CONSISTENCY_SDTW_WEIGHT = 0.1  # weight of each direction's soft-DTW cost (dtw_loss.py:166)


def _check_embeddings(embeddings: torch.Tensor) -> None:
    if embeddings.dim() != 4 or embeddings.shape[1] != 2:
        raise ValueError(f"embeddings must be (B, 2, T, D); got shape {tuple(embeddings.shape)}")


def dtw_loss(embeddings: torch.Tensor, *, scale_factor: float = 0.01,
             l2_normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`dtw`: `scale_factor * mean_b sdtw(E1_b, E2_b)` and a zero `loss2`.

    Args:
        embeddings: (B, 2, T, D).
        scale_factor: the released `dtw_scale_factor` (0.01).
    Returns:
        (loss, loss2), 0-d tensors. Released models/dtw_loss.py:85-105, 236-242.
    """
    _check_embeddings(embeddings)
    loss = scale_factor * soft_dtw(embeddings[:, 0], embeddings[:, 1],
                                   l2_normalize=l2_normalize).mean()
    return loss, torch.zeros_like(loss)


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           label_smoothing: float) -> torch.Tensor:
    """Mean over rows of -sum_c target_c log_softmax(logits)_c, target = (1 - ls) * labels + ls / C.

    logits, labels: (N, C). Released models/dtw_loss.py:8-17 (labels carry no gradient).
    """
    smooth = (1 - label_smoothing) * labels.detach() + label_smoothing / logits.shape[1]
    return -(smooth * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def dtw_consistency_loss(embeddings: torch.Tensor, *, scale_factor: float = 0.01,
                         l2_normalize: bool = False,
                         label_smoothing: float = LABEL_SMOOTHING
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """`dtw_consistency`: soft-DTW cycle-consistency cross-entropy plus both soft-DTW costs.

    Per pair: tables R12 = table(E1, E2) and R21 = table(E2, E1); A = softmax(-R12[1:, 1:]) and
    B' = softmax(-R21[1:, 1:]) over dim 0; logits (A B')^T (T x T) with identity targets. The
    logits of all pairs are concatenated (B*T, T) into one label-smoothed cross-entropy CE, and
    `loss = scale * (CE + 0.1 mean_b R12_b[n, m] + 0.1 mean_b R21_b[n, m])`, `loss2 = 0`.

    Args:
        embeddings: (B, 2, T, D).
    Returns:
        (loss, loss2). Released models/dtw_loss.py:107-169, 244-253.
    """
    _check_embeddings(embeddings)
    B, _, T, _ = embeddings.shape
    e1, e2 = embeddings[:, 0], embeddings[:, 1]
    # both directions of every pair in one batch of 2B tables
    cost = dtw_cost(torch.cat([e1, e2]), torch.cat([e2, e1]), GAMMA, l2_normalize)
    tables = soft_dtw_table(cost)
    r12, r21 = tables[:B], tables[B:]
    a = torch.softmax(-r12[:, 1:, 1:], dim=1)
    b = torch.softmax(-r21[:, 1:, 1:], dim=1)
    logits = torch.matmul(a, b).transpose(1, 2).reshape(B * T, T)
    labels = torch.eye(T, device=embeddings.device, dtype=embeddings.dtype).repeat(B, 1)
    loss_con = smoothed_cross_entropy(logits, labels, label_smoothing)
    loss = loss_con + CONSISTENCY_SDTW_WEIGHT * r12[:, -1, -1].mean() \
        + CONSISTENCY_SDTW_WEIGHT * r21[:, -1, -1].mean()
    loss = scale_factor * loss
    return loss, torch.zeros_like(loss)


def draw_first_half(batch_size: int, generator=None) -> torch.Tensor:
    """(B,) bool: which half of `pos_steps` each cyclic pair aligns (True = the first half).

    Each pair draws u ~ U[0, 1) and takes the first half when u < 0.5, as the released
    `random.random() < 0.5` (models/dtw_loss.py:194). `generator`: a torch.Generator, a
    numpy Generator / RandomState, or None (torch's default generator).
    """
    if isinstance(generator, (np.random.Generator, np.random.RandomState)):
        return torch.from_numpy(generator.random(batch_size) < 0.5)
    return torch.rand(batch_size, generator=generator, dtype=torch.float64) < 0.5


def _positive_subsets(pos_steps: torch.Tensor, cyclic: bool, first_half) -> list[tuple]:
    """Per pair b: (view-1 indices, view-2 indices) into 0..T-1 of its positive subset."""
    B, _, S = pos_steps.shape
    if not cyclic:
        return [(pos_steps[b, 0], pos_steps[b, 1]) for b in range(B)]
    half = S // 2  # int(S / 2): with odd S the first half is the shorter one
    first = torch.as_tensor(first_half, dtype=torch.bool).reshape(-1).tolist()
    if len(first) != B:
        raise ValueError(f"first_half must hold one bool per pair ({B}); got {len(first)}")
    return [(pos_steps[b, 0, :half], pos_steps[b, 1, :half]) if first[b]
            else (pos_steps[b, 0, half:], pos_steps[b, 1, half:]) for b in range(B)]


def dtw_contrastive_loss(embeddings: torch.Tensor, pos_steps: torch.Tensor, *,
                         scale_factor: float = 0.01, dtw_ratio: float = 1.0,
                         dtw_beta: float = 0.0, cyclic: bool = False, first_half=None,
                         generator=None, l2_normalize: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """`dtw_contrastive`, AE2's objective: soft-DTW of the full clips and of a positive subset,
    plus a hinge against the subset with view 2 reversed in time.

    Per pair b, with s = scale_factor: f_b = s sdtw(E1_b, E2_b); the positive subset
    X = E1_b[idx1], Y = E2_b[idx2] (all of pos_steps, or for a cyclic action its first S//2 or
    remaining indices); a_b = s sdtw(X, Y), r_b = s sdtw(X, flip(Y));
    h_b = max(a_b - r_b + beta, 0).
    loss1 = mean of the 2B values [f_1, a_1, f_2, a_2, ...], loss2 = mean_b h_b.

    Args:
        embeddings: (B, 2, T, D).
        pos_steps: (B, 2, S) int64 indices into 0..T-1 (sorted), one row per view.
        scale_factor, dtw_ratio, dtw_beta: the released dtw_scale_factor, dtw_ratio, dtw_beta.
        cyclic: the released `cyclic` (True for every dataset but break_eggs / tennis_forehand).
        first_half: cyclic only: (B,) bool, True = align the first half of pos_steps. When None
            it is drawn with draw_first_half(B, generator).
        generator: see draw_first_half; used only when cyclic and first_half is None.
    Returns:
        (loss1 + dtw_ratio * loss2, dtw_ratio * loss2). Released models/dtw_loss.py:172-221.
    Raises:
        ValueError: pos_steps missing or of the wrong shape.
    """
    _check_embeddings(embeddings)
    B, _, T, _ = embeddings.shape
    if pos_steps is None or pos_steps.dim() != 3 or pos_steps.shape[:2] != (B, 2):
        got = None if pos_steps is None else tuple(pos_steps.shape)
        raise ValueError(f"dtw_contrastive needs pos_steps of shape (B={B}, 2, S); got {got}")
    pos_steps = pos_steps.to(embeddings.device)
    if cyclic and first_half is None:
        first_half = draw_first_half(B, generator)
    e1, e2 = embeddings[:, 0], embeddings[:, 1]
    subsets = _positive_subsets(pos_steps, cyclic, first_half)
    xs = [e1[b, i1] for b, (i1, _) in enumerate(subsets)]
    ys = [e2[b, i2] for b, (_, i2) in enumerate(subsets)]
    # full clips, positives and negatives (view 2 reversed) of all pairs in one wavefront
    costs = scale_factor * soft_dtw_ragged(list(e1.unbind(0)) + xs + xs,
                                           list(e2.unbind(0)) + ys + [y.flip(0) for y in ys],
                                           l2_normalize=l2_normalize)
    full, pos, neg = costs[:B], costs[B:2 * B], costs[2 * B:]
    diff = pos - neg + dtw_beta
    hinge = torch.where(diff < 0, torch.zeros_like(diff), diff)  # Python max(diff, 0)
    loss1 = torch.stack([full, pos], dim=1).reshape(-1).mean()
    loss2 = dtw_ratio * hinge.mean()
    return loss1 + loss2, loss2
