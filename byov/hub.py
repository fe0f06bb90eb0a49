"""One resolver for every way of naming a trained model: a checkpoint file, an export folder,
or a model on the Hugging Face Hub (docs/hub.md).

    resolve_checkpoint("logs/run/checkpoints/best.pth")   # a train.py checkpoint
    resolve_checkpoint("exports/break_eggs")              # a folder written by `python -m byov.export`
    resolve_checkpoint("hf://OWNER/NAME")                 # that folder, published on the Hub
    resolve_checkpoint("hf://OWNER/NAME@REVISION")        # a branch, tag or commit of it

all return the dict `byov.checkpoint.load_checkpoint` returns (keys of `CHECKPOINT_KEYS`; an
export holds no optimizer / RNG state, so it can start a new run with `--init_from` or be
evaluated, never resumed). `evaluate.py --ckpt`, `train.py --init_from` and `python -m
byov.report --ckpt` all go through `resolve_checkpoint`, so everything downstream is the same.

An export folder holds
    model.safetensors   the weights, one tensor per "<part>.<state-dict key>" (parts: encoder,
                        decoder, target = EMA teacher, backbone = an unfrozen backbone)
    config.json         {"byov_export": EXPORT_FORMAT, "config": the resolved flat config with
                        machine paths neutralised, "checkpoint": step, epoch, val_metrics,
                        data_fingerprint, ..., "parts": [...]}
    README.md           the model card

Hub downloads go through huggingface_hub's cache (`snapshot_download`): with HF_HUB_OFFLINE=1
only the cache is read, and a model that is not there is an error naming the command that
fetches it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex

from byov.errors import ByovError

HF_SCHEME = "hf://"
EXPORT_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
EXPORT_FILES = (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE)
PARTS = ("encoder", "decoder", "target", "backbone")
# the checkpoint entries an export keeps besides the weights (no optimizer, rng or scaler)
META_KEYS = ("format_version", "step", "epoch", "val_metrics", "data_fingerprint", "world_size")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HubError(ByovError):
    """A model reference that cannot be resolved; the message names it and the fix."""


# ---------------------------------------------------------------------------------- references
def is_hub_reference(ref: str) -> bool:
    return isinstance(ref, str) and ref.startswith(HF_SCHEME)


def parse_hub_reference(ref: str) -> tuple[str, str | None]:
    """"hf://OWNER/NAME[@REVISION]" -> (repo id "OWNER/NAME", revision or None).

    Raises:
        HubError: not of that form.
    """
    body = ref[len(HF_SCHEME):] if is_hub_reference(ref) else ref
    repo_id, _, revision = body.partition("@")
    if not _REPO_ID.match(repo_id) or "@" in revision or (_ and not revision):
        raise HubError(f"{ref!r} is not a Hub model reference; write hf://OWNER/NAME or "
                       f"hf://OWNER/NAME@REVISION (a branch, tag or commit)")
    return repo_id, revision or None


def download_command(repo_id: str, revision: str | None = None) -> str:
    """The shell command that puts the model into the local Hugging Face cache."""
    rev = f" --revision {shlex.quote(revision)}" if revision else ""
    return f"hf download {repo_id}{rev}"


def checkpoint_name(ref: str) -> str:
    """A short name for evaluation folders and labels: the checkpoint file's stem ("best"), the
    export folder's name, or OWNER--NAME[@REVISION] for a Hub model."""
    if is_hub_reference(ref):
        repo_id, revision = parse_hub_reference(ref)
        return repo_id.replace("/", "--") + (f"@{revision}" if revision else "")
    path = os.path.abspath(ref)
    if os.path.isdir(path):
        return os.path.basename(path.rstrip(os.sep))
    return os.path.splitext(os.path.basename(path))[0]


# ----------------------------------------------------------------------------------- download
def _offline() -> bool:
    # read at call time, so HF_HUB_OFFLINE set after huggingface_hub was imported still counts
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(constants.HF_HUB_OFFLINE) or value.strip().upper() in ("1", "ON", "YES", "TRUE")


def download_export(ref: str) -> str:
    """The local folder (in huggingface_hub's cache) of the Hub model `ref` (hf://...).

    Honours HF_HUB_OFFLINE: offline, only the cache is read.

    Raises:
        HubError: offline and not cached, no such repository / revision, or no network; the
            message names the repository and the command that fetches it.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    repo_id, revision = parse_hub_reference(ref)
    fetch = download_command(repo_id, revision)
    offline = _offline()
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=list(EXPORT_FILES),
                                   local_files_only=offline)
    except RevisionNotFoundError as e:
        raise HubError(f"{ref}: the repository {repo_id} has no revision {revision!r} (a "
                       f"branch, tag or commit); check the name after '@'") from e
    except RepositoryNotFoundError as e:
        raise HubError(f"{ref}: no model repository {repo_id} on the Hub (or it is private: "
                       f"log in with `hf auth login`)") from e
    except (LocalEntryNotFoundError, EntryNotFoundError) as e:
        why = ("HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
               if offline else "it could not be downloaded (no network?) and is not cached")
        raise HubError(f"{ref}: {why}. Fetch it on a connected machine with `{fetch}` "
                       f"(older huggingface_hub: `huggingface-cli download {repo_id}"
                       f"{' --revision ' + revision if revision else ''}`) and copy the cache "
                       f"(~/.cache/huggingface/hub, or $HF_HOME/hub) here, or download it into a "
                       f"folder with `{fetch} --local-dir DIR` and pass --ckpt DIR") from e
    return folder


# -------------------------------------------------------------------------------- export folder
def is_export_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, WEIGHTS_FILE)) \
        and os.path.isfile(os.path.join(path, CONFIG_FILE))


def _check_export_folder(path: str) -> None:
    if is_export_folder(path):
        return
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE) if not os.path.isfile(os.path.join(path, f))]
    hint = ""
    if os.path.isdir(os.path.join(path, "checkpoints")):
        hint = (f" It looks like a run folder: pass {os.path.join(path, 'checkpoints', 'best.pth')}"
                f", or export it first with `python -m byov.export {path} OUT_DIR`.")
    raise HubError(f"{path} is a folder but not a byov export (missing {', '.join(missing)})."
                   f"{hint}")


def read_export(folder: str) -> dict:
    """The checkpoint dict of an export folder (weights strictly as saved, bit for bit).

    Raises:
        HubError: a file is missing or unreadable, or the folder was not written by byov.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from byov.checkpoint import FORMAT_VERSION

    _check_export_folder(folder)
    config_path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(config_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise HubError(f"{config_path} cannot be read as JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("byov_export") != EXPORT_FORMAT \
            or not isinstance(meta.get("config"), dict):
        found = meta.get("byov_export") if isinstance(meta, dict) else None
        raise HubError(f"{config_path} is not a byov export config (byov_export: {found!r}, "
                       f"this code reads {EXPORT_FORMAT}); export the run with "
                       f"`python -m byov.export RUN_DIR OUT_DIR`")
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    try:
        tensors = load_file(weights_path)
    except (OSError, SafetensorError, ValueError) as e:
        raise HubError(f"{weights_path} is not a readable safetensors file ({e}); download or "
                       f"export it again") from e
    state: dict = {k: v for k, v in (meta.get("checkpoint") or {}).items() if k in META_KEYS}
    state.setdefault("format_version", FORMAT_VERSION)
    state["config"] = dict(meta["config"])
    parts = list(meta.get("parts") or [])
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise HubError(f"{config_path} lists parts {parts}; expected some of {list(PARTS)}")
    for part in parts:
        state[part] = {}
    for key, value in tensors.items():
        part, _, name = key.partition(".")
        if part not in state or part not in parts or not name:
            raise HubError(f"{weights_path} holds tensor {key!r}, which belongs to none of the "
                           f"parts {parts} listed in {CONFIG_FILE}")
        state[part][name] = value
    empty = [p for p in parts if not state[p]]
    if empty:
        raise HubError(f"{weights_path} has no tensors for the part(s) {empty} listed in "
                       f"{CONFIG_FILE}; the export is incomplete, export it again")
    return state


def local_folder(ref: str) -> str:
    """The local export folder of `ref` (downloading a Hub model into the cache)."""
    if is_hub_reference(ref):
        return download_export(ref)
    _check_export_folder(ref)
    return ref


# ------------------------------------------------------------------------------------ resolver
def check_reference(ref: str) -> None:
    """Fail early, before any expensive work, when `ref` names no loadable model: a missing
    checkpoint file, a folder that is not an export, a Hub model that cannot be fetched (the
    download, or the cache look-up offline, happens here; the later load reads the cache).

    Raises:
        CheckpointError / HubError: as `resolve_checkpoint`.
    """
    from byov.checkpoint import CheckpointError

    if names_export(ref):
        local_folder(ref)
    elif not os.path.isfile(ref):
        raise CheckpointError(f"{ref} does not exist: pass a checkpoint file (.pth), an export "
                              f"folder or hf://OWNER/NAME[@REVISION]")


def names_export(ref: str) -> bool:
    """Whether `ref` names an exported model (hf://OWNER/NAME or a local folder) rather than a
    checkpoint file."""
    return is_hub_reference(ref) or os.path.isdir(ref)


def read_reference(ref: str):
    """The `byov.checkpoint.CheckpointFile` (reference, checkpoint dict, content hash) of any
    model reference: a .pth checkpoint file (read once), an export folder, or
    hf://OWNER/NAME[@REVISION]. The content hash keys evaluation folders: a checkpoint file's
    BLAKE2b digest, or for an export (local or from the Hub) the digest of its model.safetensors
    and config.json. Same bytes, same hash, wherever they live.

    Raises:
        CheckpointError: a checkpoint file that is missing or not byov's.
        HubError: an export folder that is incomplete, or a Hub model that cannot be fetched
            (offline and not cached: the message gives the `hf download` command).
    """
    from byov.checkpoint import CheckpointFile, read_checkpoint
    from byov.data.fingerprint import content_hash

    if not names_export(ref):
        return read_checkpoint(ref)
    folder = local_folder(ref)
    h = hashlib.blake2b(digest_size=16)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        h.update(name.encode() + b"\0" + content_hash(os.path.join(folder, name)).encode())
    return CheckpointFile(ref, read_export(folder), "export:" + h.hexdigest())


def resolve_checkpoint(ref: str) -> dict:
    """The checkpoint dict (as `byov.checkpoint.load_checkpoint` returns) of any model reference
    (see `read_reference`)."""
    return read_reference(ref).state
