"""scripts/run.sh: the demo pipeline end to end (feature cache, training, test evaluation of
best.pth, frozen-feature baseline, comparison), on a reduced setting."""
import json
import os
import shutil
import subprocess

import numpy as np

from train_helpers import ROOT, subprocess_env, train_args


def run_sh(*args, timeout=300):
    return subprocess.run(["bash", "scripts/run.sh", *args], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_unknown_name_lists_the_valid_ones():
    proc = run_sh("break_egs")
    assert proc.returncode == 2
    assert "valid names:" in proc.stderr and "break_eggs" in proc.stderr and "demo" in proc.stderr


def test_demo_on_a_reduced_setting(synthetic_root, tiny_clip_dir, tmp_path):
    # a copy: the demo's feature extraction may not write next to the shared dataset
    shutil.copytree(synthetic_root, tmp_path / "data" / "synthetic")
    out = tmp_path / "run"
    args = train_args(str(tmp_path / "data" / "synthetic"), tiny_clip_dir, str(out),
                      str(tmp_path / "frames"), epochs=2, ds_every_n_epoch=1,
                      feature_cache_dir=str(tmp_path / "features"))
    proc = run_sh("demo", *args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # the token cache was extracted and training read it (the demo's `features: tokens`)
    assert os.path.isfile(tmp_path / "features" / "tokens" / "manifest.json")
    with open(out / "config.yaml") as f:
        assert "features: tokens" in f.read()
    trained = json.loads((out / "eval" / "best" / "metrics_test.json").read_text())
    frozen = json.loads((out / "eval" / "baseline_frozen" / "metrics_test.json").read_text())
    for metrics in (trained, frozen):
        assert set(metrics["classification_f1"]) == {"regular", "ego2exo", "exo2ego"}
        assert isinstance(metrics["kendalls_tau"], float)
    # test embeddings of the trained model (32-d) and of the frozen backbone (its 32-d tokens)
    assert os.path.isfile(out / "eval" / "best" / "test_embeds.npy")
    assert trained["retrieval_map10"] != frozen["retrieval_map10"]
    header = ("| Metric | baseline: time | baseline: frozen | baseline: random_init | "
              "byov (best.pth) |")
    table = proc.stdout[proc.stdout.index(header):]
    assert "| F1 Regular |" in table and "| Kendall's tau |" in table
    # the time baseline is t/L per frame: nearest frames never run backwards in time, so
    # Kendall's tau has no discordant pair (ties from unequal lengths keep tau-b a bit below 1)
    timed = json.loads((out / "eval" / "baseline_time" / "metrics_test.json").read_text())
    assert 0.5 < timed["kendalls_tau"] <= 1.0
    assert np.load(out / "eval" / "baseline_time" / "test_embeds.npy").shape[1] == 1
    assert (out / "eval" / "baseline_random_init" / "metrics_test.json").is_file()
