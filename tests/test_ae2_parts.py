"""byov.ae2 pieces on their own: the soft-DTW wavefront against a per-cell loop, the objectives'
switches and inputs, the sampler, and the embedder's weights handling."""
import math

import numpy as np
import pytest
import torch

from byov.ae2 import dtw, sampling
from byov.ae2.embedder import (AE2Embedder, AE2WeightsError, RELEASED_WEIGHTS_FILE,
                               convert_released_state_dict, load_imagenet_trunk_state)
from byov.ae2.losses import OBJECTIVES, alignment_loss, is_cyclic, objective_from_flag
from byov.ae2.softdtw import dtw_cost, soft_dtw, soft_dtw_ragged, soft_dtw_table
from byov.errors import ByovError
from byov.models.frame_encoders import WeightsNotFoundError


# -- soft-DTW ------------------------------------------------------------------------------------
def naive_table(cost: torch.Tensor, gamma: float = 0.1) -> list:
    """The recursion cell by cell, float64 scalars (the spec, written as plainly as possible)."""
    n, m = cost.shape
    big = torch.tensor(torch.finfo(torch.float32).max, dtype=torch.float64)
    R = [[None] * (m + 1) for _ in range(n + 1)]
    R[0][0] = torch.tensor(0.0, dtype=torch.float64)
    for j in range(1, m + 1):
        R[0][j] = big
    for i in range(1, n + 1):
        R[i][0] = big
        for j in range(1, m + 1):
            r = [R[i][j - 1], R[i - 1][j - 1], R[i - 1][j]]
            z = [-v / gamma for v in r]
            zmax = max(float(v.detach()) for v in z)
            w = [torch.exp(v - zmax) for v in z]
            tot = sum(w)
            R[i][j] = cost[i - 1, j - 1] + sum(wk / tot * rk for wk, rk in zip(w, r))
    return R


def test_wavefront_matches_per_cell_loop_float64():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(7, 3, generator=g, dtype=torch.float64)
    w = torch.randn(5, 7, generator=g, dtype=torch.float64)  # a loss reading the whole table

    xa, ya = x.clone().requires_grad_(), y.clone().requires_grad_()
    cost = dtw_cost(xa[None], ya[None])[0]
    R = naive_table(cost)
    ref = torch.stack([torch.stack(row[1:]) for row in R[1:]])
    (ref * w).sum().backward()

    xb, yb = x.clone().requires_grad_(), y.clone().requires_grad_()
    table = soft_dtw(xb[None], yb[None], full_table=True)[0]
    assert table.shape == (6, 8) and table.dtype == torch.float64
    assert table[0, 0] == 0 and (table[0, 1:] == torch.finfo(torch.float64).max).all()
    assert torch.allclose(table[1:, 1:], ref.detach(), rtol=1e-12, atol=1e-12)
    (table[1:, 1:] * w).sum().backward()
    assert torch.allclose(xb.grad, xa.grad, rtol=1e-9, atol=1e-12)
    assert torch.allclose(yb.grad, ya.grad, rtol=1e-9, atol=1e-12)


def test_wavefront_backward_gradcheck():
    g = torch.Generator().manual_seed(2)
    cost = torch.rand(1, 2, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda c: soft_dtw_table(c)[:, 1:, 1:], (cost,))


def test_corner_is_probability_relaxation_not_logsumexp():
    """One cell: R[1,1] = C + 0 (only the diagonal start is finite); R[1,2] mixes its neighbours
    by softmax weights, which a -gamma logsumexp would not give."""
    cost = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64)
    t = soft_dtw_table(cost)[0]
    assert t[1, 1].item() == 1.0 and t[1, 2].item() == 3.0  # left neighbour R[1,1] = 1, weight 1
    cost = torch.tensor([[[0.5, 0.0], [0.0, 0.25]]], dtype=torch.float64)
    t = soft_dtw_table(cost)[0]
    r = torch.tensor([t[2, 1], t[1, 1], t[1, 2]])
    p = torch.softmax(-r / 0.1, 0)
    assert t[2, 2].item() == pytest.approx(0.25 + (p * r).sum().item(), rel=1e-12)


def test_ragged_batches_equal_single_pairs():
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(n, 4, generator=g) for n in (3, 5, 3)]
    ys = [torch.randn(m, 4, generator=g) for m in (4, 5, 4)]
    both = soft_dtw_ragged(xs, ys)
    single = torch.stack([soft_dtw(x[None], y[None])[0] for x, y in zip(xs, ys)])
    assert torch.allclose(both, single, rtol=1e-6, atol=0)


def test_soft_dtw_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        soft_dtw_table(torch.zeros(1, 0, 3))
    with pytest.raises(ValueError, match="float32 or float64"):
        soft_dtw_table(torch.zeros(1, 2, 3, dtype=torch.float16))


# -- objectives ----------------------------------------------------------------------------------
def _batch(B=2, T=8, D=6, S=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(B, 2, T, D, generator=g) * 0.3
    steps = torch.sort(torch.randperm(40, generator=g)[:T])[0].repeat(B, 2, 1)
    seq_lens = torch.full((B, 2), 40)
    pos = torch.stack([torch.sort(torch.randperm(T, generator=g)[:S])[0] for _ in range(2 * B)])
    return emb, steps, seq_lens, pos.view(B, 2, S)


def test_dispatcher_names_and_zero_loss2():
    emb, steps, seq_lens, pos = _batch()
    for obj in OBJECTIVES:
        loss, loss2 = alignment_loss(obj, emb, steps, seq_lens, pos)
        assert loss.shape == () and torch.isfinite(loss)
        if obj != "dtw_contrastive":
            assert loss2.item() == 0.0
    with pytest.raises(ValueError, match="unknown AE2 objective"):
        alignment_loss("dtw_prob", emb)
    assert objective_from_flag("tcc_l2") == "tcc" and objective_from_flag("vava") == "vava"
    assert objective_from_flag("dtw_contrastive") == "dtw_contrastive"
    assert not is_cyclic("break_eggs") and is_cyclic("pour_milk") and is_cyclic("pour_liquid")
    with pytest.raises(ValueError, match="pos_steps"):
        alignment_loss("dtw_contrastive", emb)


def test_dtw_scale_and_normalise_switch():
    emb = _batch()[0]
    base = alignment_loss("dtw", emb)[0]
    assert alignment_loss("dtw", emb, scale_factor=0.02)[0].item() == pytest.approx(
        2 * base.item(), rel=1e-6)
    # released dot product: scale-dependent; real cosine: invariant to the embeddings' norm
    assert abs(alignment_loss("dtw", 2 * emb)[0] - base) > 1e-4
    a = alignment_loss("dtw", emb, dtw_l2_normalize=True)[0]
    b = alignment_loss("dtw", 2 * emb, dtw_l2_normalize=True)[0]
    assert a.item() == pytest.approx(b.item(), rel=1e-5) and abs(a - base) > 1e-4


def test_contrastive_parts_by_hand():
    """loss = mean[f_b, a_b] + ratio mean max(a - r + beta, 0), with view 2 reversed in r."""
    emb, _, _, pos = _batch(B=2, S=4)
    s, ratio, beta = 0.01, 2.0, 0.05
    loss, loss2 = alignment_loss("dtw_contrastive", emb, pos_steps=pos, scale_factor=s,
                                 dtw_ratio=ratio, dtw_beta=beta)
    f, a, h = [], [], []
    for b in range(2):
        x, y = emb[b, 0], emb[b, 1]
        xs, ys = x[pos[b, 0]], y[pos[b, 1]]
        f.append(s * soft_dtw(x[None], y[None])[0])
        a.append(s * soft_dtw(xs[None], ys[None])[0])
        r = s * soft_dtw(xs[None], ys.flip(0)[None])[0]
        h.append(torch.clamp(a[-1] - r + beta, min=0))
    want2 = ratio * torch.stack(h).mean()
    assert loss2.item() == pytest.approx(want2.item(), rel=1e-5, abs=1e-8)
    assert loss.item() == pytest.approx((torch.stack(f + a).mean() + want2).item(), rel=1e-5)


def test_contrastive_cyclic_halves_odd_length():
    """Odd S: the first half is the shorter one (S // 2); halves may differ within a batch."""
    emb, _, _, pos = _batch(B=2, S=5)
    half = torch.tensor([True, False])
    loss, _ = alignment_loss("dtw_contrastive", emb, pos_steps=pos, cyclic=True, first_half=half)
    s, terms = 0.01, []
    for b, idx in ((0, pos[0, :, :2]), (1, pos[1, :, 2:])):
        x, y = emb[b, 0], emb[b, 1]
        terms += [s * soft_dtw(x[None], y[None])[0],
                  s * soft_dtw(x[idx[0]][None], y[idx[1]][None])[0]]
    loss1 = alignment_loss("dtw_contrastive", emb, pos_steps=pos, cyclic=True, first_half=half,
                           dtw_ratio=0.0)[0]
    assert loss1.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-6)
    other = alignment_loss("dtw_contrastive", emb, pos_steps=pos, cyclic=True, first_half=~half)[0]
    assert abs(other - loss) > 1e-6


def test_contrastive_cyclic_draws_from_given_generator():
    emb, _, _, pos = _batch(B=4, S=4)
    want = dtw.draw_first_half(4, torch.Generator().manual_seed(7))
    a = alignment_loss("dtw_contrastive", emb, pos_steps=pos, cyclic=True,
                       generator=torch.Generator().manual_seed(7))[0]
    b = alignment_loss("dtw_contrastive", emb, pos_steps=pos, cyclic=True, first_half=want)[0]
    assert a.item() == b.item()
    rng = np.random.default_rng(3)
    want = np.random.default_rng(3).random(6) < 0.5
    assert dtw.draw_first_half(6, rng).tolist() == want.tolist()


def test_tcc_symmetric_switch():
    emb, steps, seq_lens, _ = _batch()
    steps[:, 1] = torch.arange(8) * 3  # different targets per view
    one = alignment_loss("tcc", emb, steps, seq_lens)[0]
    both = alignment_loss("tcc", emb, steps, seq_lens, tcc_symmetric=True)[0]
    swapped = alignment_loss("tcc", emb.flip(1), steps.flip(1), seq_lens.flip(1))[0]
    assert both.item() == pytest.approx((one + swapped).item() / 2, rel=1e-5)
    with pytest.raises(ValueError, match="steps"):
        alignment_loss("tcc", emb)


def test_vava_inter_switch_gives_gradient():
    emb = _batch(T=20)[0]

    def grad(**kw):
        e = emb.clone().requires_grad_()
        loss = alignment_loss("vava", e, **kw)[0]
        loss.backward()
        return loss, e.grad

    l_rel, g_rel = grad()
    l_int, g_int = grad(vava_released_inter=False)
    assert abs(l_rel - l_int) > 0 and (g_rel - g_int).abs().max() > 0
    # phi from global_step: the loss moves (a little)
    assert alignment_loss("vava", emb, global_step=10 ** 6)[0] != l_rel


def test_vava_prior_weight():
    from byov.ae2.vava import prior_weight
    assert prior_weight(0) == 0.999
    assert prior_weight(12345) == pytest.approx(0.999 ** 111)
    assert prior_weight(10 ** 12) == 0.001


# -- sampler -------------------------------------------------------------------------------------
@pytest.mark.parametrize("gen", [torch.Generator().manual_seed(0), np.random.default_rng(0)])
def test_sample_clip_long_video(gen):
    L, T = 100, 32
    steps, frames = sampling.sample_clip(L, T, gen, frame_stride=15, random_offset=1)
    assert steps.dtype == frames.dtype == torch.int64 and steps.shape == (T,)
    assert (steps[1:] > steps[:-1]).all() and steps.min() >= 1 and steps.max() < L
    assert frames.shape == (2 * T,)
    assert torch.equal(frames[1::2], steps)
    assert torch.equal(frames[0::2], (steps - 15).clamp(min=0))


def test_sample_clip_short_video_and_determinism():
    steps, frames = sampling.sample_clip(19, 32, torch.Generator().manual_seed(0))
    assert torch.equal(steps, torch.arange(32).clamp(max=18))
    # context of the unclamped step s: clamp(s - 15), e.g. step 25 -> frame 10, not 18 - 15
    assert frames[2 * 25].item() == 10 and frames[2 * 25 + 1].item() == 18
    a = sampling.sample_clip(300, 20, np.random.default_rng(5))
    b = sampling.sample_clip(300, 20, np.random.default_rng(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError):
        sampling.sample_clip(0, 4, np.random.default_rng(0))


def test_positive_steps_centres_and_weighted():
    assert sampling.positive_steps(32, 4).tolist() == [4, 12, 20, 28]
    assert sampling.positive_steps(20, 10).tolist() == list(range(1, 20, 2))
    conf = torch.zeros(32)
    conf[::2] = torch.rand(16) + 0.1
    for seed in range(5):
        idx = sampling.positive_steps(32, 16, conf, np.random.default_rng(seed))
        assert idx.tolist() == list(range(0, 32, 2))  # exactly the 16 steps with weight
    idx = sampling.positive_steps(32, 10, conf, np.random.default_rng(0))
    assert (idx[1:] > idx[:-1]).all() and (conf[idx] > 0).all()
    with pytest.raises(sampling.PositiveStepsError, match="only 16 of the 32") as e:
        sampling.positive_steps(32, 17, conf, np.random.default_rng(0))
    assert isinstance(e.value, ByovError)
    with pytest.raises(sampling.PositiveStepsError):
        sampling.positive_steps(4, 5)


# -- embedder ------------------------------------------------------------------------------------
def test_missing_weights_error_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as e:
        AE2Embedder(pretrained=True)
    msg = str(e.value)
    assert "resnet50-0676ba61.pth" in msg and RELEASED_WEIGHTS_FILE in msg
    assert str(tmp_path / "checkpoints") in msg
    with pytest.raises(WeightsNotFoundError, match="nope.pth"):
        AE2Embedder(pretrained=True, weights_path=str(tmp_path / "nope.pth"))


def test_released_weights_file_is_found_in_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "checkpoints" / RELEASED_WEIGHTS_FILE)
    sd, source = load_imagenet_trunk_state()
    assert source.endswith(RELEASED_WEIGHTS_FILE) and list(sd) == ["conv1.weight"]
    with pytest.raises(AE2WeightsError, match="not a torchvision ResNet-50"):
        AE2Embedder(pretrained=True)  # that file is not a ResNet-50


def test_convert_released_names():
    sd = {"base_model.layer3.5.bn3.weight": 1, "conv_layers.4.running_var": 2,
          "fc_layers.1.bias": 3, "embedding_layer.weight": 4}
    assert convert_released_state_dict(sd) == {"trunk.layer3.5.bn3.weight": 1,
                                               "head.4.running_var": 2, "fc.1.bias": 3,
                                               "embedding.weight": 4}
    with pytest.raises(AE2WeightsError, match="proj_local"):
        convert_released_state_dict({"proj_local.weight": 0})


def test_freeze_base_keeps_trunk_in_eval_without_grads():
    model = AE2Embedder(input_size=168, freeze_base=True, pretrained=False)
    model.train()
    assert model.training and model.head.training and not model.trunk.training
    assert not any(p.requires_grad for p in model.trunk.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    bn = model.trunk.bn1
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))  # released random init
    std = model.trunk.conv1.weight.std().item()  # kaiming normal, fan_out = 64 * 7 * 7
    assert std == pytest.approx(math.sqrt(2 / (64 * 49)), rel=0.1)
    with pytest.raises(ValueError, match="168x168"):
        model(torch.zeros(1, 2, 3, 224, 224))
