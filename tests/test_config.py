import os

import pytest
import yaml

from utils.config import Config, ConfigError, dump_config, load_config


def write_yaml(tmp_path, values):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_defaults_are_released_values():
    cfg, _ = load_config([])
    assert cfg.lr == 1e-5 and cfg.wd == 5e-6 and cfg.mask_ratio == 0.4 and cfg.topk_ratio == 0.3
    assert cfg.freeze_base is True and cfg.eval_mode == "test" and cfg.mcm_ratio == 0.8


def test_precedence_defaults_yaml_cli(tmp_path):
    path = write_yaml(tmp_path, {"num_frames": 20, "lr": 2e-5, "dataset": "pour_milk"})
    cfg, _ = load_config(["--config", path, "--lr", "3e-4"])
    assert cfg.num_frames == 20  # yaml beats default
    assert cfg.lr == 3e-4  # cli beats yaml
    assert cfg.dataset == "pour_milk"
    assert cfg.batch_size == Config().batch_size  # untouched default


def test_floats_parse_as_floats_and_bools_are_flags():
    cfg, _ = load_config(["--mask_ratio", "0.5", "--topk_ratio", "0.25", "--no-freeze_base"])
    assert cfg.mask_ratio == 0.5 and isinstance(cfg.mask_ratio, float)
    assert cfg.topk_ratio == 0.25
    assert cfg.freeze_base is False
    cfg, _ = load_config(["--freeze_base"])
    assert cfg.freeze_base is True


def test_yaml_int_accepted_for_float(tmp_path):
    cfg, _ = load_config(["--config", write_yaml(tmp_path, {"lr": 1})])
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


def test_unknown_yaml_key_is_error_naming_key(tmp_path):
    with pytest.raises(ConfigError, match="mask_ration"):
        load_config(["--config", write_yaml(tmp_path, {"mask_ration": 0.3})])


def test_wrong_type_in_yaml_names_key(tmp_path):
    with pytest.raises(ConfigError, match="num_frames"):
        load_config(["--config", write_yaml(tmp_path, {"num_frames": "many"})])
    with pytest.raises(ConfigError, match="freeze_base"):
        load_config(["--config", write_yaml(tmp_path, {"freeze_base": "yes"})])


def test_unknown_cli_flag_and_bad_value_exit(capsys):
    with pytest.raises(SystemExit):
        load_config(["--mask_ration", "0.3"])
    with pytest.raises(SystemExit):
        load_config(["--num_frames", "3.5"])
    assert "num_frames" in capsys.readouterr().err


def test_choices_and_ranges_validated(tmp_path):
    with pytest.raises(ConfigError, match="pairing"):
        load_config(["--config", write_yaml(tmp_path, {"pairing": "random"})])
    with pytest.raises(ConfigError, match="mask_ratio"):
        load_config(["--mask_ratio", "1.5"])
    # any folder name may be a dataset of one's own (byov.data.convert); a path may not
    assert load_config(["--dataset", "my_eggs"])[0].dataset == "my_eggs"
    with pytest.raises(ConfigError, match="'dataset' must be a folder name"):
        load_config(["--dataset", "../imagenet"])


def test_missing_config_file_lists_valid_names(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(["--config", str(tmp_path / "nope.yaml")])


def test_dump_round_trip(tmp_path):
    cfg, _ = load_config(["--lr", "0.001", "--no-freeze_base"])
    path = tmp_path / "run" / "config.yaml"
    dump_config(cfg, str(path))
    again, _ = load_config(["--config", str(path)])
    assert again == cfg
    assert not [n for n in os.listdir(path.parent) if ".tmp." in n]
