"""What each config key (utils/config.py's `Config`) does to a run: the one table of it.

Every key has exactly one class (tests/test_config_keys.py checks that every field of Config is
here):

- "arch"     shapes the saved weights: a checkpoint only loads into a model built with the same
             value (`byov.checkpoint.ARCH_KEYS`); differing on resume or evaluation is refused.
- "resume"   changes what a training step computes (objective, masks, pairs, optimizer, schedule,
             which epoch counts as best): a resume with another value is refused, naming the key
             and the checkpoint's value (`byov.training.assembly.prepare_run`). A resume continues the same
             run or none.
- "schedule" `epochs`: checked on resume when the number of steps shapes a schedule (cosine lr,
             EMA momentum); otherwise raising it just trains longer (`resume_keys`).
- "applied"  may change on resume; the new value is applied from the resumed step on and the
             change is printed (`changed_on_resume`): device, precision, the feature cache mode.
- "free"     changes no number a step computes (where files are, logging and saving cadence,
             worker count, evaluate.py-only settings, how the run starts).

`PATH_KEYS` are the keys holding filesystem paths, where a leading `~` is expanded once when the
config is resolved (utils/config.py's `load_config`).
"""
from __future__ import annotations

import os
from typing import Mapping

CLASSES = ("arch", "resume", "schedule", "applied", "free")

KEY_CLASS: dict[str, str] = {
    # -- data
    "dataset": "resume", "dataset_root": "free", "num_frames": "arch", "input_size": "arch",
    "pairing": "resume", "frame_cache_dir": "free", "num_workers": "free", "seed": "resume",
    # -- method
    "method": "arch", "loss_terms": "resume", "init_from": "free",
    # -- frame encoder (a frozen backbone is rebuilt from its weights on resume, not saved)
    "backbone": "arch", "vision_encoder_path": "arch", "pretrained": "resume",
    "resnet_stage": "arch", "freeze_base": "resume", "hidden_dim": "arch", "topk_ratio": "arch",
    "num_tokens": "arch", "encode_chunk_size": "free", "features": "applied",
    "feature_cache_dir": "free", "feature_dtype": "applied",
    # -- BYOV encoder / decoder
    "embedding_size": "arch", "decoder_embedding_size": "arch", "n_layers": "arch",
    "n_layers_dec": "arch", "n_heads": "arch", "mlp_ratio": "arch", "mask_ratio": "resume",
    "mcm_ratio": "resume", "compat_released_decoder": "arch", "target": "arch",
    "ema_momentum": "resume",
    # -- AE2 methods
    "frame_stride": "resume", "random_offset": "resume", "tcc_temp": "resume",
    "dtw_scale_factor": "resume", "dtw_beta": "resume", "dtw_ratio": "resume",
    "dtw_shuffle_num": "resume", "cyclic": "resume", "dtw_similarity": "resume",
    "tcc_symmetric": "resume", "vava_inter": "resume", "vava_step_prior": "resume",
    "context_grouping": "arch",
    # -- optimisation (the optimizer state restored on resume carries lr and weight decay)
    "lr": "resume", "wd": "resume", "epochs": "schedule", "batch_size": "resume",
    "lr_schedule": "resume", "warmup_epochs": "resume", "min_lr": "resume",
    "grad_clip": "resume", "steps_per_epoch": "resume",
    # -- run
    "output_dir": "free", "device": "applied", "precision": "applied", "compile": "applied",
    "resume": "free",
    "save_every": "free", "ds_every_n_epoch": "free", "best_metric": "resume",
    "log_every": "free",
    # -- evaluation (eval_task and the time feature define the val metrics best.pth is chosen on)
    "ckpt": "free", "weights": "free", "eval_task": "resume", "eval_mode": "free",
    "few_shot": "free", "progression_time_feature": "resume",
    # charades_ego's probe defines the val video mAP best.pth is chosen on
    "probe_c": "resume", "probe_max_iter": "resume",
}

# the order of ARCH_KEYS is the one of the checks' messages
ARCH_KEYS = ("method", "context_grouping", "backbone", "vision_encoder_path", "hidden_dim",
             "embedding_size", "decoder_embedding_size", "n_layers", "n_layers_dec", "n_heads",
             "mlp_ratio", "num_frames", "target", "compat_released_decoder", "topk_ratio",
             "num_tokens", "input_size", "resnet_stage")
# "method" is also a resume key: another objective's optimizer state belongs to other parameters
RESUME_KEYS = ("method",) + tuple(k for k, c in KEY_CLASS.items() if c == "resume")
APPLIED_KEYS = tuple(k for k, c in KEY_CLASS.items() if c == "applied")
PATH_KEYS = ("dataset_root", "frame_cache_dir", "feature_cache_dir", "vision_encoder_path",
             "output_dir", "init_from", "resume", "ckpt")


def keys_of(kind: str) -> tuple[str, ...]:
    """The keys of one class (CLASSES), in table order."""
    if kind not in CLASSES:
        raise ValueError(f"unknown key class {kind!r}; one of {', '.join(CLASSES)}")
    return tuple(k for k, c in KEY_CLASS.items() if c == kind)


def resume_keys(config: Mapping) -> tuple[str, ...]:
    """RESUME_KEYS, plus `epochs` when the number of steps shapes a schedule (cosine lr, EMA)."""
    from byov.spec import schedule_spec

    schedule = schedule_spec(config)
    keys = RESUME_KEYS
    if schedule.lr_schedule == "cosine" or schedule.ema_momentum is not None:
        keys += ("epochs",)
    return keys


def changed_on_resume(saved: Mapping, config: Mapping) -> list[str]:
    """'key: old -> new' for each "applied" key (and `epochs` when not checked) that differs
    between a resumed checkpoint's config and the current one, to be printed."""
    keys = APPLIED_KEYS + (() if "epochs" in resume_keys(config) else ("epochs",))
    return [f"{k}: {saved[k]!r} -> {config[k]!r}" for k in keys
            if k in saved and k in config and saved[k] != config[k]]


def expand_user_paths(values: Mapping) -> tuple[dict, list[str]]:
    """(values with a leading `~` of each PATH_KEYS value expanded, 'key: old -> new' notes).

    Raises:
        ValueError: a `~` that cannot be expanded (`~name` of an unknown user, no home folder),
            naming the key; a folder literally named `~` is never created.
    """
    out, notes = dict(values), []
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value.startswith("~"):
            expanded = os.path.expanduser(value)
            if expanded.startswith("~"):  # ~name of an unknown user, or no HOME
                raise ValueError(f"'{key}': {value!r} starts with '~' but it cannot be expanded "
                                 f"(unknown user or no home folder); write the full path")
            out[key] = expanded
            notes.append(f"{key}: {value} -> {expanded}")
    return out, notes
