"""Training-step parity: K Adam steps of byov against the released BYOV code.

`tests/fixtures/train_step_parity.pt` (README there) holds what the released encoder/decoder, loss
lines and `configure_optimizers` (Adam, coupled L2 weight decay) computed over K steps from given
weights, inputs and mask noise, in both decoder modes. Read generically (config, B, T, K from the
file), so the same tests run on fixtures with other seeds and shapes. A refactor that changes what
a training step computes (loss, masking, optimizer, update order) fails here.
"""
import os

import pytest
import torch
import torch.nn as nn

from byov.compat import convert_released_state_dicts, model_from_released_config
from conftest import FIXTURES

FIXTURE = os.path.join(FIXTURES, "train_step_parity.pt")
TOL = 1e-5
LOSS_KEYS = ("msm", "mcm_view1", "mcm_view2")


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURE, map_location="cpu", weights_only=True)


def _key_bias_slices(state: dict, cfg: dict) -> dict:
    """{key: slice} of the attention key bias in the fused qkv bias (exact gradient 0: not compared)."""
    out = {}
    for name in state:
        if name.endswith("attn.qkv.bias"):
            width = state[name].shape[0] // 3
            out[name] = slice(width, 2 * width)
    return out


def _assert_state_close(got: dict, want: dict, cfg: dict, where: str) -> None:
    assert set(got) == set(want), where
    skip = _key_bias_slices(want, cfg)
    for name, ref in want.items():
        a, b = got[name].detach().clone(), ref.clone()
        if name in skip:  # see the fixture README: rounding noise normalised by Adam
            keep = torch.ones(a.shape[0], dtype=torch.bool)
            keep[skip[name]] = False
            a, b = a[keep], b[keep]
        diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
        assert diff <= TOL, f"{where}: {name} differs by {diff}"


def _model(fx, variant):
    cfg = fx["config"]
    model = model_from_released_config(cfg, compat_released_decoder=not variant["view2_msm_fixed"])
    enc, dec = convert_released_state_dicts(fx["encoder_state_dict"], fx["decoder_state_dict"])
    model.encoder.load_state_dict(enc)
    model.decoder.load_state_dict(dec)
    return model.train()


def _adam(fx, params):
    cfg = fx["config"]
    return torch.optim.Adam(params, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                            weight_decay=cfg["weight_decay"])


def _final(fx, variant):
    return convert_released_state_dicts(variant["final_encoder_state_dict"],
                                        variant["final_decoder_state_dict"])


@pytest.mark.parametrize("name", ["released", "paper"])
def test_k_adam_steps_match_the_released_code(fx, name):
    """The model alone: every step's loss terms and masks, and the weights after K steps."""
    variant = fx["variants"][name]
    model = _model(fx, variant)
    opt = _adam(fx, model.trainable_parameters())
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        for s, st in enumerate(fx["steps"]):
            out = model(st["x1"], st["x2"], st["noise"])
            for key in LOSS_KEYS:
                assert abs(out[key].item() - variant["loss"][s][key].item()) <= TOL, (s, key)
            assert abs(out["loss"].item() - variant["loss"][s]["total"].item()) <= TOL, s
            for key, mask in st["mask"].items():
                assert torch.equal(out["mask"][key].float(), mask.float()), (s, key)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
    enc_T, dec_T = _final(fx, variant)
    _assert_state_close(model.encoder.state_dict(), enc_T, fx["config"], f"{name} encoder")
    _assert_state_close(model.decoder.state_dict(), dec_T, fx["config"], f"{name} decoder")


@pytest.mark.parametrize("name", ["released", "paper"])
def test_k_steps_through_the_method_and_engine(fx, name, monkeypatch):
    """One level up: ByovMethod.forward (noise from step_noise, patched to the fixture's) and the
    training engine's optimizer_step, exactly as a training run calls them."""
    import byov.methods.byov_method as bm
    from byov.training.engine import optimizer_step

    variant = fx["variants"][name]
    model = _model(fx, variant)
    cfg = fx["config"]

    class Frozen(nn.Identity):
        frozen = True

    method = bm.ByovMethod(Frozen(), model, k=1, source=None, num_frames=cfg["num_frames"])
    opt = _adam(fx, method.trainable_parameters())
    steps = fx["steps"]
    calls = []

    def recorded_noise(batch, num_frames, entropy, device="cpu"):
        calls.append(tuple(entropy))
        return {k: v.to(device) for k, v in steps[entropy[2]]["noise"].items()}

    monkeypatch.setattr(bm, "step_noise", recorded_noise)
    method.train()
    for s, st in enumerate(steps):
        batch = {"inputs": torch.stack([st["x1"], st["x2"]], dim=1)}  # (B, 2, T, d) merged
        out = method(batch, (cfg["seed"], 0, s, 0))
        assert abs(out["loss"].item() - variant["loss"][s]["total"].item()) <= TOL, s
        optimizer_step(out["loss"], opt)
    assert calls == [(cfg["seed"], 0, s, 0) for s in range(len(steps))]
    enc_T, dec_T = _final(fx, variant)
    _assert_state_close(model.encoder.state_dict(), enc_T, cfg, f"{name} encoder")
    _assert_state_close(model.decoder.state_dict(), dec_T, cfg, f"{name} decoder")


def test_a_wrong_optimizer_is_caught(fx):
    """The check has teeth: AdamW (decoupled decay) in place of the released Adam moves the final
    weights beyond the tolerance (fixture README: 2.0e-3)."""
    variant = fx["variants"]["paper"]
    model = _model(fx, variant)
    cfg = fx["config"]
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                            eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    for st in fx["steps"]:
        out = model(st["x1"], st["x2"], st["noise"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    enc_T, dec_T = _final(fx, variant)
    with pytest.raises(AssertionError):
        _assert_state_close(model.encoder.state_dict(), enc_T, cfg, "encoder")
        _assert_state_close(model.decoder.state_dict(), dec_T, cfg, "decoder")
