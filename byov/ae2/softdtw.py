"""AE2's soft-DTW ("smoothDTW" with D2TW cost normalisation and the probability relaxation).

Reproduces `smoothDTW(..., distance_type='cosine', softning='dtw_prob')` of the released AE2 code
(zihuixue/AlignEgoExo, models/dtw_loss.py:37-82), the only setting its training code reaches:

1. similarity `S = X Y^T` (the released 'cosine' is a plain dot product; `l2_normalize=True` makes
   it a real cosine similarity),
2. cost `C = -log_softmax(S / gamma_f, dim=0)` (for each frame j of Y, a distribution over X),
3. table `R` of shape (n+1, m+1): `R[0,0] = 0`, the rest of row 0 / column 0 is the float32 max
   (`-max / 0.1` is `-inf` in float32, so border neighbours get weight 0), and for i, j >= 1 with
   `r = (R[i,j-1], R[i-1,j-1], R[i-1,j])` (left, diagonal, up):
   `R[i,j] = C[i-1,j-1] + sum_k softmax(-r / gamma_s)_k * r_k`,
   i.e. the expectation of the neighbours under a soft-min distribution (not -gamma logsumexp).
   Gradients flow through the values and the weights, as in the released autograd graph.

The released code clones the whole table once per cell (O(n^2 m^2), on the CPU). Here the table is
filled one anti-diagonal at a time (all cells with the same i + j are independent), batched over
pairs, on the inputs' device and dtype, with a hand-written backward pass that walks the
diagonals in reverse (autograd over ~n+m small steps instead of n*m cell graphs). Border neighbours
get weight exactly 0 and contribute 0 * value = 0, as in the released float32 code.

Float32 note: table values reach 10^2..10^3 and the weights are a softmax of their differences
/ 0.1, so float32 gradients carry cancellation error of ~1e-4 x max|grad| against a float64
evaluation; the released code has the same error. The same formulation (softmax over the three
neighbours, then sum p * r) and a backward that forms the same float32 products keep this
implementation within ~1e-4 x max|grad| of the released one (0 to 1.1e-4 on the AE2 parity
fixture).
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F

GAMMA = 0.1  # gamma_s = gamma_f = 0.1 in every released call (models/dtw_loss.py:228-232)


def dtw_cost(x: torch.Tensor, y: torch.Tensor, gamma_f: float = GAMMA,
             l2_normalize: bool = False) -> torch.Tensor:
    """D2TW-normalised cost matrices, batched.

    Args:
        x: (G, n, D) and y: (G, m, D) embeddings.
        gamma_f: temperature of the column-wise log-softmax.
        l2_normalize: False (released): dot-product similarity; True: cosine similarity.

    Returns:
        (G, n, m) cost `-log_softmax(x y^T / gamma_f, dim=1)` (dim 0 of each matrix), released
        models/dtw_loss.py:40-47.
    """
    if l2_normalize:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    sim = torch.matmul(x, y.transpose(-1, -2))
    return -F.log_softmax(sim / gamma_f, dim=-2)


@functools.lru_cache(maxsize=64)
def _diagonal_plan(n: int, m: int) -> tuple[tuple, tuple, torch.Tensor, torch.Tensor]:
    """Anti-diagonals k = i + j = 2..n+m of the 1-based table: first row lo_k and length of each,
    the flat cost indices (i-1)*m + (j-1) of their cells concatenated over k, and for every table
    cell (i, j) its position k*(n+1) + i in the (n+m+1, n+1) diagonal layout (row-major)."""
    los, lens, idx = [], [], []
    for k in range(2, n + m + 1):
        lo, hi = max(1, k - m), min(n, k - 1)
        rows = torch.arange(lo, hi + 1)
        los.append(lo)
        lens.append(hi - lo + 1)
        idx.append((rows - 1) * m + (k - rows - 1))
    ii = torch.arange(n + 1).view(n + 1, 1)
    jj = torch.arange(m + 1).view(1, m + 1)
    cell = ((ii + jj) * (n + 1) + ii).reshape(-1)
    return tuple(los), tuple(lens), torch.cat(idx), cell


def _check(cost: torch.Tensor) -> tuple[int, int, int]:
    if cost.dim() != 3:
        raise ValueError(f"cost must be (G, n, m); got shape {tuple(cost.shape)}")
    G, n, m = cost.shape
    if n < 1 or m < 1:
        raise ValueError(f"soft-DTW needs non-empty sequences; got n = {n}, m = {m}")
    if cost.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"soft-DTW runs in float32 or float64; got {cost.dtype}")
    return G, n, m


# Stand-in for the border's "infinity" inside the wavefront: large enough that its soft-min weight
# is exactly 0 (as the released float32 max is), small enough that grad * value stays finite, so
# 0 * value never turns into NaN in the backward pass.
_BIG = 1e30


class _SoftDTWTable(torch.autograd.Function):
    """cost (G, n, m) -> table (G, n+1, m+1), with a hand-written wavefront backward.

    Forward and backward each walk the anti-diagonals (cells with equal i + j are independent).
    The backward applies, per cell with upstream grad g and weights p = softmax(-r / gamma):
    d/dc = g, d/dr = g p + (-1/gamma) p (g r - sum_l p_l g r_l): the same float32 products,
    in the same order, that autograd forms for the released per-cell graph.
    """

    @staticmethod
    def forward(ctx, cost, gamma):
        G, n, m = cost.shape
        los, lens, flat_idx, cell = _diagonal_plan(n, m)
        dev = cost.device
        flat_idx, cell = flat_idx.to(dev), cell.to(dev)
        cdiag = cost.reshape(G, n * m).index_select(1, flat_idx).split(lens, dim=1)
        w = n + 1  # diagonal k, row i lives at flat position k * w + i
        diag = torch.full((G, (n + m + 1) * w), _BIG, device=dev, dtype=cost.dtype)
        diag[:, 0] = 0.0  # R[0, 0]
        probs, neigh = [], []
        for k, (lo, c) in enumerate(zip(los, cdiag), start=2):
            # left R[i, j-1] at a, up R[i-1, j] at a - 1, diagonal R[i-1, j-1] at b
            a, b = (k - 1) * w + lo, (k - 2) * w + lo - 1
            ln = c.shape[1]
            # neighbours of cells (i, k - i), i = lo..lo+ln-1: left, diagonal R[i-1, j-1], up;
            # border neighbours hold _BIG and get weight exactly 0 (and 0 * _BIG = 0)
            r = torch.stack((diag[:, a:a + ln], diag[:, b:b + ln], diag[:, a - 1:a - 1 + ln]),
                            dim=-1)
            p = torch.softmax(r / -gamma, dim=-1)  # bit-identical to the released (-r) / gamma
            torch.add(c, (p * r).sum(-1), out=diag[:, k * w + lo:k * w + lo + ln])
            probs.append(p)
            neigh.append(r)
        table = diag.index_select(1, cell).reshape(G, n + 1, m + 1)
        big = torch.finfo(cost.dtype).max  # the released border value
        table[:, 0, 1:] = big
        table[:, 1:, 0] = big
        ctx.plan = (los, flat_idx, cell, gamma, G, n, m)
        ctx.probs, ctx.neigh = probs, neigh
        return table

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_table):
        los, flat_idx, cell, gamma, G, n, m = ctx.plan
        probs, neigh = ctx.probs, ctx.neigh
        w = n + 1
        gdiag = torch.zeros(G, (n + m + 1) * w, device=g_table.device, dtype=g_table.dtype)
        gdiag[:, cell] = g_table.reshape(G, -1)
        gcost = []
        for k in range(n + m, 1, -1):
            lo, p, r = los[k - 2], probs[k - 2], neigh[k - 2]
            ln = p.shape[1]
            a, b = (k - 1) * w + lo, (k - 2) * w + lo - 1
            g = gdiag[:, k * w + lo:k * w + lo + ln]  # complete: all readers of diagonal k are done
            gcost.append(g)
            g = g.unsqueeze(-1)
            gp = g * r  # d/dp of sum p * r
            gz = p * (gp - (gp * p).sum(-1, keepdim=True))  # softmax backward
            g_left, g_diag, g_up = (g * p - gz / gamma).unbind(-1)  # values + weights' -r/gamma
            gdiag[:, a:a + ln] += g_left
            gdiag[:, b:b + ln] += g_diag
            gdiag[:, a - 1:a - 1 + ln] += g_up
        out = torch.empty(G, n * m, device=g_table.device, dtype=g_table.dtype)
        out[:, flat_idx] = torch.cat(gcost[::-1], dim=1)
        return out.view(G, n, m), None


def soft_dtw_table(cost: torch.Tensor, gamma_s: float = GAMMA) -> torch.Tensor:
    """The full soft-DTW table of each cost matrix (probability relaxation).

    Args:
        cost: (G, n, m) float32 / float64 cost matrices on any device (grads flow back to it).
        gamma_s: temperature of the soft-min weights over (left, diagonal, up).

    Returns:
        (G, n+1, m+1) tables; `R[:, 0, 0] = 0` and the rest of row 0 and column 0 hold the
        dtype's max, as the released float32 table. The alignment cost is `R[:, n, m]`.
        Released models/dtw_loss.py:49-82.

    Raises:
        ValueError: cost is not 3-D, a sequence is empty, or the dtype is not float32/64.
    """
    _check(cost)
    return _SoftDTWTable.apply(cost, float(gamma_s))


def soft_dtw_corner(cost: torch.Tensor, gamma_s: float = GAMMA) -> torch.Tensor:
    """(G,) alignment costs `R[:, n, m]` of (G, n, m) cost matrices (see soft_dtw_table)."""
    return soft_dtw_table(cost, gamma_s)[:, -1, -1]


def soft_dtw(x: torch.Tensor, y: torch.Tensor, gamma_s: float = GAMMA, gamma_f: float = GAMMA,
             l2_normalize: bool = False, full_table: bool = False) -> torch.Tensor:
    """Soft-DTW of batched sequence pairs, released `smoothDTW` semantics.

    Args:
        x: (G, n, D); y: (G, m, D) embeddings (same device and dtype).
        full_table: return the (G, n+1, m+1) tables instead of the (G,) corners `R[n, m]`.
        l2_normalize: see dtw_cost.
    """
    cost = dtw_cost(x, y, gamma_f, l2_normalize)
    return soft_dtw_table(cost, gamma_s) if full_table else soft_dtw_corner(cost, gamma_s)


def soft_dtw_ragged(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor],
                    gamma_s: float = GAMMA, gamma_f: float = GAMMA,
                    l2_normalize: bool = False) -> torch.Tensor:
    """(P,) alignment costs of P pairs (xs[p] (n_p, D), ys[p] (m_p, D)) of mixed lengths.

    Each pair's cost matrix is normalised over its own frames (pairs of equal shape are batched),
    then all matrices are zero-padded to the largest (n, m) and run as one wavefront: a cell only
    reads cells above and to its left, so padding never changes R[n_p, m_p].
    """
    if len(xs) != len(ys) or not xs:
        raise ValueError(f"need as many first as second sequences, at least one; got {len(xs)} "
                         f"and {len(ys)}")
    groups: dict[tuple[int, int], list[int]] = {}
    for p, (x, y) in enumerate(zip(xs, ys)):
        groups.setdefault((x.shape[0], y.shape[0]), []).append(p)
    n_max = max(n for n, _ in groups)
    m_max = max(m for _, m in groups)
    costs, order = [], []
    for (n, m), members in groups.items():
        cost = dtw_cost(torch.stack([xs[p] for p in members]),
                        torch.stack([ys[p] for p in members]), gamma_f, l2_normalize)
        costs.append(F.pad(cost, (0, m_max - m, 0, n_max - n)))
        order += members
    table = soft_dtw_table(torch.cat(costs), gamma_s)
    rows = torch.tensor([xs[p].shape[0] for p in order], device=table.device)
    cols = torch.tensor([ys[p].shape[0] for p in order], device=table.device)
    corners = table[torch.arange(len(order), device=table.device), rows, cols]
    inverse = torch.empty(len(order), dtype=torch.long, device=table.device)
    inverse[torch.tensor(order, device=table.device)] = torch.arange(len(order),
                                                                     device=table.device)
    return corners[inverse]
