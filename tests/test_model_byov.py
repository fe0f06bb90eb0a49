"""BYOV encoder/decoder/loss: parity with the released code, shapes, EMA teacher, parameter counts."""
import os
import subprocess
import sys

import pytest
import torch
from conftest import FIXTURES, ROOT

from byov.compat import convert_released_state_dicts, load_released
from byov.compat.check_parity import TOLERANCE, check_parity
from byov.models.byov import BYOV, BYOVDecoder, BYOVEncoder, masked_mse
from byov.models.ema import ema_update, init_target, momentum_schedule
from byov.models.masking import draw_noise

PARITY = ["model_parity.pt", "model_parity_released.pt"]


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _tiny(**kw):
    args = dict(in_dim=12, embed_dim=8, dec_dim=8, depth=2, depth_dec=1, n_heads=2, num_frames=8)
    args.update(kw)
    torch.manual_seed(0)
    return BYOV(**args)


# -- parity with the released code -----------------------------------------------------------------
@pytest.mark.parametrize("name", PARITY)
def test_parity_with_released_fixture(name):
    diffs = check_parity(os.path.join(FIXTURES, name))
    assert set(diffs) >= {"z1", "z2", "pred_msm", "pred_mcm_view1", "pred_mcm_view2",
                          "mask.x1_msm", "mask.x2_mcm", "loss.msm", "loss.total"}
    assert max(diffs.values()) <= TOLERANCE, diffs


@pytest.mark.parametrize("name", PARITY)
def test_compat_switch_matters(name):
    """Flipping compat_released_decoder breaks the view-2 self-view half only."""
    model, fx = load_released(os.path.join(FIXTURES, name))
    assert model.compat_released_decoder == (not fx["view2_msm_fixed"])
    model.compat_released_decoder = not model.compat_released_decoder
    with torch.no_grad():
        out = model(fx["x1"], fx["x2"], fx["noise"])
    t = fx["x1"].shape[1]
    assert (out["pred_msm"][:, :t] - fx["pred_msm"][:, :t]).abs().max() < 1e-5
    assert (out["pred_msm"][:, t:] - fx["pred_msm"][:, t:]).abs().max() > 1e-2
    torch.testing.assert_close(out["pred_mcm_view2"], fx["pred_mcm_view2"], atol=1e-5, rtol=0)


def test_check_parity_cli():
    proc = subprocess.run([sys.executable, "-m", "byov.compat.check_parity",
                           os.path.join(FIXTURES, "model_parity_released.pt")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout and "pred_msm" in proc.stdout


def test_convert_released_names():
    enc, dec = convert_released_state_dicts({"encoder.3.attn.qkv.weight": 1, "norm.bias": 2},
                                            {"decoder.0.mlp.fc1.bias": 3, "decoder_pred.1.weight": 4})
    assert enc == {"blocks.3.attn.qkv.weight": 1, "norm.bias": 2}
    assert dec == {"blocks.0.mlp.fc1.bias": 3, "decoder_pred.1.weight": 4}


# -- parameter counts (docs/released_code.md#encoder, #decoder) -------------------------------------------------------------
def test_parameter_counts():
    assert _count(BYOVEncoder(768, 256, depth=12, n_heads=16)) == 9_676_032
    assert _count(BYOVEncoder(1024, 256, depth=12, n_heads=16)) == 9_742_080
    assert _count(BYOVDecoder(256, 256, depth=4, n_heads=16, out_dim=768)) == 3_423_488
    assert _count(BYOVDecoder(256, 256, depth=3, n_heads=16, out_dim=768)) == 2_633_728
    assert _count(BYOVDecoder(256, 256, depth=4, n_heads=16, out_dim=256)) == 3_291_904


# -- forward ---------------------------------------------------------------------------------------
def test_forward_shapes_and_mask_counts_tennis():
    model = _tiny(num_frames=20)
    x1, x2 = torch.randn(3, 20, 12), torch.randn(3, 20, 12)
    out = model(x1, x2, draw_noise(3, 20, generator=torch.Generator().manual_seed(0)))
    for k in ("pred_msm", "pred_mcm_view1", "pred_mcm_view2"):
        assert out[k].shape == (3, 40, 12)
    assert out["z1"].shape == out["z2"].shape == (3, 20, 8)
    assert (out["mask"]["x1_msm"].sum(1) == 8).all() and (out["mask"]["x2_mcm"].sum(1) == 17).all()
    torch.testing.assert_close(out["loss"], out["msm"] + out["mcm_view1"] + out["mcm_view2"])
    torch.testing.assert_close(out["z1"], model.embed(x1))


def test_loss_terms_are_masked_mse():
    model = _tiny()
    x1, x2 = torch.randn(2, 8, 12), torch.randn(2, 8, 12)
    out = model(x1, x2, draw_noise(2, 8, generator=torch.Generator().manual_seed(1)))
    target, m = torch.cat([x1, x2], 1), out["mask"]
    sq = (out["pred_mcm_view2"] - target).pow(2).mean(-1)
    want = (sq[:, 8:] * m["x2_mcm"]).sum() / m["x2_mcm"].sum()  # only view 2's masked half
    torch.testing.assert_close(out["mcm_view2"], want)
    mask1 = torch.cat([m["x1_msm"], m["x2_msm"]], 1)
    torch.testing.assert_close(out["msm"], masked_mse(out["pred_msm"], target, mask1))


def test_default_noise_uses_global_rng_in_released_order():
    model = _tiny().eval()
    x1, x2 = torch.randn(2, 8, 12), torch.randn(2, 8, 12)
    torch.manual_seed(7)
    a = model(x1, x2)
    torch.manual_seed(7)
    b = model(x1, x2, draw_noise(2, 8))
    assert torch.equal(a["loss"], b["loss"])


def test_masked_stream_with_nothing_masked_equals_full_stream():
    enc = _tiny().encoder.eval()
    x, noise = torch.randn(2, 8, 12), torch.rand(2, 8)
    with torch.no_grad():
        kept, mask, ids_restore = enc.forward_masked(x, noise, 0.0)
        restored = torch.gather(kept, 1, ids_restore[..., None].expand(-1, -1, kept.shape[-1]))
        torch.testing.assert_close(restored, enc(x), atol=1e-5, rtol=0)
    assert mask.sum() == 0


def test_inference_on_other_lengths_and_input_errors():
    model = _tiny()
    assert model.embed(torch.randn(1, 13, 12)).shape == (1, 13, 8)
    with pytest.raises(ValueError, match="num_frames"):
        model(torch.randn(1, 9, 12), torch.randn(1, 9, 12))
    with pytest.raises(ValueError, match="hidden_dim"):
        model.embed(torch.randn(1, 8, 5))
    with pytest.raises(ValueError, match="ema"):
        model.embed(torch.randn(1, 8, 12), weights="ema")
    with pytest.raises(ValueError, match="target"):
        _tiny(target="teacher")
    with pytest.raises(ValueError, match="mcm_ratio"):
        _tiny(mcm_ratio=0.95)


def test_training_reduces_loss():
    model = _tiny()
    x1, x2 = torch.randn(2, 8, 12), torch.randn(2, 8, 12)
    noise = draw_noise(2, 8, generator=torch.Generator().manual_seed(3))
    opt = torch.optim.Adam(model.trainable_parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model(x1, x2, noise)["loss"]
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


# -- EMA teacher -----------------------------------------------------------------------------------
def test_ema_update_extremes_and_value():
    torch.manual_seed(0)
    online = BYOVEncoder(12, 8, depth=1, n_heads=2, num_frames=8)
    target = init_target(online)
    assert not any(p.requires_grad for p in target.parameters()) and not target.training
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update(online, target, 1.0)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    ema_update(online, target, 0.25)
    w_on, w_old = online.norm.weight, before["norm.weight"]
    torch.testing.assert_close(target.norm.weight, 0.25 * w_old + 0.75 * w_on)
    ema_update(online, target, 0.0)
    assert all(torch.equal(online.state_dict()[k], v) for k, v in target.state_dict().items())
    with pytest.raises(ValueError, match="momentum"):
        ema_update(online, target, 1.5)


def test_momentum_schedule():
    s = momentum_schedule(0.996, 100)
    assert len(s) == 101 and s[0] == pytest.approx(0.996) and s[-1] == 1.0
    assert (s[1:] >= s[:-1]).all()
    assert s[50] == pytest.approx(1 - 0.004 * 0.5)


def test_ema_mode_forward_and_teacher_isolation():
    model = _tiny(target="ema")
    assert model.decoder.decoder_pred[1].out_features == 8  # embed_dim, not in_dim
    trainable = {id(p) for p in model.trainable_parameters()}
    teacher = list(model.target_encoder.parameters())
    assert teacher and not any(id(p) in trainable for p in teacher)
    assert not any(p.requires_grad for p in teacher)
    model.train()
    assert model.encoder.training and not model.target_encoder.training
    x1, x2 = torch.randn(2, 8, 12), torch.randn(2, 8, 12)
    out = model(x1, x2, draw_noise(2, 8))
    assert out["pred_msm"].shape == (2, 16, 8)
    with torch.no_grad():
        want = torch.cat([model.target_encoder(x1), model.target_encoder(x2)], 1)
    torch.testing.assert_close(out["target"], want)
    out["loss"].backward()
    assert all(p.grad is None for p in teacher)
    assert model.encoder.blocks[0].attn.qkv.weight.grad is not None
    torch.testing.assert_close(model.embed(x1, weights="ema"), want[:, :8])
    with torch.no_grad():
        model.encoder.norm.weight.add_(1.0)
    model.update_target(0.5)
    torch.testing.assert_close(model.target_encoder.norm.weight, torch.full((8,), 1.5))
