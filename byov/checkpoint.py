"""Checkpoints that hold plain data, are written atomically and load with `weights_only=True`.

A checkpoint is a dict with the keys of `CHECKPOINT_KEYS`
(docs/design.md#checkpoints-as-plain-data):

    format_version  int, FORMAT_VERSION
    config          the resolved flat config as a plain dict (rebuilds the model on its own)
    encoder         trainable encoder state_dict
    decoder         decoder state_dict
    target          EMA teacher state_dict (only with --target ema; absent otherwise)
    optimizer       optimizer state_dict
    step            global step of the next optimizer step (schedules are indexed by it)
    epoch           the epoch just completed (0-based)
    rng             capture_rng_state() of the writing process
    val_metrics     dict of the last downstream validation numbers ({} if none yet)

plus the optional `scaler` (GradScaler state, fp16 only). Only tensors, dicts, lists, tuples, str,
int, float, bool and None are allowed, because torch >= 2.6 loads with `weights_only=True` and an
`argparse.Namespace` (MAE/DINO style) makes such a checkpoint unloadable. Files are written to a
temp file in the same folder, flushed, fsynced and renamed, so a preempted save never corrupts
`last.pth`.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import random
import re
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn

from byov.spec import keys as config_keys
from byov.atomic import atomic_write
from byov.errors import ByovError
from byov.writable import CannotWriteError

FORMAT_VERSION = 1
CHECKPOINT_KEYS = ("format_version", "config", "encoder", "decoder", "target", "optimizer", "step",
                   "epoch", "rng", "val_metrics")
# fp16 GradScaler state; a trained (unfrozen) backbone; the number of training processes; the
# train/val data's content fingerprint (a resume on other data is refused)
OPTIONAL_KEYS = ("scaler", "backbone", "world_size", "data_fingerprint")
REQUIRED_KEYS = ("config", "encoder", "step", "epoch")

# Config keys that define the shapes of the saved weights: a checkpoint only loads into a model
# built with the same values (classified with every other key in byov/spec/keys.py).
ARCH_KEYS = config_keys.ARCH_KEYS

# Keys that checkpoints written before they existed lack, with the value those runs had.
_ADDED_LATER = {"method": "byov", "context_grouping": "released"}

# Which depth flag a block-count mismatch points to, by the `what` given to load_state_strict.
_DEPTH_FLAGS = {"encoder": "n_layers", "target": "n_layers", "decoder": "n_layers_dec"}


class CheckpointError(ByovError):
    """A checkpoint that is missing, unreadable or does not fit the model; says path and fix."""


class CheckpointMissingKeysError(CheckpointError):
    """A byov checkpoint without some required keys; `missing` lists them (e.g. no 'encoder':
    the file holds no model)."""

    def __init__(self, message: str, missing: list[str]):
        super().__init__(message)
        self.missing = list(missing)


class CheckpointWriteError(CheckpointError, CannotWriteError):
    """A checkpoint that could not be written (full disk, read-only folder): also the one
    "cannot write here" error of byov.writable."""


# ------------------------------------------------------------------------------------ plain data
_LEAF_TYPES = (str, int, float, bool, type(None))
_DICT_TYPES = (dict, collections.OrderedDict)


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise CheckpointError naming the key path (e.g. checkpoint['config']['args']) of the first
    value `torch.load(weights_only=True)` could not read back."""
    if isinstance(obj, torch.Tensor):  # nn.Parameter included
        return
    kind = type(obj)
    if kind in _LEAF_TYPES:
        return
    if kind in _DICT_TYPES:
        for key, value in obj.items():
            if type(key) not in _LEAF_TYPES:
                raise CheckpointError(f"{where} has a key of type {type(key).__name__} ({key!r}); "
                                      f"use str or int keys")
            check_plain(value, f"{where}[{key!r}]")
        return
    if kind in (list, tuple):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
        return
    hint = ""
    if isinstance(obj, np.ndarray):
        hint = " (convert it with torch.from_numpy)"
    elif isinstance(obj, np.generic):
        hint = " (convert it with .item())"
    elif hasattr(obj, "__dict__") or dataclasses.is_dataclass(obj):
        hint = " (store a plain dict instead, e.g. vars(args) or dataclasses.asdict(cfg))"
    raise CheckpointError(f"{where} holds a {kind.__module__}.{kind.__qualname__}, which a "
                          f"weights_only=True load cannot read{hint}. Checkpoints may hold only "
                          f"tensors, dict, list, tuple, str, int, float, bool and None.")


# ------------------------------------------------------------------------------------------- rng
def capture_rng_state() -> dict:
    """The python, numpy, torch CPU and (if available) all CUDA generators as plain data."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": {"bit_generator": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss),
                  "cached_gaussian": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of capture_rng_state. CUDA states are restored for the devices present; fewer
    devices than saved (e.g. resuming a GPU run on CPU) warns, since draws then differ."""
    try:
        py_version, py_internal, py_gauss = state["python"]
        np_state = state["numpy"]
        np_tuple = (np_state["bit_generator"], np_state["keys"].cpu().numpy().astype(np.uint32),
                    int(np_state["pos"]), int(np_state["has_gauss"]),
                    float(np_state["cached_gaussian"]))
        torch_state = state["torch"]
        cuda_states = list(state.get("cuda", []))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"malformed rng state ({type(exc).__name__}: {exc}); it must come "
                              f"from capture_rng_state()") from exc
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np.random.set_state(np_tuple)
    torch.set_rng_state(torch_state.cpu())
    if not cuda_states:
        return
    n_now = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_now < len(cuda_states):
        warnings.warn(f"the checkpoint has RNG states for {len(cuda_states)} CUDA device(s) but "
                      f"{n_now} are visible; the missing ones keep their current state, so random "
                      f"draws will differ from the original run")
    for index, cuda_state in enumerate(cuda_states[:n_now]):
        torch.cuda.set_rng_state(cuda_state.cpu(), index)


# ------------------------------------------------------------------------------------ save / load
def _fsync_dir(directory: str) -> None:
    # The rename is only durable once the directory entry is; not possible on every OS.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """Call write(file) on a temp file next to `path`, fsync it, then rename it onto `path`."""
    try:
        atomic_write(path, write, fsync=True)
    except Exception as exc:
        err = CheckpointWriteError(f"could not write checkpoint {path} ({type(exc).__name__}: "
                                   f"{exc}); any previous file there is unchanged. Check free "
                                   f"disk space and write permission, or pass --output_dir DIR "
                                   f"in a writable folder with room.")
        err.errno, err.filename = getattr(exc, "errno", None), path
        raise err from exc
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def save_checkpoint(path: str, state: dict) -> None:
    """Write `state` (keys of CHECKPOINT_KEYS / OPTIONAL_KEYS, plain data only) atomically."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint state for {path} must be a dict, got "
                              f"{type(state).__name__}")
    allowed = CHECKPOINT_KEYS + OPTIONAL_KEYS
    unknown = [k for k in state if k not in allowed]
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if unknown or missing:
        raise CheckpointError(f"checkpoint state for {path}: unknown keys {unknown}, missing keys "
                              f"{missing}; allowed keys are {list(allowed)}")
    state = dict(state)
    version = state.setdefault("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint state for {path} says format_version {version!r}; "
                              f"this code writes {FORMAT_VERSION}")
    check_plain(state)
    _atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with weights_only=True and check its format version and required keys.

    Raises CheckpointError naming the file and what to use instead."""
    return read_checkpoint(path, map_location).state


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint read from disk: its path, its dict, and the content hash of its bytes
    (BLAKE2b, equal to `byov.data.fingerprint.content_hash(path)`), which keys the embedding
    folders made from it."""
    path: str
    state: dict
    content_hash: str


def read_checkpoint(path: str, map_location: Any = "cpu") -> CheckpointFile:
    """The checkpoint at `path` from ONE read of the file (model, config and content hash).

    Raises CheckpointError as `load_checkpoint`.
    """
    import hashlib
    import io

    from byov.data.fingerprint import DIGEST_SIZE

    if not os.path.isfile(path):
        what = "a directory, not a file" if os.path.isdir(path) else "not found"
        raise CheckpointError(f"checkpoint {path} is {what}; pass the path of a .pth file "
                              f"(a run keeps them in <output_dir>/checkpoints/)")
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.blake2b(data, digest_size=DIGEST_SIZE).hexdigest()
    corrupt = (f"checkpoint {path} is corrupt or not a torch checkpoint (an interrupted copy?); "
               f"use another one, e.g. an epoch_XXXX.pth next to it")
    if not zipfile.is_zipfile(io.BytesIO(data)):  # torch.save writes a zip; a cut one is not
        raise CheckpointError(corrupt)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain data"
            f"{f' ({found.group(1)})' if found else ''}, so it cannot be loaded with "
            f"weights_only=True (written by other code, e.g. a Lightning or MAE-style "
            f"checkpoint?). Only checkpoints written by byov are supported.") from exc
    except Exception as exc:  # damaged archive members, ...
        raise CheckpointError(f"{corrupt} ({type(exc).__name__}: {exc})") from exc
    return CheckpointFile(path, _checked_state(state, path), digest)


def _checked_state(state: Any, path: str) -> dict:
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of "
                              f"{list(CHECKPOINT_KEYS)}")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format_version {version!r}, this code reads "
                              f"version {FORMAT_VERSION}; was it written by byov (keys found: "
                              f"{sorted(map(str, state))[:10]})?")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointMissingKeysError(
            f"checkpoint {path} lacks the required keys {missing} (has {sorted(state)}); it "
            f"cannot rebuild or resume a model", missing)
    return state


def resolve_resume(resume: str, output_dir: str) -> str | None:
    """--resume: "" = fresh start; "auto" = <output_dir>/checkpoints/last.pth if it exists, else a
    fresh start; anything else is a path that must exist (never silently a fresh start)."""
    if resume == "":
        return None
    if resume == "auto":
        last = os.path.join(output_dir, "checkpoints", "last.pth")
        return last if os.path.isfile(last) else None
    if not os.path.isfile(resume):
        hint = ""
        if os.path.isfile(os.path.join(resume, "checkpoints", "last.pth")):
            hint = f" (did you mean {os.path.join(resume, 'checkpoints', 'last.pth')}?)"
        raise CheckpointError(f"--resume {resume}: no such checkpoint file{hint}. Pass an existing "
                              f".pth file, 'auto' (resume {output_dir}/checkpoints/last.pth if "
                              f"present) or '' to start fresh")
    return resume


# ----------------------------------------------------------------------------- compatibility
def _flag(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{key}" if value else f"--no-{key}"
    return f"--{key} {value}"


def check_compatible(saved_config: dict, config: Any, keys: Iterable[str] = ARCH_KEYS,
                     where: str = "checkpoint", what: str = "architecture") -> None:
    """Raise CheckpointError listing every key of `keys` whose value differs between the
    checkpoint's config and the current one (a dict, or a dataclass such as utils' Config).

    A key absent from an older checkpoint's config counts as its default of the time: "byov"
    for `method`, "released" for `context_grouping`."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    absent = "<absent>"
    saved_config = {**_ADDED_LATER, **saved_config}
    diffs = [(k, saved_config.get(k, absent), config.get(k, absent)) for k in keys
             if saved_config.get(k, absent) != config.get(k, absent)]
    if not diffs:
        return
    lines = [f"  {k}: checkpoint {s!r}, current {c!r}" for k, s, c in diffs]
    fix = " ".join(_flag(k, s) for k, s, _ in diffs if s is not absent)
    raise CheckpointError(f"{where} was trained with different {what}:\n" + "\n".join(lines)
                          + f"\nPass the checkpoint's values ({fix}) or use a matching checkpoint.")


def _block_counts(keys: Iterable[str]) -> dict[str, int]:
    """{prefix: number of indexed children} for keys like 'blocks.3.attn.qkv.weight'."""
    counts: dict[str, int] = {}
    for key in keys:
        for match in re.finditer(r"(?:^|\.)(\d+)\.", key):
            prefix = key[:match.start(1)].rstrip(".")
            counts[prefix] = max(counts.get(prefix, 0), int(match.group(1)) + 1)
    return counts


def _natural(key: str) -> list:
    # blocks.2 before blocks.10
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _short(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_state_strict(module: nn.Module, state_dict: dict, what: str,
                      where: str = "checkpoint") -> None:
    """module.load_state_dict(state_dict, strict=True), with a mismatch reported as a readable
    CheckpointError: block-count differences (and the flag to set), missing / unexpected keys and
    shape mismatches. `what` names the part ("encoder", "decoder", "target")."""
    own = module.state_dict()
    missing = sorted((k for k in own if k not in state_dict), key=_natural)
    unexpected = sorted((k for k in state_dict if k not in own), key=_natural)
    shapes = sorted((k for k in own if k in state_dict and isinstance(state_dict[k], torch.Tensor)
                     and tuple(state_dict[k].shape) != tuple(own[k].shape)), key=_natural)
    if missing or unexpected or shapes:
        lines = []
        saved_counts, own_counts = _block_counts(state_dict), _block_counts(own)
        for prefix in sorted(set(saved_counts) & set(own_counts)):
            if saved_counts[prefix] != own_counts[prefix]:
                flag = _DEPTH_FLAGS.get(what)
                setting = f" ({flag} {own_counts[prefix]} in the config used)" if flag else ""
                lines.append(f"  checkpoint has {saved_counts[prefix]} {what} blocks "
                             f"('{prefix}'), model has {own_counts[prefix]}{setting}")
        if unexpected and all(k.startswith("module.") for k in state_dict):
            lines.append("  every key starts with 'module.': it was saved from a DDP-wrapped "
                         "model; save model.module.state_dict() instead")
        if missing:
            lines.append(f"  missing from the checkpoint ({len(missing)}): {_short(missing)}")
        if unexpected:
            lines.append(f"  unexpected in the checkpoint ({len(unexpected)}): "
                         f"{_short(unexpected)}")
        for key in shapes[:8]:
            lines.append(f"  shape of {key}: checkpoint {tuple(state_dict[key].shape)}, model "
                         f"{tuple(own[key].shape)}")
        if len(shapes) > 8:
            lines.append(f"  ... and {len(shapes) - 8} more shape mismatches")
        # No flag is advised: the model is always built from the checkpoint's own architecture
        # keys (overriding them is refused), so a mismatch means the stored config does not
        # describe the stored weights.
        raise CheckpointError(f"{what} weights in {where} do not fit the model built from its "
                              f"config:\n" + "\n".join(lines) + "\nThe checkpoint's 'config' "
                              "entry does not describe its weights (an edited file, or one "
                              "written by other code); use a checkpoint written by train.py.")
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied
        raise CheckpointError(f"{what} weights in {where} do not load: {exc}") from exc


# ---------------------------------------------------------------------------------- run folder
class CheckpointManager:
    """The checkpoints of one run folder (docs/design.md#run-folder):

        <output_dir>/checkpoints/last.pth          after every epoch
        <output_dir>/checkpoints/epoch_XXXX.pth    when (epoch + 1) % save_every == 0 (0-based
                                                   epoch, as released: epoch_0009 = 10th epoch)
        <output_dir>/checkpoints/best.pth          when is_best (a full copy, not a symlink)

    save_every 0 writes no epoch files. keep_all=False keeps only the newest epoch file.
    Only the main rank should own one.

    Every checkpoint written records which checkpoint best.pth must be:
    `val_metrics["best_record"] = {"epoch", "step"}` of the epoch chosen on val (None before
    the first). `verify_best` checks best.pth against it on resume, so a kill or a full disk
    between writing last.pth and best.pth is repaired or refused, never carried on silently.
    `best_record`: the record of the resumed checkpoint (`verify_best`'s result), None when fresh.
    """

    def __init__(self, output_dir: str, save_every: int, keep_all: bool = True,
                 best_record: dict | None = None):
        if not isinstance(save_every, int) or save_every < 0:
            raise ValueError(f"save_every must be an int >= 0 (0 = no epoch_XXXX.pth files), got "
                             f"{save_every!r}")
        self.dir = os.path.join(output_dir, "checkpoints")
        self.save_every = save_every
        self.keep_all = keep_all
        self.best_record = dict(best_record) if best_record else None

    @property
    def last_path(self) -> str:
        return os.path.join(self.dir, "last.pth")

    @property
    def best_path(self) -> str:
        return os.path.join(self.dir, "best.pth")

    def epoch_path(self, epoch: int) -> str:
        return os.path.join(self.dir, f"epoch_{epoch:04d}.pth")

    def save(self, state: dict, epoch: int, is_best: bool = False) -> list[str]:
        """Write last.pth, plus epoch_XXXX.pth / best.pth when due; returns the paths written."""
        if is_best:
            self.best_record = {"epoch": int(epoch), "step": int(state.get("step", -1))}
        if isinstance(state.get("val_metrics"), dict):
            state = {**state, "val_metrics": {**state["val_metrics"],
                                              "best_record": self.best_record}}
        save_checkpoint(self.last_path, state)
        written = [self.last_path]
        targets = []
        if self.save_every and (epoch + 1) % self.save_every == 0:
            targets.append(self.epoch_path(epoch))
        if is_best:
            targets.append(self.best_path)
        for target in targets:
            # Same bytes as last.pth: copy instead of serializing again, still atomically.
            with open(self.last_path, "rb") as src:
                _atomic_write(target, lambda f: shutil.copyfileobj(src, f))
            written.append(target)
        if not self.keep_all and self.epoch_path(epoch) in written:
            for name in os.listdir(self.dir):
                path = os.path.join(self.dir, name)
                if re.fullmatch(r"epoch_\d{4,}\.pth", name) and path != self.epoch_path(epoch):
                    os.remove(path)
        return written


def _epoch_step(path: str) -> tuple[int, int] | None:
    """(epoch, step) of a readable checkpoint, None for a missing or unreadable one."""
    if not os.path.isfile(path):
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        return None
    return int(state["epoch"]), int(state["step"])


def verify_best(output_dir: str, resumed: dict, resume_path: str) -> tuple[float | None,
                                                                            dict | None]:
    """Check, on resume, that `<output_dir>/checkpoints/best.pth` is the checkpoint the resumed
    run records as its best; returns (best value, best record) to continue with.

    The record is `val_metrics["best_record"]` ({"epoch", "step"}, written by CheckpointManager;
    absent in checkpoints of older byov versions, for which best.pth's own recorded best value
    must equal the run's). A best.pth that is missing or holds another checkpoint is rebuilt
    from the checkpoint of the recorded epoch and step when one is left (the resumed file
    itself: a kill or a full disk after last.pth was written, or epoch_XXXX.pth); otherwise:
    - best.pth missing: the run continues with no best so far (printed), so best.pth is chosen
      among the epochs trained from now on;
    - best.pth of another epoch: CheckpointError naming both epochs and the fix.
    """
    metrics = resumed.get("val_metrics") or {}
    best, record = metrics.get("best"), metrics.get("best_record")
    manager = CheckpointManager(output_dir, 0)
    path = manager.best_path
    if best is None:
        return None, None
    have = _epoch_step(path)
    if record is None:  # written before best_record existed: compare the recorded values
        try:
            found = load_checkpoint(path) if os.path.isfile(path) else None
        except CheckpointError:
            found = None
        if found is not None and (found.get("val_metrics") or {}).get("best") == best:
            return best, {"epoch": int(found["epoch"]), "step": int(found["step"])}
        want = "the epoch whose val value is the run's best"
    else:
        want_pair = (int(record["epoch"]), int(record["step"]))
        if have == want_pair:
            return best, record
        want = f"epoch {want_pair[0]} (step {want_pair[1]})"
        source_dir = os.path.dirname(os.path.abspath(resume_path))
        candidates = [resume_path, os.path.join(source_dir, "best.pth"),
                      os.path.join(source_dir, f"epoch_{want_pair[0]:04d}.pth"),
                      manager.epoch_path(want_pair[0])]
        for candidate in candidates:
            if os.path.abspath(candidate) != os.path.abspath(path) \
                    and _epoch_step(candidate) == want_pair:
                with open(candidate, "rb") as src:
                    _atomic_write(path, lambda f: shutil.copyfileobj(src, f))
                print(f"{path} was not the run's best checkpoint ({want}; found "
                      f"{'none' if have is None else f'epoch {have[0]}'}): rebuilt it from "
                      f"{candidate}")
                return best, record
    if have is None:
        print(f"{resume_path} records {want} (val {best:.6g}) as the best, but no checkpoint "
              f"of it is left ({path} is missing): best.pth will be chosen among the epochs "
              f"trained from now on")
        return None, None
    raise CheckpointError(
        f"{path} holds epoch {have[0]} (step {have[1]}), but {resume_path} records {want} "
        f"(val {best:.6g}) as the best, and no checkpoint of it is left: best.pth is not the "
        f"checkpoint chosen on val (a run killed, or a disk that filled, while best.pth was "
        f"written). Move {path} aside to continue (best.pth is then chosen among the epochs "
        f"trained from now on), or start a new run")
