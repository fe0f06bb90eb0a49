"""VAVA (Liu et al., CVPR 2022) as AE2 runs it: intra-sequence terms plus an optimal-transport
distance with a Gaussian prior and virtual frames, solved by Sinkhorn.

Released: zihuixue/AlignEgoExo models/vava_loss.py. The released P / S priors and the W / far
masks are filled by Python double loops of scalar ops; here they are built as tensors (same
formulas, same float32 steps), batched over the B pairs, and the Sinkhorn runs batched.

Quirk kept by default behind a keyword:
- `released_inter=True`: the inter-sequence term is `cross_entropy(input=[0., 1.],
  target=[best, worst])` on a freshly built tensor (vava_loss.py:167): the constant logits and
  the soft target are in swapped roles and the distances are detached, so the term only adds
  1e-4 * (1.3133 best + 0.3133 worst) to the value and carries no gradient. False uses the
  distances as logits with target [0, 1] (cross_entropy(input=[best, worst], target=[0., 1.]),
  i.e. -log softmax(...)[worst]), with gradient, pushing the best match closer than the worst.
Also as released: the transport term is divided by (N+1)(M+1) inside vava_loss and again by N M
(vava_loss.py:117, 169), and `global_step` sets the prior's mixing weight phi.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# constants fixed in the released code (vava_loss.py:6, 121)
MAX_ITER, LAMBDA1, LAMBDA2, VIRTUAL_DISTANCE, ZETA, DELTA_PRIOR = 20, 1.0, 0.1, 5.0, 0.5, 2.0
LAMBDA3, DELTA_WINDOW, TEMPERATURE, INTER_WEIGHT = 2.0, 15.0, 0.5, 1e-4


def prior_weight(global_step: int) -> float:
    """phi = clip(0.999 ** floor(sqrt(global_step + 1)), 0.001, 0.999) (vava_loss.py:36-39)."""
    phi = 0.999 ** int(np.sqrt(global_step + 1.0))
    return max(min(phi, 0.999), 0.001)


def _gauss(d: torch.Tensor) -> torch.Tensor:
    """N(0, delta^2) density, computed as released (float32 pi)."""
    pi = torch.tensor(np.pi, dtype=torch.float32)
    return torch.exp(-d ** 2.0 / (2.0 * DELTA_PRIOR ** 2)) / (DELTA_PRIOR * torch.sqrt(2.0 * pi))


def priors(min_index: torch.Tensor, n: int, m: int, phi: float
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The transport prior P and the similarity term S of vava_loss, batched.

    Args:
        min_index: (B, n) int, for each frame i of X the index of the closest frame of Y.
        n, m: lengths of X and Y (before adding the virtual frame).
        phi: prior_weight(global_step).
    Returns:
        P, S: (B, n+1, m+1) float32 on the CPU, no gradient. Row / column 0 is the virtual frame.
        Released vava_loss.py:41-81 (1-based i, j there; o_1 = 1 and o_i = min_index[i-2] + 1).
    """
    N, M = n + 1, m + 1
    lambda1 = LAMBDA1 * (n + m)
    mid = np.sqrt(1.0 / (N ** 2) + 1 / (M ** 2))
    i = np.arange(1, N + 1, dtype=np.float64)[:, None]
    j = np.arange(1, M + 1, dtype=np.float64)[None, :]
    # |i/N - j/M| is formed in float64 and rounded to float32 (torch.tensor of a Python float)
    d_prior = torch.from_numpy(np.abs((i / N - j / M).astype(np.float32)))  # (N, M)
    # o_i / M in float32 numpy, then j / M - that in float32 (numpy's promotion of Python floats)
    o = torch.cat([torch.ones(min_index.shape[0], 1),
                   min_index.detach().cpu().to(torch.float32) + 1], dim=1)  # (B, N)
    j32 = torch.from_numpy((j / M).astype(np.float32))
    d_sim = (j32.unsqueeze(0) - (o / M).unsqueeze(-1)).abs()  # (B, N, M)
    p = phi * _gauss(d_prior / mid) + (1.0 - phi) * _gauss(d_sim / mid)
    s = phi * (lambda1 / (d_prior ** 2 + 1.0)) + (1.0 - phi) * (lambda1 / (d_sim ** 2 + 1.0))
    # virtual row and column (not the corner): a fixed distance 1.5 t, t = 2 * 5 / (N + M)
    t = 2.0 * VIRTUAL_DISTANCE / (N + M)
    d_virtual = torch.tensor(t * 1.5 / mid, dtype=torch.float64)
    p_virtual = (torch.exp(-d_virtual ** 2.0 / (2.0 * DELTA_PRIOR ** 2))
                 / (DELTA_PRIOR * torch.sqrt(2.0 * torch.tensor(np.pi, dtype=torch.float32))))
    s_virtual = lambda1 / ((t * 1.5) ** 2 + 1.0)
    border = torch.zeros(N, M, dtype=torch.bool)
    border[0, 1:] = True
    border[1:, 0] = True
    p = torch.where(border, p_virtual.to(torch.float32), p)
    s = torch.where(border, torch.tensor(s_virtual, dtype=torch.float32), s)
    return p, s


def vava_distance(x: torch.Tensor, y: torch.Tensor, global_step: int
                  ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The VAVA optimal-transport distance of each pair, batched.

    Args:
        x: (B, N, D), y: (B, M, D).
        global_step: training step; sets phi (prior_weight).
    Returns:
        dis (B,) = sum_i u_i (U v)_i / ((N+1)(M+1)), U = K * Dm (B, N+1, M+1) (gradients flow
        through Dm in K and U and through the Sinkhorn scalings u, v), and a dict of the
        intermediates (phi, min_index, P, S, D, u, v) for checks.
        Released vava_loss.py:6-118.
    """
    B, n, _ = x.shape
    m = y.shape[1]
    N, M = n + 1, m + 1
    lambda2 = LAMBDA2 * (n * m) / 4.0
    min_index = torch.argmin(torch.mean((x.unsqueeze(2) - y.unsqueeze(1)) ** 2, dim=3), dim=2)
    phi = prior_weight(global_step)
    p, s = priors(min_index, n, m, phi)
    p, s = p.to(x.device), s.to(x.device)
    # squared Euclidean cost; the virtual row / column costs zeta
    xx = torch.sum(x * x, dim=2, keepdim=True)
    yy = torch.sum(y * y, dim=2).unsqueeze(1)
    d = xx + yy - 2.0 * x @ y.transpose(1, 2)
    d = F.pad(F.pad(d, (0, 0, 1, 0), value=ZETA), (1, 0, 0, 0), value=ZETA)
    k = torch.clamp(p * torch.exp((s - d) / lambda2), min=1e-15, max=1.0e20)
    a = torch.ones(B, N, 1, device=x.device, dtype=x.dtype) / N
    b = torch.ones(B, M, 1, device=x.device, dtype=x.dtype) / M
    ainv_k = k / a
    kt = k.transpose(1, 2)
    u = torch.ones(B, N, 1, device=x.device, dtype=x.dtype) / N
    for _ in range(MAX_ITER):
        u = 1.0 / (ainv_k @ (b / (kt @ u)))
    v = b / (kt @ u)
    u = 1.0 / (ainv_k @ v)
    big_u = k * d
    dis = torch.sum(u * (big_u @ v), dim=(1, 2)) / (N * M * 1.0)
    trace = {"phi": phi, "min_index": min_index, "P": p, "S": s, "D": d, "u": u, "v": v}
    return dis, big_u, trace


def _intra(x: torch.Tensor) -> torch.Tensor:
    """(B,) C_x = mean_{i,k} [far * max(2 - Dx, 0) + (1 - far) W Dx] (vava_loss.py:126-156)."""
    n = x.shape[1]
    gap = torch.arange(n, device=x.device).view(-1, 1) - torch.arange(n, device=x.device)
    w = 1.0 / (gap.to(x.dtype) ** 2 + 1.0)
    far = (gap.abs() > DELTA_WINDOW).to(x.dtype)
    dx = torch.mean((x.unsqueeze(2) - x.unsqueeze(1)) ** 2, dim=3)
    return torch.mean(far * torch.clamp(LAMBDA3 - dx, min=0.0) + (1.0 - far) * w * dx, dim=(1, 2))


def vava_loss(embeddings: torch.Tensor, global_step: int = 0, *, released_inter: bool = True,
              return_trace: bool = False):
    """`vava`: the batch mean of 0.5 (C_x + C_y) + vava_dis / (N M) + 1e-4 loss_inter.

    Args:
        embeddings: (B, 2, T, D); X = view 1, Y = view 2 (the inter term needs equal lengths).
        global_step: the training step (the released `--task align` always passes 0 here).
        released_inter: see the module docstring.
        return_trace: also return a dict of per-pair intermediates (C_x, C_y, vava_dis,
            best_distance, worst_distance, loss_inter, overall and vava_distance's).
    Returns:
        (loss, loss2) with loss2 = 0 (and the trace dict when asked). Released vava_loss.py:121-183.
    """
    if embeddings.dim() != 4 or embeddings.shape[1] != 2:
        raise ValueError(f"embeddings must be (B, 2, T, D); got shape {tuple(embeddings.shape)}")
    x, y = embeddings[:, 0], embeddings[:, 1]
    B, n, _ = x.shape
    m = y.shape[1]
    c_x, c_y = _intra(x), _intra(y)
    dis, big_u, trace = vava_distance(x, y, global_step)
    u = big_u[:, 1:, 1:]
    rows = torch.arange(B, device=x.device).unsqueeze(1)

    def match_distance(xi, yi):  # mean((X - Y[xi])^2 + (Y - X[yi])^2) / temperature, per pair
        return torch.mean((x - y[rows, xi]) ** 2 + (y - x[rows, yi]) ** 2, dim=(1, 2)) / TEMPERATURE

    best = match_distance(u.argmax(dim=2), u.argmax(dim=1))
    worst = match_distance(u.argmin(dim=2), u.argmin(dim=1))
    dists = torch.stack([best, worst], dim=1)  # (B, 2)
    target = torch.tensor([0.0, 1.0], device=x.device, dtype=x.dtype)
    if released_inter:  # constant logits [0, 1] against the detached soft target [best, worst]
        inter = -(dists.detach() * F.log_softmax(target, dim=0)).sum(1)
    else:
        inter = -(target * F.log_softmax(dists, dim=1)).sum(1)
    overall = 0.5 * (c_x + c_y) + dis / (n * m) + INTER_WEIGHT * inter
    loss = overall.mean()
    out = (loss, torch.zeros_like(loss))
    if not return_trace:
        return out
    trace.update({"C_x": c_x, "C_y": c_y, "vava_dis": dis, "best_distance": best,
                  "worst_distance": worst, "loss_inter": inter, "overall": overall})
    return out + (trace,)

