"""Export a trained run as a folder that can be uploaded to the Hugging Face Hub as it is
(docs/hub.md):

    python -m byov.export RUN_DIR OUT_DIR [--ckpt best|last|PATH] [--push OWNER/NAME]

`export_run` writes OUT_DIR/model.safetensors (the trained weights only: encoder, decoder, EMA
teacher if any, the backbone if it was trained; never the optimizer), OUT_DIR/config.json (the
resolved config with machine paths neutralised, plus step, epoch and data fingerprint) and
OUT_DIR/README.md (the model card, `byov.export.card`). `byov.hub.resolve_checkpoint` reads the
folder back into the same checkpoint dict, bit for bit.
"""
from __future__ import annotations

import json
import os
from typing import Mapping

import torch

from byov.spec import portable_config

from byov.hub import (CARD_FILE, CONFIG_FILE, EXPORT_FILES, EXPORT_FORMAT, META_KEYS, PARTS,
                      WEIGHTS_FILE, HubError)

# Config keys that say where things are on the training machine (or which device it had): an
# export replaces them by the project defaults, and the user of the model sets their own.
def export_tensors(state: Mapping) -> tuple[dict, list[str]]:
    """({"<part>.<key>": tensor}, parts) of a checkpoint's weight entries (PARTS present)."""
    tensors, parts = {}, []
    for part in PARTS:
        entry = state.get(part)
        if entry is None:
            continue
        parts.append(part)
        for key, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise HubError(f"checkpoint entry {part}[{key!r}] is a {type(value).__name__}, "
                               f"not a tensor; only tensors can go into {WEIGHTS_FILE}")
            # a private contiguous CPU copy: safetensors refuses tensors that share memory
            tensors[f"{part}.{key}"] = value.detach().to("cpu").contiguous().clone()
    if "encoder" not in parts:
        raise HubError("the checkpoint has no 'encoder' entry, so there is no model to export")
    return tensors, parts


def _check_out_dir(out_dir: str) -> None:
    if os.path.isfile(out_dir):
        raise HubError(f"{out_dir} is a file; OUT_DIR must be a folder (created when missing)")
    if os.path.isdir(out_dir):
        other = sorted(set(os.listdir(out_dir)) - set(EXPORT_FILES) - {".git", ".gitattributes",
                                                                       ".cache"})
        if other:
            raise HubError(f"{out_dir} holds other files ({', '.join(other[:5])}); export into "
                           f"an empty or new folder (an earlier export there is replaced)")
        present = sorted(set(os.listdir(out_dir)) & set(EXPORT_FILES))
        if present and not _is_export(out_dir):
            # README.md / config.json of something else (a checkout, notes): never overwritten
            raise HubError(f"{out_dir} holds {', '.join(present)} that are not a byov export "
                           f"(its {CONFIG_FILE} has no 'byov_export' entry); nothing was "
                           f"written. Export into an empty or new folder")
    from byov.writable import probe_writable
    probe_writable(out_dir, "the export", "OUT_DIR")  # a path we cannot write: before any work


def _is_export(folder: str) -> bool:
    """Whether `folder` holds an earlier byov export (its config.json says so)."""
    try:
        with open(os.path.join(folder, CONFIG_FILE), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "byov_export" in meta


def export_run(run_dir: str, out_dir: str, defaults: Mapping, ckpt: str = "best",
               repo_id: str | None = None) -> dict:
    """Write the export folder of a run's checkpoint; returns {"folder", "checkpoint", "parts",
    "tensors", "card"}.

    Args:
        run_dir: a train.py run folder (config.yaml, checkpoints/, eval/, command.jsonl).
        ckpt: "best" (else last.pth, as scripts/run.sh), "last", or a checkpoint path.
        defaults: the project's default config values (neutral values of MACHINE_KEYS).
        repo_id: the Hub repository the card's loading instructions name (OWNER/NAME).
    Raises:
        HubError: OUT_DIR holds other files, or the checkpoint holds no model.
        CheckpointError / ReportError: the checkpoint is missing or not byov's.
    """
    from safetensors.torch import save

    from byov.atomic import atomic_write, atomic_write_text
    from byov.checkpoint import load_checkpoint
    from byov.export.card import gather_facts, render_card
    from byov.report.inputs import resolve_checkpoint as run_checkpoint

    ckpt_path = run_checkpoint(run_dir, ckpt)
    _check_out_dir(out_dir)
    state = load_checkpoint(ckpt_path)
    tensors, parts = export_tensors(state)
    config, notes = portable_config(state["config"], defaults)
    meta = {"byov_export": EXPORT_FORMAT, "config": config,
            "checkpoint": {k: state[k] for k in META_KEYS if state.get(k) is not None},
            "parts": parts, "source_checkpoint": os.path.basename(ckpt_path)}
    facts = gather_facts(run_dir, ckpt_path, state, config, parts, tensors, notes, repo_id)
    os.makedirs(out_dir, exist_ok=True)
    data = save(tensors, metadata={"format": "pt", "byov_export": str(EXPORT_FORMAT)})
    atomic_write(os.path.join(out_dir, WEIGHTS_FILE), lambda f: f.write(data))
    atomic_write(os.path.join(out_dir, CONFIG_FILE),
                 lambda f: f.write(json.dumps(meta, indent=2, allow_nan=False) + "\n"), text=True)
    card = render_card(facts)
    atomic_write_text(os.path.join(out_dir, CARD_FILE), card)
    return {"folder": out_dir, "checkpoint": ckpt_path, "parts": parts,
            "tensors": len(tensors), "card": card}


def push_folder(folder: str, repo_id: str, private: bool = False) -> str:
    """Upload an export folder to the Hub model repository `repo_id` (created when missing);
    returns the repository's URL.

    Raises:
        HubError: no Hugging Face token (log in with `hf auth login` or set HF_TOKEN), offline,
            or the upload failed.
    """
    from huggingface_hub import HfApi, get_token

    from byov.hub import _offline, parse_hub_reference

    repo_id, _ = parse_hub_reference(repo_id)
    if _offline():
        raise HubError(f"--push {repo_id}: HF_HUB_OFFLINE is set; unset it to upload (the export "
                       f"folder {folder} is complete and can be uploaded later with `hf upload "
                       f"{repo_id} {folder} .`)")
    if not get_token():
        raise HubError(f"--push {repo_id} needs a Hugging Face token with write access: run "
                       f"`hf auth login` (older huggingface_hub: `huggingface-cli login`) or set "
                       f"HF_TOKEN. The export folder {folder} is complete; upload it later with "
                       f"`hf upload {repo_id} {folder} .`")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model",
                          allow_patterns=list(EXPORT_FILES),
                          commit_message="Upload byov export")
    except Exception as e:  # network, permissions, quota: the folder stays as it is
        raise HubError(f"uploading {folder} to {repo_id} failed ({type(e).__name__}: {e}); the "
                       f"export folder is unchanged, retry with `hf upload {repo_id} {folder} .`"
                       ) from e
    return f"https://huggingface.co/{repo_id}"
