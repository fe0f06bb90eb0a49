"""Every config key is classified once (byov/spec/keys.py); a resume with another value of a
key that changes what a step computes is refused; yaml duplicate keys are refused naming both
lines (configs and benchmark grids); `~` in paths is expanded and said; a key's type is its
annotation."""
import glob
import os
import importlib.util
import sys

import pytest
import yaml

from byov.spec import keys as config_keys
from byov.checkpoint import CheckpointError
from byov.yaml_strict import DuplicateKeyError, load
from conftest import ROOT
from train_helpers import train_in_process
from utils import config as cfgmod


def test_every_config_key_is_classified_once():
    assert set(config_keys.KEY_CLASS) == set(cfgmod.KEYS)
    assert set(config_keys.ARCH_KEYS) == set(config_keys.keys_of("arch"))
    assert set(config_keys.PATH_KEYS) <= set(config_keys.keys_of("free")) | {"vision_encoder_path"}
    for key in ("wd", "frame_stride", "dtw_shuffle_num", "dtw_scale_factor", "grad_clip",
                "mask_ratio", "loss_terms", "best_metric"):
        assert key in config_keys.RESUME_KEYS, key


# AE2's embedder at 32 px, random init (as tests/test_methods.py): one step per epoch
AE2_TINY = {"method": "dtw_contrastive", "input_size": 32, "embedding_size": 16,
            "num_frames": 4, "frame_stride": 3, "dtw_shuffle_num": 2, "pretrained": False,
            "freeze_base": False, "batch_size": 2, "steps_per_epoch": 1, "precision": "fp32"}


@pytest.mark.parametrize("key, value", [("frame_stride", 1), ("dtw_shuffle_num", 1),
                                        ("dtw_scale_factor", 0.1)])
def test_ae2_step_keys_are_refused_on_resume(args, tmp_path, key, value):
    train_in_process(args("run", **AE2_TINY))
    with pytest.raises(CheckpointError, match=rf"{key}: checkpoint"):
        train_in_process(args("run", **{**AE2_TINY, key: value}, epochs=2, resume="auto"))


def test_applied_key_change_is_printed_on_resume(args, capsys):
    train_in_process(args("run"))
    capsys.readouterr()
    train_in_process(args("run", epochs=2, resume="auto", precision="fp32"))
    assert "resume: precision: 'bf16' -> 'fp32' (applied from the resumed step on)" in \
        capsys.readouterr().out


def test_yaml_duplicate_keys_are_refused_naming_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.1\nepochs: 3\nlr: 0.2\n")
    with pytest.raises(cfgmod.ConfigError, match=r"'lr' is given twice, on line 1 and on line 3"):
        cfgmod.load_config(["--config", str(path)])
    grid = tmp_path / "grid.yaml"
    grid.write_text("datasets: [demo]\noverrides:\n  epochs: 2\nseeds: [0]\noverrides:\n"
                    "  lr: 0.1\n")
    from byov.grid.jobs import load_grid
    with pytest.raises(DuplicateKeyError, match=r"'overrides' is given twice, on line 2 and on "
                                                r"line 5"):
        load_grid(str(grid))


def test_shipped_yaml_files_have_no_duplicate_keys():
    files = glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)
    assert files
    for path in files:
        assert load(path) == yaml.safe_load(open(path)), path


def test_tilde_in_paths_is_expanded_and_said(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: ~/runs/x\ndataset_root: ~/AE2_data\n")
    cfg, _ = cfgmod.load_config(["--config", str(path), "--frame_cache_dir", "~/fc"])
    assert cfg.output_dir == str(tmp_path / "runs" / "x")
    assert cfg.dataset_root == str(tmp_path / "AE2_data")
    assert cfg.frame_cache_dir == str(tmp_path / "fc")
    err = capsys.readouterr().err
    assert f"expanded ~ in output_dir: ~/runs/x -> {tmp_path}/runs/x" in err
    with pytest.raises(cfgmod.ConfigError, match="'output_dir'.*cannot be expanded"):
        cfgmod.load_config(["--output_dir", "~no_such_user_xyz/runs"])


def test_a_keys_type_is_its_annotation_not_its_default(tmp_path, monkeypatch):
    """A user edits utils/config.py to `grad_clip: float = 1`: --grad_clip 0.5 must still work."""
    text = open(os.path.join(ROOT, "utils", "config.py")).read()
    edited = text.replace('grad_clip: float = _key(0.0,', 'grad_clip: float = _key(1,')
    assert edited != text
    path = tmp_path / "edited_config.py"
    path.write_text(edited)
    spec = importlib.util.spec_from_file_location("edited_config", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "edited_config", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    assert module.Config().grad_clip == 1
    cfg, _ = module.load_config(["--grad_clip", "0.5"])
    assert cfg.grad_clip == 0.5
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text("grad_clip: 0.25\n")
    assert module.load_config(["--config", str(yaml_path)])[0].grad_clip == 0.25
