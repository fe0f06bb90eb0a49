"""The spec layer: the one library module that reads the flat config's keys.

A run's settings arrive as the resolved flat config (a dict of `utils/config.py`'s fields, the
released flag names; it is also what every checkpoint stores). This module turns it into small,
typed, immutable specs, one per concern, and every other library module takes those specs or plain
arguments. So a key is spelled in one place, and a module's signature says what it depends on.

    data_spec(config)           DataSpec           where the dataset is (root, name, frame caches)
    frame_encoder_spec(config)  FrameEncoderSpec   the frozen per-frame backbone
    merge_spec(config)          TokenMergeSpec     selective token merging's K
    feature_spec(config)        FeatureCacheSpec   the per-frame feature cache (--features)
    method_spec(config)         MethodSpec         the training method (BYOV or an AE2 objective)
    optim_spec(config)          OptimSpec          Adam (coupled L2 weight decay), clipping
    schedule_spec(config)       ScheduleSpec       epochs, batches, lr / EMA schedules
    eval_spec(config)           EvalSpec           the downstream protocol
    downstream_spec(config)     DownstreamSpec     model + protocol of an evaluation
    run_spec(config)            RunSpec            run folder, device, precision, resume, logging

`byov.spec.keys` classifies every key by what a change of it does to a run (architecture, resume,
applied, free); `byov.spec.protocol` checks rules across keys (best.pth must be choosable).
Key names and meanings: `utils/config.py` (`python train.py --help`). Outside this package only the
run assembly (`byov.training.assembly`, which stores the whole config in checkpoints and compares
it on resume) and the command-line front ends touch the config as a whole; a test enforces it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

# Settings that decide what an embedding is, besides the checkpoint and the data: an evaluation
# folder is reused only when they are equal (`byov.downstream`).
EMBEDDING_KEYS = ("method", "backbone", "vision_encoder_path", "input_size", "resnet_stage",
                  "topk_ratio", "num_tokens", "features", "feature_dtype", "frame_stride",
                  "context_grouping", "embedding_size", "hidden_dim")

# ------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataSpec:
    """A dataset in the AE2 layout: `<root>/<dataset>/` (docs/data.md).

    frame_cache_dir: where h5 frame caches go; "" = next to each video (released).
    """
    root: str
    dataset: str
    frame_cache_dir: str = ""

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.dataset)


def data_spec(config: Mapping) -> DataSpec:
    return DataSpec(root=config["dataset_root"], dataset=config["dataset"],
                    frame_cache_dir=config.get("frame_cache_dir") or "")


# ---------------------------------------------------------------------------- frame encoder
@dataclass(frozen=True)
class FrameEncoderSpec:
    """A per-frame backbone (`byov.models.frame_encoders.build_frame_encoder`).

    weights: hub id, local folder or .pth file ("" = the backbone's default weights).
    pretrained: False = random init (tests, or no weights at hand).
    """
    backbone: str
    weights: str = ""
    input_size: int = 224
    resnet_stage: str = "layer3"
    freeze: bool = True
    pretrained: bool = True


def frame_encoder_spec(config: Mapping) -> FrameEncoderSpec:
    return FrameEncoderSpec(backbone=config["backbone"], weights=config["vision_encoder_path"],
                            input_size=int(config["input_size"]),
                            resnet_stage=config["resnet_stage"], freeze=config["freeze_base"],
                            pretrained=config.get("pretrained", True))


@dataclass(frozen=True)
class TokenMergeSpec:
    """Selective token merging keeps K = round(N * topk_ratio) tokens per frame, N the backbone's
    real patch count (`num_tokens` > 0 overrides N, as the released constant 196 did)."""
    topk_ratio: float
    num_tokens: int = 0

    def tokens_to_keep(self, num_patches: int) -> int:
        from byov.models.stm import num_selected_tokens
        return num_selected_tokens(num_patches, self.topk_ratio, self.num_tokens)


def merge_spec(config: Mapping) -> TokenMergeSpec:
    return TokenMergeSpec(topk_ratio=config["topk_ratio"], num_tokens=config["num_tokens"])


# ---------------------------------------------------------------------------- feature cache
def default_feature_cache_dir(data: DataSpec, backbone: str, input_size: int) -> str:
    """`<dataset_root>/byov_cache/<dataset>/<backbone>_<input_size>/` (absolute)."""
    return os.path.join(os.path.abspath(data.root), "byov_cache", data.dataset,
                        f"{backbone}_{int(input_size)}")


@dataclass(frozen=True)
class FeatureCacheSpec:
    """The per-frame feature cache (docs/design.md#feature-cache).

    kind: what training reads: "fly" (frames, released), "tokens" or "merged".
    cache_dir: the cache folder (absolute). dtype: "fp16" or "fp32".
    chunk_size: frames per backbone forward; num_workers: decode workers; device: extraction;
    compile: torch.compile the backbone for extraction.
    """
    kind: str
    dtype: str
    cache_dir: str
    encoder: FrameEncoderSpec
    merge: TokenMergeSpec
    data: DataSpec
    chunk_size: int = 64
    num_workers: int = 0
    device: str = "auto"
    compile: bool = False  # torch.compile the backbone for extraction (docs/gpu.md)


def feature_spec(config: Mapping) -> FeatureCacheSpec:
    data, encoder = data_spec(config), frame_encoder_spec(config)
    cache_dir = (os.path.abspath(config["feature_cache_dir"]) if config["feature_cache_dir"]
                 else default_feature_cache_dir(data, encoder.backbone, encoder.input_size))
    return FeatureCacheSpec(kind=config["features"], dtype=config["feature_dtype"],
                            cache_dir=cache_dir, encoder=encoder, merge=merge_spec(config),
                            data=data, chunk_size=int(config["encode_chunk_size"]),
                            num_workers=int(config["num_workers"]), device=config["device"],
                            compile=bool(config.get("compile", False)))


# ---------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class ByovModelSpec:
    """The trainable BYOV encoder + decoder (`byov.models.byov.BYOV`; paper Sec. 3)."""
    hidden_dim: int
    embedding_size: int
    decoder_embedding_size: int
    n_layers: int
    n_layers_dec: int
    n_heads: int
    mlp_ratio: float
    num_frames: int
    mask_ratio: float
    mcm_ratio: float
    compat_released_decoder: bool = False
    target: str = "features"


def byov_model_spec(config: Mapping) -> ByovModelSpec:
    return ByovModelSpec(
        hidden_dim=config["hidden_dim"], embedding_size=config["embedding_size"],
        decoder_embedding_size=config["decoder_embedding_size"], n_layers=config["n_layers"],
        n_layers_dec=config["n_layers_dec"], n_heads=config["n_heads"],
        mlp_ratio=config["mlp_ratio"], num_frames=config["num_frames"],
        mask_ratio=config["mask_ratio"], mcm_ratio=config["mcm_ratio"],
        compat_released_decoder=config["compat_released_decoder"], target=config["target"])


def released_model_spec(config: Mapping, compat_released_decoder: bool) -> ByovModelSpec:
    """A features-target BYOV from the released code's flag names (parity fixtures). Without an
    `mcm_ratio` key the cross-view ratio is the released hard-wired 2 * mask_ratio.

    Raises KeyError naming the missing flags."""
    required = ("hidden_dim", "embedding_size", "decoder_embedding_size", "n_layers",
                "n_layers_dec", "n_heads", "mlp_ratio", "num_frames", "mask_ratio")
    missing = [k for k in required if k not in config]
    if missing:
        raise KeyError(f"released config lacks {missing}; it must hold {required}")
    return byov_model_spec({**config, "mcm_ratio": config.get("mcm_ratio",
                                                              2 * config["mask_ratio"]),
                            "compat_released_decoder": compat_released_decoder,
                            "target": "features"})


@dataclass(frozen=True)
class AE2Spec:
    """One of AE2's objectives on AE2's embedder (`byov.methods.ae2_method`).

    loss: keywords of `byov.ae2.losses.alignment_loss` (scale_factor, tcc_temp, dtw_ratio,
    dtw_beta, cyclic, dtw_l2_normalize, tcc_symmetric, vava_released_inter).
    """
    embedding_size: int
    released_grouping: bool
    frame_stride: int
    random_offset: int
    num_positives: int
    step_prior: bool
    cyclic: str
    loss: Mapping = field(default_factory=dict)


def ae2_spec(config: Mapping) -> AE2Spec:
    loss = {"scale_factor": config["dtw_scale_factor"], "tcc_temp": config["tcc_temp"],
            "dtw_ratio": config["dtw_ratio"], "dtw_beta": config["dtw_beta"],
            "dtw_l2_normalize": config["dtw_similarity"] == "cosine",
            "tcc_symmetric": config["tcc_symmetric"],
            "vava_released_inter": config["vava_inter"] == "released"}
    return AE2Spec(embedding_size=config["embedding_size"],
                   released_grouping=config["context_grouping"] == "released",
                   frame_stride=config["frame_stride"], random_offset=config["random_offset"],
                   num_positives=config["dtw_shuffle_num"], step_prior=config["vava_step_prior"],
                   cyclic=config["cyclic"], loss=loss)


@dataclass(frozen=True)
class MethodSpec:
    """A training method: `name` (the `--method` value), its data and frame source, sampler
    settings, and the method's own part (`byov` for BYOV, `ae2` for AE2's objectives)."""
    name: str
    data: DataSpec
    encoder: FrameEncoderSpec
    features: FeatureCacheSpec
    num_frames: int
    pairing: str
    chunk_size: int
    byov: ByovModelSpec | None = None
    ae2: AE2Spec | None = None
    loss_terms: str = "all"


def method_spec(config: Mapping, name: str | None = None) -> MethodSpec:
    """The method `name` (default: config's `method`) with the config's settings."""
    name = name or config.get("method", "byov")
    features = feature_spec(config)
    return MethodSpec(name=name, data=features.data, encoder=features.encoder,
                      features=features, num_frames=config["num_frames"],
                      pairing=config["pairing"], chunk_size=int(config["encode_chunk_size"]),
                      byov=byov_model_spec(config) if name == "byov" else None,
                      ae2=ae2_spec(config) if name != "byov" else None,
                      loss_terms=config.get("loss_terms", "all"))


# ---------------------------------------------------------------------------- optimisation
@dataclass(frozen=True)
class OptimSpec:
    """Adam with coupled L2 weight decay (released `configure_optimizers`), optional clipping."""
    lr: float
    weight_decay: float
    grad_clip: float = 0.0


def optim_spec(config: Mapping) -> OptimSpec:
    return OptimSpec(lr=config["lr"], weight_decay=config["wd"], grad_clip=config["grad_clip"])


@dataclass(frozen=True)
class ScheduleSpec:
    """Epochs, batches and the per-step schedules.

    ema_momentum: base momentum of the EMA teacher, or None when the run has no teacher.
    """
    epochs: int
    batch_size: int
    steps_per_epoch: int
    lr_schedule: str
    warmup_epochs: int
    min_lr: float
    ema_momentum: float | None = None


def schedule_spec(config: Mapping) -> ScheduleSpec:
    ema = (config["ema_momentum"] if config["method"] == "byov" and config["target"] == "ema"
           else None)
    return ScheduleSpec(epochs=config["epochs"], batch_size=config["batch_size"],
                        steps_per_epoch=config["steps_per_epoch"],
                        lr_schedule=config["lr_schedule"], warmup_epochs=config["warmup_epochs"],
                        min_lr=config["min_lr"], ema_momentum=ema)


# ------------------------------------------------------------------------------ evaluation
# Datasets evaluated with the video-level protocol (Charades-Ego: mean-pooled embeddings, linear
# probe, mAP; docs/charades_ego.md); every other dataset with AE2's frame-level tasks.
VIDEO_LEVEL_DATASETS = ("charades_ego",)

@dataclass(frozen=True)
class EvalSpec:
    """The downstream protocol (docs/evaluation.md).

    tasks: the AE2 tasks to run (`byov.eval.parse_tasks`). time_feature: the headline
    progression uses the time feature (pour_liquid, released). split: the evaluated split.
    every_n_epochs: downstream val evaluation during training (0 = never). best_metric: what
    picks best.pth. weights: "online" or "ema" encoder weights.
    """
    tasks: tuple[str, ...]
    time_feature: bool
    split: str = "test"
    few_shot: bool = False
    every_n_epochs: int = 0
    best_metric: str = "val_score"
    weights: str = "online"
    dataset: str = ""
    eval_task: str = "1234"  # as given (digits or names), for messages
    protocol: str = "frame"  # "frame" (AE2's four tasks) or "video" (VIDEO_LEVEL_DATASETS)
    probe_c: float = 1.0  # video-level probe: inverse L2 strength of the logistic regression
    probe_max_iter: int = 1000  # video-level probe: lbfgs iterations per class


def eval_spec(config: Mapping) -> EvalSpec:
    """Raises ValueError for an unknown eval_task entry."""
    from byov.eval import parse_tasks
    from byov.eval.progression import headline_uses_time_feature

    return EvalSpec(tasks=tuple(parse_tasks(config["eval_task"])),
                    time_feature=headline_uses_time_feature(
                        config["dataset"], config.get("progression_time_feature", "auto")),
                    split=config.get("eval_mode", "test"), few_shot=config.get("few_shot", False),
                    every_n_epochs=config.get("ds_every_n_epoch", 0),
                    best_metric=config.get("best_metric", "val_score"),
                    weights=config.get("weights", "online"), dataset=config["dataset"],
                    eval_task=str(config["eval_task"]),
                    protocol="video" if config["dataset"] in VIDEO_LEVEL_DATASETS else "frame",
                    probe_c=config.get("probe_c", 1.0),
                    probe_max_iter=config.get("probe_max_iter", 1000))


def embedding_settings(config: Mapping) -> dict:
    """The settings that decide what an embedding is (EMBEDDING_KEYS), for embedding-folder keys."""
    return {k: config.get(k) for k in EMBEDDING_KEYS}


@dataclass(frozen=True)
class DownstreamSpec:
    """What `byov.downstream.evaluate_model` needs: how to rebuild the model (`method`, from the
    checkpoint's own config), the frozen-features baseline (`frozen`: BYOV's frozen backbone +
    STM, whatever the method), the protocol (`eval`), the settings that key embedding folders,
    the seed of the random_init baseline and the device to embed on."""
    method: MethodSpec
    frozen: MethodSpec
    eval: EvalSpec
    settings: Mapping
    seed: int = 0
    device: str = "auto"


def downstream_spec(config: Mapping) -> DownstreamSpec:
    return DownstreamSpec(method=method_spec(config), frozen=method_spec(config, name="byov"),
                          eval=eval_spec(config),
                          settings=embedding_settings(config), seed=config["seed"],
                          device=config["device"])


# ------------------------------------------------------------------------------------ export
# Keys that say where things are on the training machine: an exported config (docs/hub.md)
# takes their defaults.
MACHINE_KEYS = ("dataset_root", "output_dir", "frame_cache_dir", "feature_cache_dir", "resume",
                "init_from", "ckpt", "device")


def portable_config(config: Mapping, defaults: Mapping) -> tuple[dict, list[str]]:
    """(the config without the training machine's paths, notes on what was changed).

    Args:
        config: the checkpoint's resolved flat config.
        defaults: the project's default value of each key (utils/config.py's Config).
    Every key of MACHINE_KEYS takes its default; a local `vision_encoder_path` (a folder or file
    on the training machine) keeps only its base name, and a note says so: the user passes
    --vision_encoder_path to their copy of the backbone. Hub ids are kept.
    """
    from byov.models.frame_encoders import is_local_path

    out, notes = dict(config), []
    for key in MACHINE_KEYS:
        if key in out and key in defaults and out[key] != defaults[key]:
            out[key] = defaults[key]
    path = str(out.get("vision_encoder_path") or "")
    if is_local_path(path):
        name = os.path.basename(os.path.normpath(os.path.expanduser(path)))
        out["vision_encoder_path"] = name
        notes.append(f"the backbone weights were read from a local path on the training machine "
                     f"(…/{name}); pass --vision_encoder_path to your copy of them")
    return out, notes


# ------------------------------------------------------------------------------------- run
@dataclass(frozen=True)
class RunSpec:
    """The run folder and how the process runs (docs/training.md)."""
    output_dir: str
    device: str = "auto"
    precision: str = "bf16"
    seed: int = 0
    resume: str = ""
    init_from: str = ""
    num_workers: int = 0
    save_every: int = 10
    log_every: int = 4


def run_spec(config: Mapping) -> RunSpec:
    return RunSpec(output_dir=config["output_dir"], device=config["device"],
                   precision=config["precision"], seed=config["seed"], resume=config["resume"],
                   init_from=config["init_from"], num_workers=config["num_workers"],
                   save_every=config["save_every"], log_every=config["log_every"])


__all__ = ["AE2Spec", "ByovModelSpec", "DataSpec", "DownstreamSpec", "EMBEDDING_KEYS", "EvalSpec",
           "FeatureCacheSpec", "FrameEncoderSpec", "MACHINE_KEYS", "MethodSpec", "OptimSpec",
           "RunSpec", "ScheduleSpec", "TokenMergeSpec", "VIDEO_LEVEL_DATASETS", "ae2_spec", "byov_model_spec",
           "data_spec", "default_feature_cache_dir", "downstream_spec", "embedding_settings", "eval_spec",
           "feature_spec", "frame_encoder_spec", "merge_spec", "method_spec", "optim_spec", "portable_config",
           "released_model_spec", "run_spec", "schedule_spec"]
