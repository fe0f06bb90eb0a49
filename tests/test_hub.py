"""Export a run (`python -m byov.export`), load it back from the folder and through hf:// (a
Hugging Face cache laid out by hand, offline), and check the model card (docs/hub.md)."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
import yaml

from train_helpers import load_ckpt, tensors_differing, train_args, train_in_process


def _evaluate(argv):
    import evaluate
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate.main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(tmp_path_factory, synthetic_root, tiny_clip_dir, train_cache_dir):
    """A tiny trained run with an EMA teacher, its test evaluation and its time baseline."""
    out = str(tmp_path_factory.mktemp("hub") / "run")
    argv = train_args(synthetic_root, tiny_clip_dir, out, train_cache_dir, target="ema")
    train_in_process(argv)
    location = ["--dataset_root", os.path.dirname(synthetic_root),
                "--frame_cache_dir", train_cache_dir, "--vision_encoder_path", tiny_clip_dir]
    ckpt = os.path.join(out, "checkpoints", "last.pth")
    _evaluate(["--ckpt", ckpt, *location, "--json", os.path.join(out, "original.json")])
    _evaluate(["--config", os.path.join(out, "config.yaml"), "--baseline", "time",
               "--output_dir", out])
    return {"dir": out, "ckpt": ckpt, "location": location, "argv": argv}


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    from byov.export.__main__ import main
    folder = str(tmp_path_factory.mktemp("export") / "tiny-byov")
    main([run["dir"], folder, "--repo_id", "someone/tiny-byov"])
    return folder


def test_training_records_its_command_in_the_run_folder(run):
    from byov.provenance import read_commands
    (record,) = read_commands(run["dir"])
    assert record["argv"] == ["train.py", *run["argv"]]
    assert record["command"].startswith("python train.py --dataset synthetic")
    assert record["resumed_from"] is None and record["byov_version"]


def test_export_holds_the_weights_only_and_no_machine_paths(run, exported):
    from safetensors.torch import load_file
    assert sorted(os.listdir(exported)) == ["README.md", "config.json", "model.safetensors"]
    keys = load_file(os.path.join(exported, "model.safetensors")).keys()
    assert {k.split(".")[0] for k in keys} == {"encoder", "decoder", "target"}  # no optimizer
    text = open(os.path.join(exported, "config.json")).read()
    tmp_root = os.path.dirname(os.path.dirname(run["dir"]))
    assert os.path.dirname(tmp_root) not in text  # no path of this machine
    config = json.loads(text)["config"]
    assert config["dataset_root"] == "AE2_data" and config["output_dir"] == "logs/run"
    assert config["frame_cache_dir"] == "" and config["device"] == "auto"
    assert config["vision_encoder_path"] == os.path.basename(run["location"][-1])
    assert config["target"] == "ema" and config["hidden_dim"] == 32


def test_round_trip_is_bit_exact_in_weights_embeddings_and_metrics(run, exported, tmp_path):
    from byov.hub import resolve_checkpoint
    original, loaded = load_ckpt(run["dir"]), resolve_checkpoint(exported)
    for part in ("encoder", "decoder", "target"):
        assert not tensors_differing(original[part], loaded[part]), part
    for key in ("config", "step", "epoch", "data_fingerprint"):
        assert key in loaded
    assert "optimizer" not in loaded and "rng" not in loaded
    assert loaded["step"] == original["step"]
    assert loaded["data_fingerprint"] == original["data_fingerprint"]

    again = str(tmp_path / "from_export")
    _evaluate(["--ckpt", exported, *run["location"], "--embed_dir", again,
               "--json", str(tmp_path / "export.json")])
    first = os.path.join(run["dir"], "eval", "last")
    for split in ("train", "test"):
        a = np.load(os.path.join(first, f"{split}_embeds.npy"))
        b = np.load(os.path.join(again, f"{split}_embeds.npy"))
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), split
    # the metrics json, byte for byte, apart from its wall-clock timings
    ours, theirs = (json.load(open(p)) for p in (tmp_path / "export.json",
                                                  os.path.join(run["dir"], "original.json")))
    assert ours.pop("seconds").keys() == theirs.pop("seconds").keys()
    assert json.dumps(ours) == json.dumps(theirs)


def _fake_hub_cache(cache: str, repo_id: str, folder: str, sha: str) -> None:
    """huggingface_hub's cache layout: models--OWNER--NAME/{blobs,snapshots/<sha>,refs/main}."""
    repo = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    snapshot = os.path.join(repo, "snapshots", sha)
    os.makedirs(os.path.join(repo, "refs"))
    os.makedirs(os.path.join(repo, "blobs"))
    shutil.copytree(folder, snapshot)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(sha)


def test_hf_reference_reads_the_hugging_face_cache_offline(run, exported, tmp_path,
                                                           monkeypatch):
    from huggingface_hub import constants

    from byov.hub import checkpoint_name, read_reference, resolve_checkpoint
    cache, sha = str(tmp_path / "hub"), "0123456789abcdef0123456789abcdef01234567"
    _fake_hub_cache(cache, "someone/tiny-byov", exported, sha)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    local = resolve_checkpoint(exported)
    for ref in ("hf://someone/tiny-byov", f"hf://someone/tiny-byov@{sha}"):
        ckpt = resolve_checkpoint(ref)
        assert not tensors_differing(ckpt, local), ref
        assert read_reference(ref).content_hash == read_reference(exported).content_hash
    assert checkpoint_name("hf://someone/tiny-byov@v1") == "someone--tiny-byov@v1"
    # evaluate.py --ckpt hf://...: the same embeddings as the original checkpoint
    folder = str(tmp_path / "hf_eval")
    _evaluate(["--ckpt", "hf://someone/tiny-byov", *run["location"], "--embed_dir", folder])
    a = np.load(os.path.join(run["dir"], "eval", "last", "test_embeds.npy"))
    assert np.load(os.path.join(folder, "test_embeds.npy")).tobytes() == a.tobytes()


def test_offline_without_a_cached_copy_names_the_repo_and_the_fetch_command(tmp_path,
                                                                           monkeypatch):
    from huggingface_hub import constants

    from byov.hub import HubError, resolve_checkpoint
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match=r"hf://owner/missing: HF_HUB_OFFLINE is set.*"
                                       r"`hf download owner/missing`"):
        resolve_checkpoint("hf://owner/missing")
    with pytest.raises(HubError, match=r"`hf download owner/missing --revision v2`"):
        resolve_checkpoint("hf://owner/missing@v2")
    for bad in ("hf://no-owner", "hf://a/b/c", "hf://a/b@"):
        with pytest.raises(HubError, match="not a Hub model reference"):
            resolve_checkpoint(bad)


def test_folders_that_are_not_exports_are_refused_with_the_fix(run, tmp_path):
    from byov.hub import HubError, resolve_checkpoint
    with pytest.raises(HubError, match=r"looks like a run folder.*python -m byov.export"):
        resolve_checkpoint(run["dir"])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(HubError, match=r"missing model.safetensors"):
        resolve_checkpoint(str(tmp_path / "half"))


def test_init_from_an_export_starts_a_new_run_from_its_weights(run, exported, tmp_path,
                                                               synthetic_root, tiny_clip_dir,
                                                               train_cache_dir):
    out = str(tmp_path / "new")
    train_in_process(train_args(synthetic_root, tiny_clip_dir, out, train_cache_dir,
                                target="ema", init_from=exported, lr=0.0))
    new, old = load_ckpt(out), load_ckpt(run["dir"])
    assert new["epoch"] == 0
    assert not tensors_differing(new["encoder"], old["encoder"])


def test_model_card_shows_the_metrics_beside_the_baselines_it_has(run, exported):
    from byov.eval.tables import format_comparison
    text = open(os.path.join(exported, "README.md")).read()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["library_name"] == "byov" and meta["datasets"] == ["synthetic"]
    model = json.load(open(os.path.join(run["dir"], "eval", "last", "metrics.json")))["metrics"]
    time = json.load(open(os.path.join(run["dir"], "eval", "baseline_time",
                                       "metrics.json")))["metrics"]
    result = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == "someone/tiny-byov"
    assert result["dataset"]["split"] == "test"
    f1 = {m["name"]: m["value"] for m in result["metrics"]}
    assert f1["phase classification F1 (regular)"] == round(
        model["classification_f1"]["regular"], 6)
    # the table is the project's comparison table of exactly the metrics found
    assert format_comparison([model, time], ["this model", "time t/L"], "synthetic") in text
    assert "baseline `frozen backbone`: not evaluated (no eval/baseline_frozen/metrics.json" in text
    assert "baseline `untrained`: not evaluated" in text
    ckpt = load_ckpt(run["dir"])
    assert f"Train/val data fingerprint: `{ckpt['data_fingerprint']}`" in text
    assert "python train.py --dataset synthetic" in text
    assert "hf://someone/tiny-byov" in text and "MIT (openai/CLIP)" in text


def test_stale_model_metrics_are_not_shown(run, tmp_path):
    """A metrics.json made from other checkpoint bytes at the same path is not the model's."""
    from byov.export.card import read_evaluation
    ev = read_evaluation(os.path.join(run["dir"], "eval", "last"), "m", "fix", "0" * 32)
    assert ev.metrics is None and "stale" in ev.note


def test_export_refuses_a_folder_with_other_files_and_push_needs_a_token(run, tmp_path,
                                                                         monkeypatch):
    from huggingface_hub import constants

    from byov.export import push_folder
    from byov.export.__main__ import main
    from byov.hub import HubError
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(HubError, match=r"holds other files \(notes.txt\)"):
        main([run["dir"], str(tmp_path / "busy")])
    # files with an export's names that are someone else's (a checkout's README.md, notes)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("my precious notes")
    (notes / "config.json").write_text('{"mine": 1}')
    with pytest.raises(HubError, match="not a byov export.*nothing was written"):
        main([run["dir"], str(notes)])
    assert (notes / "README.md").read_text() == "my precious notes"
    # a path under a regular file: one named error, no traceback of os.makedirs
    from byov.writable import CannotWriteError
    with pytest.raises(CannotWriteError, match="notes.txt' is a file, not a folder"):
        main([run["dir"], str(tmp_path / "busy" / "notes.txt" / "out")])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(HubError, match=r"needs a Hugging Face token.*hf auth login.*HF_TOKEN"):
        push_folder(str(tmp_path / "busy"), "someone/x")


def test_the_report_evaluates_an_exported_model_through_the_same_resolver(run, exported):
    from byov.report.inputs import checkpoint_evaluation, method_label, resolve_checkpoint
    assert resolve_checkpoint(run["dir"], exported) == exported
    loc = run["location"]
    overrides = dict(zip([k.lstrip("-") for k in loc[::2]], loc[1::2]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluation, _, _ = checkpoint_evaluation(run["dir"], exported, "test", overrides,
                                                 resolve=lambda config: config)
    finally:
        torch.set_num_threads(threads)
    assert evaluation.folder == os.path.join(run["dir"], "eval", "tiny-byov")
    original = np.load(os.path.join(run["dir"], "eval", "last", "test_embeds.npy"))
    assert evaluation.evl.embeds.tobytes() == original.tobytes()
    assert method_label("byov", exported) == f"BYOV ({exported})"


def test_portable_config_keeps_hub_ids_and_reduces_local_paths_to_their_name():
    from byov.spec import portable_config as neutral_config
    defaults = {"dataset_root": "AE2_data", "output_dir": "logs/run", "device": "auto",
                "vision_encoder_path": ""}
    hub, notes = neutral_config({"dataset_root": "/home/me/AE2_data", "output_dir": "/scratch/r",
                                 "device": "cuda:3",
                                 "vision_encoder_path": "facebook/dinov2-large"}, defaults)
    assert hub == {"dataset_root": "AE2_data", "output_dir": "logs/run", "device": "auto",
                   "vision_encoder_path": "facebook/dinov2-large"} and notes == []
    local, notes = neutral_config({"vision_encoder_path": "/home/me/models/clip-b16/"}, defaults)
    assert local["vision_encoder_path"] == "clip-b16" and "--vision_encoder_path" in notes[0]


def test_init_from_an_unfetchable_model_fails_before_any_data_work(tmp_path, monkeypatch,
                                                                   synthetic_root, tiny_clip_dir):
    from huggingface_hub import constants

    from byov.hub import HubError
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caches = tmp_path / "frame_caches"
    with pytest.raises(HubError, match=r"hf download owner/missing"):
        train_in_process(train_args(synthetic_root, tiny_clip_dir, str(tmp_path / "new"),
                                    str(caches), init_from="hf://owner/missing"))
    assert not caches.exists()  # no frame cache was built


def test_a_baseline_from_other_data_is_left_out_with_the_command_to_redo_it(run, tmp_path):
    import shutil

    from byov.export.__main__ import main
    copy = str(tmp_path / "run")
    shutil.copytree(run["dir"], copy)
    info = os.path.join(copy, "eval", "baseline_time", "embed_info.json")
    with open(info) as f:
        record = json.load(f)
    record["key"]["data"] = "fingerprint-of-other-data"
    with open(info, "w") as f:
        json.dump(record, f)
    folder = str(tmp_path / "export")
    main([copy, folder, "--repo_id", "someone/tiny-byov"])
    text = open(os.path.join(folder, "README.md")).read()
    assert "baseline_time was evaluated on other data than the model" in text
    assert (f"run `python evaluate.py --config {os.path.join(copy, 'config.yaml')} --baseline "
            f"time --output_dir {copy}`") in text
