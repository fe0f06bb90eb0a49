"""Training runs end to end on the CPU: run folder, checkpoints, EMA teacher, unfrozen backbone,
strict rebuilding and the finite-loss guard (docs/design.md: training-loop-and-precision,
checkpoints-as-plain-data, run-folder)."""
import contextlib
from types import SimpleNamespace
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

from byov.training import engine
from byov.checkpoint import CheckpointError
from byov.data.layout import list_videos
from byov.training.engine import NonFiniteLossError
from byov.models.ema import momentum_schedule
from train_helpers import (CHECKPOINT_KEYS, byov_model_of, embed_splits, frame_encoder_of,
                           method_of, model_from_checkpoint, distance, epoch_summaries, load_ckpt, read_log,
                           tensors_differing, train_args, train_cli, train_in_process)

STEPS = 3  # ceil(3 train videos / batch 1)


@pytest.fixture(scope="module")
def smoke_run(synthetic_root, tiny_clip_dir, train_cache_dir, tmp_path_factory):
    """`python train.py` for 2 epochs with downstream evaluation after each: (run dir, process)."""
    run_dir = str(tmp_path_factory.mktemp("smoke") / "run")
    proc = train_cli(train_args(synthetic_root, tiny_clip_dir, run_dir, train_cache_dir, epochs=2,
                                ds_every_n_epoch=1, log_every=2))
    return run_dir, proc


def test_smoke_run_writes_the_run_folder(smoke_run):
    run_dir, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rel in ("config.yaml", "log.jsonl", "checkpoints/last.pth", "checkpoints/best.pth",
                "checkpoints/epoch_0000.pth", "checkpoints/epoch_0001.pth"):
        assert os.path.isfile(os.path.join(run_dir, rel)), rel
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(os.path.join(run_dir, "tb")))
    for epoch in ("epoch_0000", "epoch_0001"):
        for name in ("metrics.json", "metrics.md", "train_embeds.npy", "val_embeds.npy"):
            assert os.path.isfile(os.path.join(run_dir, "eval", epoch, name)), (epoch, name)

    records = read_log(run_dir)
    summaries = epoch_summaries(records)
    assert [r["epoch"] for r in summaries] == [0, 1]
    assert [r["step"] for r in summaries] == [STEPS, 2 * STEPS]
    for r in summaries:
        for key in ("train/loss", "train/msm", "val/loss", "val/val_score",
                    "val/classification_f1/regular", "val/retrieval_map10/regular",
                    "val/kendalls_tau", "val/progression_r2"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
    step_lines = [r for r in records if "train/lr" in r]
    assert [r["step"] for r in step_lines] == [2, 4, 6]  # log_every 2
    assert all(r["train/lr"] == 1e-3 and math.isfinite(r["train/loss"]) for r in step_lines)

    with open(os.path.join(run_dir, "eval", "epoch_0001", "metrics.json")) as f:
        saved = json.load(f)
    assert saved["meta"]["eval_split"] == "val"
    assert saved["metrics"]["val_score"] == pytest.approx(summaries[1]["val/val_score"], abs=1e-12)

    # best.pth follows val_score; epoch_0001.pth is a byte copy of the final last.pth
    scores = [r["val/val_score"] for r in summaries]
    best = load_ckpt(run_dir, "best.pth")
    assert best["epoch"] == int(np.argmax(scores))
    assert best["val_metrics"]["best"] == pytest.approx(max(scores), abs=1e-12)
    with open(os.path.join(run_dir, "checkpoints", "last.pth"), "rb") as a, \
            open(os.path.join(run_dir, "checkpoints", "epoch_0001.pth"), "rb") as b:
        assert a.read() == b.read()


def test_checkpoint_round_trip_rebuilds_the_trained_model(smoke_run):
    run_dir, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_ckpt(run_dir)  # weights_only=True
    assert set(ckpt) == CHECKPOINT_KEYS  # no teacher, no backbone: --target features, frozen
    assert (ckpt["step"], ckpt["epoch"]) == (2 * STEPS, 1)
    with open(os.path.join(run_dir, "config.yaml")) as f:
        assert ckpt["config"] == yaml.safe_load(f)
    assert ckpt["val_metrics"]["val_score"] == pytest.approx(
        epoch_summaries(read_log(run_dir))[1]["val/val_score"], abs=1e-12)

    frame_encoder, model = model_from_checkpoint(ckpt, ckpt["config"])
    assert not tensors_differing(model.encoder.state_dict(), ckpt["encoder"])
    # The run embedded the val videos with these weights after its last epoch (eval/epoch_0001):
    # the model rebuilt from the checkpoint alone must reproduce those embeddings.
    method = method_of(ckpt["config"])
    method.load_state_entries(ckpt)
    method.eval()
    assert not tensors_differing(method.model.encoder.state_dict(), model.encoder.state_dict())
    val = embed_splits(method, ckpt["config"], ("val",), progress=False)["val"]
    saved = np.load(os.path.join(run_dir, "eval", "epoch_0001", "val_embeds.npy"))
    assert val.embeds.shape == saved.shape == (val.embeds.shape[0], 32)
    np.testing.assert_allclose(val.embeds, saved, rtol=1e-5, atol=1e-6)


def test_strict_load_names_the_depth_mismatch_and_advises_no_refused_flag(smoke_run):
    """The model is always built from the checkpoint's own architecture keys (overriding them is
    refused), so a weights/config mismatch must not advise a flag: it names the counts and says
    the stored config does not describe the weights."""
    run_dir, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_ckpt(run_dir)
    for key, part in (("n_layers", "encoder"), ("n_layers_dec", "decoder")):
        with pytest.raises(CheckpointError, match=rf"checkpoint has 1 {part} blocks.*model has 2 "
                                                  rf"\({key} 2 in the config used\)") as e:
            model_from_checkpoint(ckpt, {**ckpt["config"], key: 2})
        assert "--" not in str(e.value) and "config' entry does not describe" in str(e.value)
    with pytest.raises(CheckpointError, match=r"shape of"):
        model_from_checkpoint(ckpt, {**ckpt["config"], "embedding_size": 64})


def test_evaluate_never_advises_a_value_it_then_refuses(smoke_run, tmp_path):
    """A checkpoint whose weights do not fit its stored config (an edited file): evaluate.py
    explains that, and neither the old advice (--n_layers 2) nor any other flag is offered."""
    import subprocess
    import sys

    from train_helpers import subprocess_env

    run_dir, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_ckpt(run_dir)
    edited = str(tmp_path / "edited.pth")
    torch.save({**ckpt, "config": {**ckpt["config"], "n_layers": 2}}, edited)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "evaluate.py", "--ckpt", edited, "--embed_dir",
                          str(tmp_path / "e")], cwd=root, env=subprocess_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "does not describe its weights" in out.stderr and "--n_layers" not in out.stderr


def test_missing_resume_file_exits_without_training(args, tmp_path):
    missing = str(tmp_path / "nowhere" / "last.pth")
    proc = train_cli(args("run", resume=missing))
    assert proc.returncode != 0
    assert missing in proc.stderr and "no such checkpoint file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing written: no config, log or checkpoint


def test_ema_target_trains_a_moving_teacher(args, tmp_path):
    train_in_process(args("ema", target="ema"))
    train_in_process(args("still", target="ema", lr=0.0))  # Adam with lr 0: weights stay at init
    ckpt, still = load_ckpt(str(tmp_path / "ema")), load_ckpt(str(tmp_path / "still"))
    assert set(ckpt) == CHECKPOINT_KEYS | {"target"}
    init = still["encoder"]
    assert not tensors_differing(still["target"], init)  # a still student leaves the teacher be
    assert tensors_differing(ckpt["target"], ckpt["encoder"])
    # the teacher moved from its init towards the student, by a small fraction (m >= 0.996)
    moved, student = distance(ckpt["target"], init), distance(ckpt["encoder"], init)
    assert 0 < moved < 0.05 * student
    # the momentum logged after each step follows the cosine schedule from 0.996 to 1
    logged = [r["train/ema_momentum"] for r in read_log(str(tmp_path / "ema"))
              if "train/ema_momentum" in r]
    np.testing.assert_allclose(logged, momentum_schedule(0.996, STEPS)[1:], rtol=0, atol=1e-15)
    # the teacher is what --weights ema embeds with after a rebuild
    _, model = model_from_checkpoint(ckpt, ckpt["config"])
    x = torch.randn(1, 7, 32)
    assert torch.equal(model.embed(x, "ema"), model.target_encoder(x))
    assert not torch.allclose(model.embed(x, "ema"), model.embed(x, "online"))
    # evaluate.py --weights ema embeds with the teacher; a run without one is refused clearly
    import evaluate
    from byov.eval.io import EvalInputError
    ckpt_path = str(tmp_path / "ema" / "checkpoints" / "last.pth")
    for weights in ("online", "ema"):
        evaluate.main(["--ckpt", ckpt_path, "--weights", weights, "--eval_mode", "val",
                       "--embed_dir", str(tmp_path / weights)])
    online, ema = (np.load(tmp_path / w / "val_embeds.npy") for w in ("online", "ema"))
    assert online.shape == ema.shape and not np.allclose(online, ema)
    train_in_process(args("plain", epochs=1))
    with pytest.raises(EvalInputError, match="--weights ema needs an EMA teacher"):
        evaluate.main(["--ckpt", str(tmp_path / "plain" / "checkpoints" / "last.pth"),
                       "--weights", "ema"])


def test_unfrozen_backbone_is_trained_and_saved(args, tmp_path):
    train_in_process(args("unfrozen", freeze_base=False))
    ckpt = load_ckpt(str(tmp_path / "unfrozen"))
    assert set(ckpt) == CHECKPOINT_KEYS | {"backbone"}
    initial = frame_encoder_of(ckpt["config"]).state_dict()
    changed = [k for k in initial if not torch.equal(initial[k], ckpt["backbone"][k])]
    assert any("encoder.layers.0" in k for k in changed), changed
    assert any("patch_embedding" in k for k in changed), changed
    assert not any("post_layernorm" in k for k in changed)  # not part of the tokens: no grads
    # the optimizer holds the BYOV parameters and the backbone's trainable ones
    n_backbone = sum(p.requires_grad for p in
                     frame_encoder_of(ckpt["config"]).parameters())
    n_byov = len(byov_model_of(ckpt["config"]).trainable_parameters())
    assert len(ckpt["optimizer"]["param_groups"][0]["params"]) == n_byov + n_backbone
    frame_encoder, _ = model_from_checkpoint(ckpt, ckpt["config"])
    assert not tensors_differing(frame_encoder.state_dict(), ckpt["backbone"])


class _NonFiniteStep(nn.Module):
    """Stands in for a method: its loss is `value` times a parameter."""
    loss_keys = ("loss", "msm", "mcm_view1", "mcm_view2")

    def __init__(self, value):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.value = value

    def forward(self, batch, entropy):
        loss = self.w * self.value
        return {"loss": loss, "msm": loss, "mcm_view1": self.w * 0, "mcm_view2": self.w * 0}

    def after_optimizer_step(self, step):
        raise AssertionError("no optimizer step may follow a non-finite loss")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_stops_before_the_optimizer_step(value):
    step_module = _NonFiniteStep(value)
    optimizer = torch.optim.SGD(step_module.parameters(), lr=0.1)
    batch = {"inputs": torch.zeros(1, 2, 4, 8)}
    with pytest.raises(NonFiniteLossError, match=rf"loss is {value} at step 5 .*Lower --lr"):
        run = SimpleNamespace(
            module=step_module, method=step_module, train_loader=[batch], optimizer=optimizer,
            lrs=np.full(10, 0.1), scaler=None, autocast=contextlib.nullcontext,
            info=SimpleNamespace(device=torch.device("cpu"), rank=0),
            run=SimpleNamespace(seed=0, log_every=1), optim=SimpleNamespace(grad_clip=0.0))
        engine.train_one_epoch(run, 5)
    assert step_module.w.item() == 1.0 and step_module.w.grad is None


def test_diverging_run_stops_with_a_clear_error_and_no_checkpoint(args, tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"loss is (nan|inf) at step \d"):
        train_in_process(args("diverge", lr=1e30))
    assert not os.path.exists(tmp_path / "diverge" / "checkpoints" / "last.pth")


@pytest.mark.parametrize("overrides, message", [
    ({"mcm_ratio": 0.8}, r"'mcm_ratio' 0.8 leaves no visible frame out of num_frames 4"),
    ({"warmup_epochs": 2}, r"'warmup_epochs' \(2\) exceeds 'epochs' \(1\)"),
    ({"lr_schedule": "cosine", "min_lr": 1.0}, r"'min_lr' \(1.0\) exceeds 'lr'"),
])
def test_settings_that_cannot_train_are_config_errors(args, tmp_path, overrides, message):
    """Caught when the config is read (train.py prints `error: ...`), not as a traceback from
    deep inside the model or the schedules once data has been prepared."""
    from utils.config import ConfigError
    with pytest.raises(ConfigError, match=message):
        train_in_process(args("bad", **overrides))
    assert not os.path.exists(tmp_path / "bad")


def test_downstream_evaluation_leaves_an_unfrozen_backbone_untouched(args, tmp_path):
    """Embedding whole videos must run the backbone in eval mode: an unfrozen CNN's BatchNorm
    would otherwise normalise with batch statistics and overwrite its running ones."""
    from byov.training import loop as trainer
    from byov.models.frame_encoders import CLIP_MEAN, CLIP_STD, FrameEncoder
    from utils.config import load_config, to_dict

    class ConvBN(FrameEncoder):
        def _tokens(self, images):  # (n, 3, 32, 32) -> (n, 4, 32)
            return self.backbone(images).flatten(2).transpose(1, 2)

    config = to_dict(load_config(args("ds", freeze_base=False))[0])
    torch.manual_seed(0)
    frame_encoder = ConvBN("convbn", nn.Sequential(nn.Conv2d(3, 32, 16, 16), nn.BatchNorm2d(32)),
                           num_patches=4, dim=32, input_size=32, mean=CLIP_MEAN, std=CLIP_STD,
                           weights_source="random-init", freeze=False).train()
    import dataclasses

    from byov.data.layout import load_labels
    from byov.spec import downstream_spec
    from byov.training.assembly import SPLITS

    method = method_of(config, frame_encoder=frame_encoder).train()
    videos = {s: list_videos(config["dataset_root"], config["dataset"], s) for s in SPLITS}
    labels = load_labels(config["dataset_root"], config["dataset"])
    before = {k: v.clone() for k, v in frame_encoder.state_dict().items()}
    spec = downstream_spec(config)
    spec = dataclasses.replace(spec, eval=dataclasses.replace(spec.eval, split="val"))
    run = SimpleNamespace(downstream=spec, method=method, videos=videos, labels=labels)
    metrics = trainer.downstream(run, str(tmp_path / "eval"))
    assert math.isfinite(metrics["val_score"])
    assert not tensors_differing(frame_encoder.state_dict(), before)  # running stats, counter
    assert frame_encoder.training and method.model.training  # training mode given back


def test_evaluate_ckpt_rebuilds_the_model_and_reuses_embeddings(smoke_run):
    """evaluate.py --ckpt alone (no architecture flags) embeds like the run's own val evaluation,
    writes the run folder's eval/<checkpoint stem>/ (docs/design.md#run-folder), reuses it on a
    second call and compares with the frozen features."""
    import subprocess
    import sys

    from train_helpers import subprocess_env

    run_dir, proc = smoke_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ckpt = os.path.join(run_dir, "checkpoints", "epoch_0001.pth")

    def evaluate(*extra):
        return subprocess.run([sys.executable, "evaluate.py", *extra], cwd=root,
                              env=subprocess_env(), capture_output=True, text=True, timeout=120)

    folder = os.path.join(run_dir, "eval", "epoch_0001")  # <run>/eval/<checkpoint stem>/
    during_training = np.load(os.path.join(folder, "val_embeds.npy"))
    out = os.path.join(run_dir, "ckpt_eval.json")
    p = evaluate("--ckpt", ckpt, "--eval_mode", "val", "--json", out)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "embedded into" in p.stdout
    got = np.load(os.path.join(folder, "val_embeds.npy"))
    assert got.shape[1] == 32  # embedding_size of the tiny run, taken from the checkpoint
    np.testing.assert_allclose(got, during_training, atol=1e-5)
    with open(out) as f:
        metrics = json.load(f)
    assert set(metrics["classification_f1"]) == {"regular", "ego2exo", "exo2ego"}
    assert isinstance(metrics["kendalls_tau"], float)
    p = evaluate("--ckpt", ckpt, "--eval_mode", "val")
    assert p.returncode == 0 and "reusing the embeddings" in p.stdout

    frozen = os.path.join(run_dir, "frozen.json")
    cfg = os.path.join(run_dir, "config.yaml")
    p = evaluate("--config", cfg, "--frozen_features", "--eval_mode", "val", "--json", frozen)
    assert p.returncode == 0, p.stderr[-3000:]
    assert np.load(os.path.join(run_dir, "eval", "baseline_frozen", "val_embeds.npy")).shape[1] == 32
    p = subprocess.run([sys.executable, "-m", "byov.eval.tables", "compare", frozen, out,
                        "--names", "frozen", "trained"], cwd=root, env=subprocess_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "| F1 Regular |" in p.stdout and "trained" in p.stdout
