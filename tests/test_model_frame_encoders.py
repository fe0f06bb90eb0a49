"""Frozen backbones: token grids, freezing, chunking, missing-weight errors, real EfficientNet-Lite0."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from byov.models.frame_encoders import WeightsNotFoundError, load_efficientnet_lite0
from byov.models.backbones import build_frame_encoder
from byov.models.stm import merge_video_tokens, selective_token_merge


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8)
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPVisionModel(cfg).save_pretrained(path)
    return str(path)


def test_clip_from_local_dir(tiny_clip_dir):
    from transformers import CLIPVisionModel

    enc = build_frame_encoder("clip", tiny_clip_dir, input_size=32)
    assert (enc.name, enc.num_patches, enc.dim, enc.input_size) == ("clip", 16, 32, 32)
    images = torch.randn(5, 3, 32, 32)
    tokens = enc(images)
    assert tokens.shape == (5, 16, 32) and not tokens.requires_grad
    ref = CLIPVisionModel.from_pretrained(tiny_clip_dir).eval()
    with torch.no_grad():
        want = ref(pixel_values=images).last_hidden_state[:, 1:]
    torch.testing.assert_close(tokens, want, atol=1e-6, rtol=0)
    # chunked encoding, and whole-video STM over the chunks, equal one pass
    assert torch.equal(enc.encode_in_chunks(images, 2), tokens)
    merged = merge_video_tokens(enc.iter_chunks(images, 2), 5)
    assert torch.equal(merged, selective_token_merge(tokens[None], 5)[0])
    with pytest.raises(ValueError, match="32"):
        enc(torch.randn(1, 3, 40, 40))


def test_frozen_stays_eval_and_bn_stats_fixed():
    enc = build_frame_encoder("resnet50", input_size=64, resnet_stage="layer3", pretrained=False)
    parent = torch.nn.Sequential(enc)
    parent.train()
    assert not enc.backbone.training
    assert not any(p.requires_grad for p in enc.parameters())
    bn = enc.backbone[1]
    before = bn.running_mean.clone()
    enc(torch.randn(2, 3, 64, 64))
    assert torch.equal(bn.running_mean, before)
    unfrozen = build_frame_encoder("resnet50", input_size=64, freeze=False, pretrained=False)
    torch.nn.Sequential(unfrozen).train()
    assert unfrozen.backbone.training and unfrozen(torch.randn(2, 3, 64, 64)).requires_grad


@pytest.mark.parametrize("stage,n,d", [("layer3", 16, 1024), ("layer4", 4, 2048)])
def test_resnet50_grids(stage, n, d):
    enc = build_frame_encoder("resnet50", input_size=64, resnet_stage=stage, pretrained=False)
    images = torch.randn(3, 3, 64, 64)
    tokens = enc(images)
    assert tokens.shape == (3, n, d) and (enc.num_patches, enc.dim) == (n, d)
    # batch-size-dependent CPU conv kernels reassociate sums: equal up to float rounding
    chunked = enc.encode_in_chunks(images, 2)
    torch.testing.assert_close(chunked, tokens, rtol=1e-5, atol=1e-5 * tokens.abs().max().item())
    assert build_frame_encoder("resnet50", resnet_stage=stage, pretrained=False).num_patches == \
        {"layer3": 196, "layer4": 49}[stage]


def test_vit_b_16_tokens_are_before_final_layernorm():
    from torchvision.models import vit_b_16

    enc = build_frame_encoder("vit_b_16", input_size=32, pretrained=False)
    ref = vit_b_16(weights=None, image_size=32).eval()
    ref.load_state_dict(enc.backbone.state_dict(), strict=False)  # all but encoder.ln and heads
    seen = {}
    ref.encoder.layers.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref(images)
    tokens = enc(images)
    assert tokens.shape == (2, 4, 768) and enc.num_patches == 4
    torch.testing.assert_close(tokens, seen["out"][:, 1:], atol=1e-5, rtol=0)


def test_missing_weights_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="resnet50-11ad3fa6.pth") as e:
        build_frame_encoder("resnet50")
    assert str(tmp_path) in str(e.value) and "--vision_encoder_path" in str(e.value)
    with pytest.raises(WeightsNotFoundError, match="vit_b_16-c867db91.pth"):
        build_frame_encoder("vit_b_16")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        build_frame_encoder("resnet50", path=str(tmp_path / "nope.pth"))
    hub_id = "byov-tests/no-such-clip"  # HF_HUB_OFFLINE=1 (conftest): never in any cache
    with pytest.raises(WeightsNotFoundError) as e:
        build_frame_encoder("clip", hub_id)
    msg = str(e.value)
    assert f"hf download {hub_id}" in msg and "save_pretrained" in msg
    assert "--vision_encoder_path DIR" in msg
    with pytest.raises(WeightsNotFoundError, match="directory not found"):
        build_frame_encoder("clip", str(tmp_path / "missing" / "clip"))
    assert issubclass(WeightsNotFoundError, FileNotFoundError)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_frame_encoder("resnet18")


def _sample_image(size: int) -> torch.Tensor:
    from sklearn.datasets import load_sample_image

    img = torch.from_numpy(np.array(load_sample_image("china.jpg"))).permute(2, 0, 1)
    img = F.interpolate(img[None].float(), size=(size, size), mode="bicubic", align_corners=False)
    return img.clamp(0, 255) / 127.5 - 1.0  # RGB in [-1, 1]


def test_efficientnet_lite0_real_weights():
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]  # ImageNet class names
    image = _sample_image(224)
    model, source = load_efficientnet_lite0()
    assert source.endswith("efficientnet-lite0-57934424.pth")
    with torch.no_grad():
        prob = model.eval()(image).softmax(-1)[0]
    top = [categories[i] for i in prob.topk(3).indices]
    # sklearn's china.jpg is a Chinese temple: a random-init net cannot name a building
    assert set(top) & {"bell cote", "stupa", "monastery", "palace", "church", "pagoda"}, top
    assert prob.max() > 0.2
    enc = build_frame_encoder("efficientnet_lite0")
    assert (enc.num_patches, enc.dim, enc.mean) == (49, 1280, (0.5, 0.5, 0.5))
    tokens = enc(image)
    with torch.no_grad():
        want = model.forward_features(image).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens, want)
    assert tokens.min() >= 0 and tokens.max() <= 6  # after the ReLU6 of conv_head's BN-act


def test_efficientnet_lite0_rejects_foreign_state_dict(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0"):
        load_efficientnet_lite0(str(bad))
