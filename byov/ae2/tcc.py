"""Temporal cycle-consistency (TCC) as AE2 runs it: 'l2' similarity, 'regression_mse_var' loss.

Released: zihuixue/AlignEgoExo models/tcc_loss.py (the only branches that run; the others stop
in pdb). Quirk kept by default behind a keyword:
- `symmetric=False`: one cycle per pair, view 1 -> view 2 -> view 1, regressing view 1's
  normalised frame indices (tcc_loss.py:117-124); no cycles across pairs of the batch. True adds
  the view 2 -> view 1 -> view 2 cycle (regressing view 2's indices) and averages the two.
"""
from __future__ import annotations

import torch

VARIANCE_LAMBDA = 0.001  # tcc_loss.py:133


def scaled_l2_similarity(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """(G, n, m): -max(|a_i|^2 + |b_j|^2 - 2 a_i.b_j, 0) / D / temperature for a (G, n, D),
    b (G, m, D). Released tcc_loss.py:61-98."""
    dist = torch.matmul(a, b.transpose(1, 2)) * -2 + (a ** 2).sum(-1, keepdim=True) \
        + (b ** 2).sum(-1).unsqueeze(1)
    return -1.0 * dist.clamp(min=0.0) / a.shape[-1] / temperature


def _cycle(e1: torch.Tensor, e2: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-row regression losses (G*T,) of the cycle e1 -> e2 -> e1 with targets t (G, T)."""
    alpha = torch.softmax(scaled_l2_similarity(e1, e2, temperature), dim=-1)
    logits = scaled_l2_similarity(alpha @ e2, e1, temperature)  # (G, T, T)
    beta = torch.softmax(logits, dim=-1)
    tt = t.unsqueeze(1)  # every row regresses onto the same targets
    mu = (tt * beta).sum(-1)
    var = ((tt - mu.unsqueeze(-1)) ** 2 * beta).sum(-1)
    log_var = torch.log(var)
    err = (t - mu) ** 2  # the true time of row i is t_i (one-hot labels)
    return (torch.exp(-log_var) * err + VARIANCE_LAMBDA * log_var).reshape(-1)


def tcc_loss(embeddings: torch.Tensor, steps: torch.Tensor, seq_lens: torch.Tensor, *,
             temperature: float = 0.1, symmetric: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """TCC regression loss with variance ('regression_mse_var'), and a zero `loss2`.

    Targets are each view's sampled frame indices divided by its video length. Per row i of the
    cycle logits L = sim(alpha E2, E1): beta = softmax(L_i), mu_i = sum beta t, var_i =
    sum beta (t - mu_i)^2; loss = mean over B*T rows of exp(-log var_i)(t_i - mu_i)^2
    + 0.001 log var_i.

    Args:
        embeddings: (B, 2, T, D).
        steps: (B, 2, T) sampled frame indices; seq_lens: (B, 2) video lengths (frames).
        temperature: the released tcc_temp (0.1).
        symmetric: see the module docstring (False = released).
    Returns:
        (loss, loss2), 0-d. Released tcc_loss.py:101-135.
    """
    if embeddings.dim() != 4 or embeddings.shape[1] != 2:
        raise ValueError(f"embeddings must be (B, 2, T, D); got shape {tuple(embeddings.shape)}")
    B, _, T, _ = embeddings.shape
    if steps is None or seq_lens is None or tuple(steps.shape) != (B, 2, T) \
            or tuple(seq_lens.shape) != (B, 2):
        raise ValueError(f"tcc needs steps (B={B}, 2, T={T}) and seq_lens (B, 2); got "
                         f"{None if steps is None else tuple(steps.shape)} and "
                         f"{None if seq_lens is None else tuple(seq_lens.shape)}")
    dev = embeddings.device
    # int64 / int64 true division gives torch's default float dtype, as released (tcc_loss.py:8)
    t = (steps.to(dev) / seq_lens.to(dev).unsqueeze(-1)).to(embeddings.dtype)
    e1, e2 = embeddings[:, 0], embeddings[:, 1]
    rows = _cycle(e1, e2, t[:, 0], temperature)
    if symmetric:
        rows = torch.cat([rows, _cycle(e2, e1, t[:, 1], temperature)])
    loss = rows.mean()
    return loss, torch.zeros_like(loss)
