"""A benchmark job is done only for the data and code it ran with: corrected labels or other code
redo it (the old folder kept), a grid edited to fewer epochs than a run trained is refused, a
seed added later is never tabulated with results of other data, and a null metric shows n per
cell."""
import os
import pickle
import sys

import pytest
import torch
import yaml

from byov.grid import identity, runner, tables
from byov.grid.jobs import Capabilities, GridError, load_grid, make_jobs
from data_helpers import make_csv_dataset
from utils.config import Config, to_dict

_DEFAULTS = to_dict(Config())  # the grid resolves every key; tests give a few

# evaluate.py stand-in: writes a metrics file whose F1 is the number of label entries of the
# data it read (so a result shows which data it came from)
FAKE_EVALUATE = '''
import json, os, pickle, sys, yaml
argv = sys.argv[1:]
os.makedirs(os.path.dirname(argv[argv.index("--json") + 1]), exist_ok=True)
root = yaml.safe_load(open(argv[argv.index("--config") + 1]))["dataset_root"]
with open(root + "/synthetic/label.pickle", "rb") as f:
    labels = pickle.load(f)
sets = {"regular": 0.5, "ego2exo": 0.25, "exo2ego": None}
json.dump({"classification_f1": sets, "retrieval_map10": sets, "progression_r2": 0.1,
           "kendalls_tau": None if "--seed" in argv and argv[argv.index("--seed") + 1] == "1"
           else float(sum(len(v) for v in labels.values()))},
          open(argv[argv.index("--json") + 1], "w"))
'''


@pytest.fixture
def bench(tmp_path, monkeypatch):
    monkeypatch.setattr(identity, "_DATA", {})
    data_root = tmp_path / "data"
    make_csv_dataset(data_root, {})
    project = tmp_path / "project"
    project.mkdir()
    (project / "evaluate.py").write_text(FAKE_EVALUATE)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": "synthetic", "dataset_root": str(data_root)}))

    def jobs(seeds):
        grid_path = tmp_path / "grid.yaml"
        grid_path.write_text(yaml.safe_dump({
            "datasets": ["tiny.yaml"], "seeds": seeds, "methods": [],
            "baselines": ["random_init"], "output_root": str(tmp_path / "bench")}))
        grid = load_grid(str(grid_path))
        caps = Capabilities(baseline_flag=True)
        return grid, make_jobs(grid, lambda argv: {
        **_DEFAULTS, "dataset": "synthetic", "features": "fly",
                                                   "epochs": 1, "dataset_root": str(data_root)},
                               caps)
    return data_root, str(project), jobs


def _run(jobs, project, log):
    for job in jobs:
        runner.run_job(job, python=sys.executable, cwd=project)


def test_corrected_test_labels_redo_done_jobs_and_a_new_seed_is_not_mixed(bench):
    data_root, project, make = bench
    grid, jobs = make([0])
    _run(jobs, project, print)
    assert runner.job_state(jobs[0])[0] == "done"
    first = runner.read_marker(jobs[0])
    assert first["data"].startswith("blake2b:") and first["code"]["hash"].startswith("src:")

    # the test labels are corrected (one more label entry): the data fingerprint moves
    labels_path = data_root / "synthetic" / "label.pickle"
    labels = pickle.loads(labels_path.read_bytes())
    labels["extra_unused"] = [0, 1]
    labels_path.write_bytes(pickle.dumps(labels))
    identity.forget_data()
    grid, jobs = make([0, 1])  # and a seed is added
    state, what = runner.job_state(jobs[0])
    assert state == "redo" and "data" in what
    done = {j.id for j in jobs if runner.job_state(j)[0] == "done"}
    assert done == set()  # nothing of the old data counts, and seed 1 is not run yet
    table = tables.dataset_table("tiny", jobs, done, "best")
    assert table["rows"] == [] or all(r["kind"] == "published" for r in table["rows"])

    _run(jobs, project, print)
    aside = [n for n in os.listdir(os.path.dirname(jobs[0].run_dir)) if ".superseded-" in n]
    assert aside == [f"seed0.superseded-{aside[0].split('-', 1)[1]}"]  # kept, not deleted
    done = {j.id for j in jobs if runner.job_state(j)[0] == "done"}
    assert done == {0, 1}
    markers = [runner.read_marker(j) for j in jobs]
    assert markers[0]["data"] == markers[1]["data"] != first["data"]
    table = tables.dataset_table("tiny", jobs, done, "best")
    row = next(r for r in table["rows"] if r["kind"] == "baseline")
    # tau: seed 0 counts the new labels (one entry more than before); seed 1's is null
    n_labels = sum(len(v) for v in labels.values())
    tau = row["values"]["kendalls_tau"]
    assert (tau["mean"], tau["n"], tau["of"], tau["missing"]) == (n_labels, 1, 2, [1])
    md = tables.format_table(table)
    assert f"| {n_labels}.0000 (n=1/2) |" in md
    assert "τ: no value for seed(s) 1" in md
    assert "F1 X2E" in md and "n/a (n=0/2)" in md
    assert identity.short(markers[0]).split(",")[0] in md  # the data the row came from


def test_other_code_redoes_a_done_job(bench, monkeypatch):
    _, project, make = bench
    _, jobs = make([0])
    _run(jobs, project, print)
    assert runner.job_state(jobs[0])[0] == "done"
    real = identity.code_version(runner.repo_root())
    monkeypatch.setattr(identity, "code_version",
                        lambda root: {"hash": "src:0000", "label": "git feedbeef"})
    state, what = runner.job_state(jobs[0])
    assert state == "redo" and real["hash"] in what and "src:0000" in what


def test_code_version_follows_the_sources(tmp_path):
    for name in ("train.py", "evaluate.py"):
        (tmp_path / name).write_text("print(1)\n")
    (tmp_path / "byov").mkdir()
    (tmp_path / "byov" / "x.py").write_text("A = 1\n")
    first = identity.code_version(str(tmp_path))
    assert first["label"].startswith("byov")  # not a git checkout
    identity.code_version.cache_clear()
    (tmp_path / "byov" / "x.py").write_text("A = 2\n")
    assert identity.code_version(str(tmp_path))["hash"] != first["hash"]
    identity.code_version.cache_clear()


def test_grid_edited_to_fewer_epochs_than_trained_is_refused(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": "synthetic"}))
    grid_path = tmp_path / "grid.yaml"
    grid_path.write_text(yaml.safe_dump({"datasets": ["tiny.yaml"], "seeds": [0],
                                         "overrides": {"epochs": 2},
                                         "output_root": str(tmp_path / "bench")}))
    grid = load_grid(str(grid_path))
    from utils.config import Config, to_dict
    resolved = {**to_dict(Config()), "dataset": "synthetic", "features": "fly", "epochs": 2,
                "dataset_root": str(tmp_path)}  # what the grid's resolver gives: every key
    [job] = make_jobs(grid, lambda argv: resolved, Capabilities())
    os.makedirs(os.path.join(job.run_dir, "checkpoints"))
    with open(os.path.join(job.run_dir, "config.yaml"), "w") as f:
        yaml.safe_dump({"epochs": 4}, f)
    torch.save({"epoch": 3}, os.path.join(job.run_dir, "checkpoints", "last.pth"))  # 4 trained
    with pytest.raises(GridError, match=r"trained for 4 epochs, but the grid now asks for 2"):
        runner.check_run_config(job)
    with pytest.raises(GridError, match="trained for 4 epochs"):
        runner.run_grid([job], "local", 1)
    assert not os.path.exists(os.path.join(job.run_dir, runner.MARKER))
