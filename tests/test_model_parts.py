"""Blocks, position tables, masking and selective token merging against their definitions."""
import math

import pytest
import torch

from byov.models.blocks import Block, interpolate_pos_embed, sincos_pos_embed_1d
from byov.models.masking import NOISE_KEYS, draw_noise, len_keep, random_masking
from byov.models.stm import merge_video_tokens, num_selected_tokens, selective_token_merge


# -- position tables -------------------------------------------------------------------------------
def test_sincos_matches_formula():
    dim, length = 10, 7
    pe = sincos_pos_embed_1d(dim, length)
    assert pe.shape == (1, length, dim) and pe.dtype == torch.float32
    for p in range(length):
        for i in range(dim // 2):
            w = 1.0 / 10000 ** (i / (dim / 2))
            assert pe[0, p, i].item() == pytest.approx(math.sin(p * w), abs=1e-7)
            assert pe[0, p, dim // 2 + i].item() == pytest.approx(math.cos(p * w), abs=1e-7)


@pytest.mark.parametrize("length", [3, 8, 13, 50])
def test_interpolate_pos_embed_matches_formula(length):
    t0 = 8
    pe = sincos_pos_embed_1d(6, t0)
    out = interpolate_pos_embed(pe, length)
    assert out.shape == (1, length, 6)
    for j in range(length):
        s = max(0.0, (j + 0.5) * t0 / length - 0.5)
        i0 = math.floor(s)
        i1 = min(i0 + 1, t0 - 1)
        lam = s - i0
        want = (1 - lam) * pe[0, i0] + lam * pe[0, i1]
        torch.testing.assert_close(out[0, j], want, atol=1e-6, rtol=0)


def test_interpolate_identity_and_errors():
    pe = sincos_pos_embed_1d(4, 5)
    assert interpolate_pos_embed(pe, 5) is pe
    with pytest.raises(ValueError, match="even"):
        sincos_pos_embed_1d(5, 3)
    with pytest.raises(ValueError, match="length"):
        interpolate_pos_embed(pe, 0)


# -- block -----------------------------------------------------------------------------------------
def _reference_block(blk: Block, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """Explicit timm-0.6.12 attention with the released additive causal bias log(tril + 1e-45)."""
    b, t, c = x.shape
    h = blk.attn.n_heads
    y = blk.norm1(x)
    q, k, v = blk.attn.qkv(y).reshape(b, t, 3, h, c // h).permute(2, 0, 3, 1, 4)
    att = q @ k.transpose(-2, -1) * (c // h) ** -0.5
    if causal:
        att = att + torch.log(torch.tril(torch.ones(t, t)) + 1e-45)
    y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
    x = x + blk.attn.proj(y)
    return x + blk.mlp.fc2(torch.nn.functional.gelu(blk.mlp.fc1(blk.norm2(x))))


@pytest.mark.parametrize("causal", [False, True])
def test_block_matches_released_attention(causal):
    torch.manual_seed(0)
    blk = Block(32, 4).eval()
    x = torch.randn(3, 9, 32)
    with torch.no_grad():
        torch.testing.assert_close(blk(x, causal=causal), _reference_block(blk, x, causal),
                                   atol=1e-5, rtol=0)


def test_causal_block_ignores_future():
    torch.manual_seed(1)
    blk = Block(16, 4).eval()
    x = torch.randn(2, 6, 16)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 16)
    with torch.no_grad():
        a, b = blk(x, causal=True), blk(x2, causal=True)
        assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
        assert not torch.allclose(blk(x)[:, :4], blk(x2)[:, :4], atol=1e-3)


# -- masking ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("T,ratio,keep", [(32, 0.4, 19), (32, 0.8, 6), (20, 0.4, 12), (20, 0.8, 3)])
def test_len_keep_released_arithmetic(T, ratio, keep):
    assert len_keep(T, ratio) == keep


@pytest.mark.parametrize("T,ratio", [(32, 0.4), (32, 0.8), (20, 0.8)])
def test_random_masking_counts_and_restore(T, ratio):
    g = torch.Generator().manual_seed(T)
    x = torch.randn(4, T, 5, generator=g)
    noise = torch.rand(4, T, generator=g)
    kept, mask, ids_restore = random_masking(x, noise, ratio)
    keep = len_keep(T, ratio)
    assert kept.shape == (4, keep, 5)
    assert mask.dtype == torch.float32 and (mask.sum(1) == T - keep).all()
    ids_shuffle = torch.argsort(noise, dim=1)
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore),
                       torch.arange(T).expand(4, T))  # ids_restore inverts ids_shuffle
    # the kept frames are the `keep` lowest-noise ones, and they are exactly the unmasked ones
    assert torch.equal(kept, torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, 5)))
    for b in range(4):
        visible = (mask[b] == 0).nonzero().flatten()
        assert set(visible.tolist()) == set(ids_shuffle[b, :keep].tolist())
    # restoring [kept ; masked] puts every frame back in time order
    rest = torch.gather(x, 1, ids_shuffle[:, keep:, None].expand(-1, -1, 5))
    back = torch.gather(torch.cat([kept, rest], 1), 1, ids_restore[:, :, None].expand(-1, -1, 5))
    assert torch.equal(back, x)


def test_masking_rejects_bad_input():
    with pytest.raises(ValueError, match="noise"):
        random_masking(torch.zeros(2, 8, 3), torch.zeros(2, 7), 0.4)
    with pytest.raises(ValueError, match="no visible"):
        random_masking(torch.zeros(2, 4, 3), torch.zeros(2, 4), 0.9)
    with pytest.raises(ValueError, match="ratio"):
        len_keep(8, 1.0)


def test_draw_noise_released_order():
    noise = draw_noise(3, 7, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    assert list(noise) == list(NOISE_KEYS) == ["x1_msm", "x1_mcm", "x2_msm", "x2_mcm"]
    for key in NOISE_KEYS:
        assert torch.equal(noise[key], torch.rand(3, 7, generator=g))


# -- selective token merging -----------------------------------------------------------------------
def _naive_stm(x: torch.Tensor, k: int) -> torch.Tensor:
    """The released per-sample, per-frame loop."""
    B, T, N, d = x.shape
    out = torch.empty(B, T, d)
    for b in range(B):
        for t in range(T):
            tn = t + 1 if t < T - 1 else t
            tc = t if t < T - 1 else t - 1
            score = (x[b, tc] - x[b, tn]).abs().mean(-1)
            idx = torch.topk(score, k).indices
            out[b, t] = x[b, t, idx].mean(0)
    return out


@pytest.mark.parametrize("B,T,N,d,k", [(1, 2, 4, 3, 1), (2, 5, 9, 6, 3), (3, 8, 16, 4, 5),
                                       (2, 4, 7, 5, 7)])
def test_stm_matches_naive_loop(B, T, N, d, k):
    x = torch.randn(B, T, N, d, generator=torch.Generator().manual_seed(B * 100 + T))
    torch.testing.assert_close(selective_token_merge(x, k), _naive_stm(x, k), atol=1e-6, rtol=0)


@pytest.mark.parametrize("sizes", [[10], [1, 9], [3, 3, 4], [1] * 10, [4, 0, 6], [9, 1]])
def test_merge_video_tokens_chunked_equals_one_pass(sizes):
    x = torch.randn(10, 12, 5, generator=torch.Generator().manual_seed(len(sizes)))
    chunks = torch.split(x, sizes)
    want = selective_token_merge(x[None], 4)[0]
    assert torch.equal(merge_video_tokens(iter(chunks), 4), want)


def test_stm_errors_and_k():
    with pytest.raises(ValueError, match="at least 2 frames"):
        selective_token_merge(torch.zeros(1, 1, 4, 3), 2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        merge_video_tokens([torch.zeros(1, 4, 3)], 2)
    with pytest.raises(ValueError, match="K=5"):
        selective_token_merge(torch.zeros(1, 3, 4, 3), 5)
    assert num_selected_tokens(196, 0.3) == 59
    # from the real patch count (docs/design.md#token-merging-k)
    assert num_selected_tokens(256, 0.3) == 77
    assert num_selected_tokens(256, 0.3, num_tokens=196) == 59  # released Break Eggs override
    assert num_selected_tokens(49, 0.3) == 15
