"""--backbone dinov2 | siglip2: tiny random models through the real loading code (save_pretrained
-> from_pretrained), their preprocessing from the image processor config, and tiny train +
evaluate runs on the synthetic data (byov.models.hf_backbones)."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from train_helpers import load_ckpt, train_args, train_in_process

# backbone -> (fixture, input size): both give N = 4 tokens of d = 32
SIZES = {"dinov2": ("tiny_dinov2_dir", 28), "siglip2": ("tiny_siglip2_dir", 32)}


def _reference_tokens(name, path, images):
    """The last encoder layer's patch tokens, before the final norm, from transformers' own
    model (hidden_states[-1] is the encoder output the final norm is applied to)."""
    from transformers import Dinov2Model, SiglipModel
    if name == "dinov2":
        out = Dinov2Model.from_pretrained(path)(pixel_values=images, output_hidden_states=True)
        return out.hidden_states[-1][:, 1:], out.last_hidden_state[:, 1:]
    vision = SiglipModel.from_pretrained(path).vision_model
    out = vision(pixel_values=images, output_hidden_states=True)
    return out.hidden_states[-1], out.last_hidden_state


@pytest.mark.parametrize("name", sorted(SIZES))
def test_tokens_are_the_patch_tokens_before_the_final_norm(name, request):
    from byov.models.backbones import build_frame_encoder
    fixture, size = SIZES[name]
    path = request.getfixturevalue(fixture)
    encoder = build_frame_encoder(name, path, input_size=size)
    assert (encoder.num_patches, encoder.dim, encoder.weights_source) == (4, 32, path)
    assert encoder.frozen and not any(p.requires_grad for p in encoder.parameters())
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = encoder(images)
        before, after = _reference_tokens(name, path, images)
    assert tokens.shape == (3, 4, 32)
    torch.testing.assert_close(tokens, before, rtol=0, atol=1e-6)
    assert not torch.allclose(tokens, after)  # the final norm is not applied
    names = [n for n, _ in encoder.named_parameters()]  # no unused final norm or pooling head
    assert not any(n.split(".")[1] in ("layernorm", "post_layernorm", "head") for n in names)


def test_preprocessing_comes_from_the_image_processor_config(tiny_dinov2_dir, tiny_siglip2_dir):
    from byov.data.preprocess import describe, preprocess_frames
    from byov.models.backbones import build_frame_encoder
    dino = build_frame_encoder("dinov2", tiny_dinov2_dir, input_size=28).preprocessing
    assert (dino.resize, dino.crop, dino.interpolation) == (32, 28, "bicubic")
    assert dino.mean == (0.485, 0.456, 0.406) and dino.source.endswith("preprocessor_config.json")
    sig = build_frame_encoder("siglip2", tiny_siglip2_dir, input_size=32).preprocessing
    assert (sig.resize, sig.crop, sig.interpolation, sig.mean) == (32, 32, "bilinear",
                                                                   (0.5, 0.5, 0.5))
    frames = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    out = preprocess_frames(frames, dino, 28).numpy().transpose(0, 2, 3, 1)
    for frame, got in zip(frames, out):  # resize 32 (bicubic), crop [2:30], RGB, /255, mean/std
        ref = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_CUBIC)[2:30, 2:30, ::-1]
        ref = (ref.astype(np.float32) / np.float32(255) - np.array(dino.mean)) / np.array(dino.std)
        assert np.array_equal(got, ref.astype(np.float32))
    assert "centre crop 28x28" in describe(dino, 28) and "bilinear 32x32" in describe(sig, 32)


def test_a_folder_without_processor_config_uses_the_documented_defaults(tiny_dinov2_dir,
                                                                        tmp_path):
    import shutil

    from byov.models.backbones import build_frame_encoder
    folder = str(tmp_path / "bare")
    shutil.copytree(tiny_dinov2_dir, folder)
    os.remove(os.path.join(folder, "preprocessor_config.json"))
    with pytest.warns(UserWarning, match=r"no preprocessor_config.json for .*bare: using the "
                                         r"dinov2 defaults"):
        p = build_frame_encoder("dinov2", folder, input_size=28).preprocessing
    # facebook/dinov2-base's rule (short side 256, crop 224) at 28 px: resize 32, crop 28
    assert (p.resize, p.crop, p.interpolation, p.std) == (32, 28, "bicubic",
                                                          (0.229, 0.224, 0.225))


def test_unsupported_checkpoints_and_missing_weights_say_what_to_do(tmp_path):
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    from byov.models.frame_encoders import WeightsNotFoundError
    from byov.models.backbones import build_frame_encoder
    from byov.models.hf_backbones import BackboneConfigError, preprocessing_from_processor
    naflex = str(tmp_path / "naflex")
    Siglip2VisionModel(Siglip2VisionConfig(hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=1, num_attention_heads=2,
                                           num_patches=16)).save_pretrained(naflex)
    with pytest.raises(BackboneConfigError, match=r"'siglip2_vision_model' model.*NaFlex.*"
                                                  r"google/siglip2-base-patch16-224"):
        build_frame_encoder("siglip2", naflex, input_size=32)
    with pytest.raises(BackboneConfigError, match="NaFlex"):
        preprocessing_from_processor({"max_num_patches": 256, "patch_size": 16}, 32, "x.json")
    with pytest.raises(WeightsNotFoundError, match=r"hf download nobody/dinov2-missing"):
        build_frame_encoder("dinov2", "nobody/dinov2-missing", input_size=28)
    with pytest.raises(WeightsNotFoundError, match=r"dinov2 directory not found: /no/such/dir"):
        build_frame_encoder("dinov2", "/no/such/dir", input_size=28)


def test_input_size_and_hidden_dim_are_checked_against_the_model(tiny_dinov2_dir):
    from byov.methods.byov_method import ModelConfigError
    from train_helpers import method_of
    from byov.models.backbones import build_frame_encoder
    with pytest.raises(ValueError, match=r"multiple of dinov2's patch size 14"):
        build_frame_encoder("dinov2", tiny_dinov2_dir, input_size=32)
    from utils.config import Config, to_dict
    config = {**to_dict(Config()), "backbone": "dinov2", "vision_encoder_path": tiny_dinov2_dir,
              "input_size": 28, "dataset": "synthetic"}
    with pytest.raises(ModelConfigError, match=r"dinov2 backbone gives 32-d tokens; set "
                                               r"--hidden_dim 32"):
        method_of(config)


@pytest.mark.parametrize("name, features", [("dinov2", "fly"), ("siglip2", "tokens")])
def test_train_and_evaluate_on_the_synthetic_data(name, features, request, tmp_path,
                                                  synthetic_root, train_cache_dir):
    import evaluate
    fixture, size = SIZES[name]
    path = request.getfixturevalue(fixture)
    out = str(tmp_path / "run")
    argv = train_args(synthetic_root, path, out, train_cache_dir, backbone=name,
                      input_size=size, features=features,
                      feature_cache_dir=str(tmp_path / "features"))
    train_in_process(argv)
    ckpt = load_ckpt(out)
    assert ckpt["config"]["backbone"] == name and ckpt["step"] == 3
    if features == "tokens":  # the cache's manifest records the model's token grid and rule
        with open(tmp_path / "features" / "tokens" / "manifest.json") as f:
            manifest = json.load(f)
        assert manifest["backbone"] == name and manifest["token_layout"] == [4, 32]
        assert "bilinear 32x32" in manifest["preprocessing"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = evaluate.main(["--ckpt", os.path.join(out, "checkpoints", "last.pth"),
                                 "--dataset_root", os.path.dirname(synthetic_root),
                                 "--frame_cache_dir", train_cache_dir])
    finally:
        torch.set_num_threads(threads)
    embeds = np.load(os.path.join(out, "eval", "last", "test_embeds.npy"))
    assert embeds.shape[1] == 32 and np.isfinite(embeds).all()
    assert 0.0 <= metrics["classification_f1"]["regular"] <= 1.0
    assert -1.0 <= metrics["kendalls_tau"] <= 1.0


@pytest.mark.parametrize("name", sorted(SIZES))
def test_unfrozen_every_trainable_parameter_gets_a_gradient(name, request):
    """DDP (--no-freeze_base) refuses parameters that never receive a gradient."""
    from byov.models.backbones import build_frame_encoder
    fixture, size = SIZES[name]
    encoder = build_frame_encoder(name, request.getfixturevalue(fixture), input_size=size,
                                  freeze=False)
    encoder.train()
    encoder(torch.randn(2, 3, size, size)).sum().backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
