"""python -m byov.grid with Charades-Ego: its jobs (video-level baselines only) and its
table (mAP in three settings, the published numbers beside ours)."""
import json
import statistics

import pytest
import yaml

from byov.grid.jobs import Capabilities, Job, load_grid, make_jobs


def test_grid_keeps_only_the_baselines_that_apply(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"datasets": ["charades_ego", "break_eggs"],
                                    "baselines": ["time", "prior", "frozen"]}))
    grid = load_grid(str(path))
    notes = []
    caps = Capabilities(method_flag=True, baseline_flag=True,
                        baseline_choices=("time", "frozen", "random_init", "prior"))
    from utils.config import Config, to_dict
    defaults = to_dict(Config())  # the grid's resolver gives every key
    jobs = make_jobs(grid, lambda argv: {**defaults, "dataset": (
        "charades_ego" if "charades_ego.yaml" in argv[1] else "break_eggs"),
        "features": "merged", "epochs": 1}, caps, notes.append)
    names = {j.name for j in jobs}
    assert {"charades_ego/baselines/prior", "charades_ego/baselines/frozen",
            "break_eggs/baselines/time", "break_eggs/baselines/frozen"} <= names
    assert "charades_ego/baselines/time" not in names
    assert "break_eggs/baselines/prior" not in names
    assert any("'time' skipped for charades_ego" in n for n in notes)
    prior = next(j for j in jobs if j.name == "charades_ego/baselines/prior")
    assert prior.eval_argv[prior.eval_argv.index("--baseline") + 1] == "prior"


def test_table_has_three_settings_baselines_and_published_rows(tmp_path):
    from byov.grid import tables

    jobs = []
    for kind, method, seed, value in (("train", "byov", 0, 30.0), ("train", "byov", 1, 40.0),
                                      ("baseline", "prior", None, 10.0)):
        run = tmp_path / f"{method}{seed}"
        run.mkdir()
        (run / "test_metrics.json").write_text(json.dumps({"video_map": {
            "regular": value, "ego2exo": value / 2, "exo2ego": None}}))
        jobs.append(Job(id=len(jobs), kind=kind, dataset="charades_ego",
                        dataset_key="charades_ego", method=method, seed=seed, run_dir=str(run),
                        log="", config_path="", train_argv=[], eval_argv=[], extract_argv=None,
                        epochs=1, checkpoint="best", signature="", config={}))
    table = tables.dataset_table("charades_ego", jobs, {0, 1, 2}, "best")
    rows = {r["name"]: r for r in table["rows"]}
    assert rows["byov"]["values"]["map_regular"]["mean"] == pytest.approx(35.0)
    assert rows["byov"]["values"]["map_regular"]["std"] == pytest.approx(
        statistics.stdev([30.0, 40.0]))
    text = tables.format_table(table)
    assert "| Method | n | mAP Reg | mAP E2X | mAP X2E |" in text
    assert "| byov | 2 | 35.00 ± 7.07 | 17.50 ± 3.54 | n/a (n=0/2) |" in text  # missing: marked
    assert "| chance (training class prior) (baseline) | 1 | 10.00 | 5.00 | n/a (n=0/1) |" in text
    assert "| BYOV ViT-B/16 (published) |  | 31.80 | 26.50 | 27.30 |" in text
    assert "| CLIP ViT-B/16 (frozen) (published) |  | 13.70 | 8.30 | 10.70 |" in text
