"""What a feature cache was computed with, and the check that it fits a run (docs/design.md#feature-cache).

A cache kind (`tokens` or `merged`) has one `manifest.json`. It must match the run on the fields
of `MATCH_FIELDS` (backbone id, weights hash, input size, preprocessing, dtype, token layout and,
for merged features, the token-merging settings); any difference is a `FeatureCacheError` that
names the field. Library versions are recorded too, and a difference there only warns.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import warnings

import numpy as np
import torch

from byov.atomic import atomic_write_json

from byov.data.layout import DataError

# 2: per-video done markers hold content fingerprints (not mtimes), and the released float32
# division in preprocessing (features of format 1 differ in the last bits)
FORMAT_VERSION = 2
KINDS = ("tokens", "merged")
DTYPES = {"fp16": np.dtype(np.float16), "fp32": np.dtype(np.float32)}
MATCH_FIELDS = ("format_version", "kind", "backbone", "weights_hash", "input_size",
                "preprocessing", "dtype", "token_layout", "stm", "compute")
# the backbone's compute precision during extraction; manifests written before it was recorded
# were computed in fp32
COMPUTES = ("fp32", "bf16")
# what a torch loader reads from a weights folder, most preferred first (as transformers does)
_WEIGHT_SUFFIXES = ((".safetensors",), (".bin", ".pt", ".pth", ".ckpt"))
_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns) -> digest, so a rerun does not rehash


class FeatureCacheError(DataError):
    """A feature cache that is missing, stale or does not fit the run; the message says the fix.

    A DataError, so the entry points report it like any other data problem."""


def _sha256_files(paths: list[str]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def _file_hash(paths: list[str]) -> str:
    key = tuple((p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths)
    if key not in _HASHES:
        _HASHES[key] = _sha256_files(paths)
    return _HASHES[key]


def _state_hash(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        h.update(name.encode() + b"\0")
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _weight_files(folder: str) -> list[str]:
    """The weight files a torch loader would read: the safetensors shards if any, else the
    pickled ones (TF / Flax files that may sit next to them are never read, so not hashed)."""
    for suffixes in _WEIGHT_SUFFIXES:
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                       if f.endswith(suffixes) and os.path.isfile(os.path.join(folder, f)))
        if files:
            return files
    return []


def _hub_snapshot(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not in the local cache (or no huggingface_hub): hash the loaded weights
        return None


def weights_hash(frame_encoder) -> str:
    """'sha256:<hex>' of the weights file(s) the frame encoder was loaded from.

    A directory (save_pretrained, or a hub id's cached snapshot) hashes its weight files; a
    random-init encoder says so and hashes its state dict, as does a hub model whose snapshot
    cannot be found.
    """
    source = frame_encoder.weights_source
    if source == "random-init":
        return "random-init:state-sha256:" + _state_hash(frame_encoder)
    folder = source if os.path.isdir(source) else None
    if os.path.isfile(source):
        return "sha256:" + _file_hash([source])
    if folder is None:
        folder = _hub_snapshot(source)
    files = _weight_files(folder) if folder else []
    if files:
        return "sha256:" + _file_hash(files)
    return "state-sha256:" + _state_hash(frame_encoder)


def preprocessing(frame_encoder) -> str:
    """The frame -> input pipeline of byov.data.preprocess, spelled out for the manifest."""
    from byov.data.preprocess import describe

    return describe(frame_encoder.preprocessing or frame_encoder.name, frame_encoder.input_size)


def backbone_id(frame_encoder) -> str:
    """The backbone name; for resnet50 also its token stage (read off the width), which changes
    the tokens."""
    if frame_encoder.name == "resnet50":
        stage = {256: "layer1", 512: "layer2", 1024: "layer3", 2048: "layer4"}[frame_encoder.dim]
        return f"resnet50:{stage}"
    return frame_encoder.name


def library_versions() -> dict:
    out = {"torch": torch.__version__, "numpy": np.__version__}
    for dist in ("transformers", "torchvision", "timm", "opencv-python-headless", "h5py", "byov"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def expected_manifest(frame_encoder, kind: str, dtype: str, k: int | None = None,
                      compute: str | None = "fp32") -> dict:
    """The manifest a `kind` cache of `frame_encoder`'s features in `dtype` (fp16 | fp32) has.

    k: tokens kept per frame by STM; required for `merged` (its features depend on it).
    compute: the backbone's precision during extraction (fp32 | bf16); None = any (a reader,
    which accepts the cache's own; extraction always names one, so a cache never mixes them).
    """
    if compute is not None and compute not in COMPUTES:
        raise ValueError(f"unknown extraction precision {compute!r}; valid: {', '.join(COMPUTES)}")
    if kind not in KINDS:
        raise ValueError(f"unknown feature cache kind {kind!r}; valid: {', '.join(KINDS)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown feature dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if kind == "merged" and not k:
        raise ValueError("a merged feature cache needs k, the tokens kept per frame by STM")
    n, d = int(frame_encoder.num_patches), int(frame_encoder.dim)
    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "backbone": backbone_id(frame_encoder),
        "weights": frame_encoder.weights_source,
        "weights_hash": weights_hash(frame_encoder),
        "input_size": int(frame_encoder.input_size),
        "preprocessing": preprocessing(frame_encoder),
        "dtype": DTYPES[dtype].name,
        "token_layout": [n, d] if kind == "tokens" else [d],
        "stm": None if kind == "tokens" else {"k": int(k), "frames": "adjacent"},
        "compute": compute,
        "versions": library_versions(),
    }


def manifest_path(cache_dir: str, kind: str) -> str:
    return os.path.join(cache_dir, kind, "manifest.json")


def _extract_hint(kind: str) -> str:
    return (f"python -m byov.features extract --config <your config> --kind {kind} "
            f"(same --backbone, --vision_encoder_path, --input_size, --feature_dtype, "
            f"--extract_precision)")


def check_manifest(found: dict, expected: dict, path: str) -> None:
    """Raise FeatureCacheError naming each field where `found` differs from `expected`."""
    found = {**found, "compute": found_compute(found)}
    diffs = [f for f in MATCH_FIELDS if found.get(f) != expected.get(f)
             and not (f == "compute" and expected.get(f) is None)]
    if diffs:
        detail = "; ".join(f"{f}: cache has {found.get(f)!r}, this run needs {expected.get(f)!r}"
                           for f in diffs)
        raise FeatureCacheError(
            f"feature cache manifest {path} does not match this run ({', '.join(diffs)} "
            f"differ{'s' if len(diffs) == 1 else ''}): {detail}. The cache was not used or "
            f"changed. Pass another --feature_cache_dir, or delete {os.path.dirname(path)} and "
            f"re-extract with `{_extract_hint(expected.get('kind'))}`")
    old, new = found.get("versions") or {}, expected.get("versions") or {}
    changed = [f"{lib} {old.get(lib)} -> {new[lib]}" for lib in new if old.get(lib) != new[lib]]
    if changed:
        warnings.warn(f"feature cache {path} was written with other library versions "
                      f"({', '.join(changed)}); reusing it (results may differ in the last bits)",
                      stacklevel=2)


def found_compute(manifest: dict) -> str:
    """The extraction precision of a cache's manifest (fp32 when it predates the field)."""
    return manifest.get("compute") or "fp32"


def read_manifest(cache_dir: str, kind: str) -> dict | None:
    path = manifest_path(cache_dir, kind)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise FeatureCacheError(f"feature cache manifest {path} cannot be read ({e}); delete "
                                f"{os.path.dirname(path)} and re-extract") from e
    if not isinstance(data, dict):
        raise FeatureCacheError(f"feature cache manifest {path} is not a JSON object; delete "
                                f"{os.path.dirname(path)} and re-extract")
    return data


def write_json_atomic(path: str, data: dict) -> None:
    atomic_write_json(path, data, fsync=True)


def open_manifest(cache_dir: str, expected: dict, create: bool = False) -> dict:
    """Check the manifest of `expected['kind']` in `cache_dir` against `expected`.

    create=True (extraction) writes `expected` when the kind has no manifest yet; otherwise a
    missing manifest is an error that says how to extract.
    """
    kind = expected["kind"]
    path = manifest_path(cache_dir, kind)
    found = read_manifest(cache_dir, kind)
    if found is None:
        if not create:
            raise FeatureCacheError(f"no {kind} feature cache at {os.path.dirname(path)} "
                                    f"(missing {path}); extract it first: "
                                    f"`{_extract_hint(kind)}`, or set --feature_cache_dir")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomic(path, expected)
        return expected
    check_manifest(found, expected, path)
    return found
