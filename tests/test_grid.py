"""The benchmark grid (python -m byov.grid): a two-seed grid of tiny runs on the session's
synthetic data trains, evaluates and tabulates mean ± std over the seeds with a baseline row;
an interrupted run is resumed, not restarted; a second invocation runs nothing; a failing job
stops the grid naming its log; the Slurm launcher writes one array task per job."""
import json
import os
import statistics
import subprocess

import pytest
import yaml

from train_helpers import TINY, load_ckpt, read_log, train_in_process

from byov.cli.grid import main
from byov.grid.jobs import Capabilities, GridError, load_grid
from byov.grid.runner import JobFailed, read_job

from utils.config import Config, to_dict  # noqa: E402

_DEFAULTS = to_dict(Config())  # the grid resolves every key; tests give a few


def tiny_config(tmp_path, synthetic_root, clip_dir, cache_dir, **extra) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "dataset_root": os.path.dirname(synthetic_root),
                                    "vision_encoder_path": clip_dir,
                                    "frame_cache_dir": cache_dir, **extra}))
    return str(path)


def write_grid(tmp_path, name="grid.yaml", **grid) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def headline(metrics: dict) -> dict:
    """The table's columns computed here from an evaluate.py --json file (x100 for F1/mAP)."""
    out = {f"{p}_{s}": 100 * metrics[g][s]
           for g, p in (("classification_f1", "f1"), ("retrieval_map10", "map10"))
           for s in ("regular", "ego2exo", "exo2ego")}
    out.update(progression=metrics["progression_r2"], kendalls_tau=metrics["kendalls_tau"])
    return out


def snapshot(paths):
    return {p: (os.path.getmtime(p), os.path.getsize(p)) for p in paths}


def test_grid_trains_resumes_skips_and_tabulates(synthetic_root, tiny_clip_dir, train_cache_dir,
                                                 tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = tiny_config(tmp_path, synthetic_root, tiny_clip_dir, train_cache_dir)
    root = tmp_path / "bench"
    grid = write_grid(tmp_path, datasets=["tiny.yaml"], seeds=[0, 1], overrides={"epochs": 2},
                      baselines=["time"], output_root=str(root))
    runs = [root / "tiny" / "byov" / f"seed{s}" for s in (0, 1)]
    # seed 1 was interrupted after its first epoch (of 2)
    train_in_process(["--config", cfg, "--seed", "1", "--output_dir", str(runs[1]),
                      "--epochs", "1"])
    first_epoch = runs[1] / "checkpoints" / "epoch_0000.pth"
    before = first_epoch.read_bytes()

    assert main([grid]) == 0
    out = capsys.readouterr().out
    assert "tiny/byov/seed0: train 2 epochs from scratch" in out
    assert "tiny/byov/seed1: resume after epoch 1 of 2" in out
    for run in runs:
        ckpt = load_ckpt(str(run))
        assert (ckpt["epoch"], ckpt["config"]["epochs"]) == (1, 2)
    # resumed, not restarted: epoch 0's checkpoint is the interrupted run's, and every step of
    # the two epochs (3 train videos, batch 1) is logged exactly once
    assert first_epoch.read_bytes() == before
    log1 = (root / "logs" / "tiny" / "byov_seed1.log").read_text()
    assert "resumed from" in log1 and "at epoch 1" in log1
    assert [r["step"] for r in read_log(str(runs[1])) if "train/lr" in r] == list(range(1, 7))

    table = json.loads((root / "tables" / "tiny.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    assert set(rows) == {"byov", "time (frame index) (baseline)"}
    seeds = [headline(json.loads((run / "test_metrics.json").read_text())) for run in runs]
    byov = rows["byov"]
    assert (byov["n"], byov["seeds"]) == (2, [0, 1])
    for column, cell in byov["values"].items():
        values = [s[column] for s in seeds]
        assert cell["mean"] == pytest.approx(statistics.fmean(values), abs=1e-9)
        assert cell["std"] == pytest.approx(statistics.stdev(values), abs=1e-9)
    time_row = rows["time (frame index) (baseline)"]
    time_metrics = headline(json.loads(
        (root / "tiny" / "baselines" / "time" / "test_metrics.json").read_text()))
    assert time_row["n"] == 1 and time_row["values"]["kendalls_tau"]["std"] is None
    assert time_row["values"]["kendalls_tau"]["mean"] == pytest.approx(
        time_metrics["kendalls_tau"])
    md = (root / "tables" / "tiny.md").read_text()
    f1 = byov["values"]["f1_regular"]
    assert f"| byov | 2 | {f1['mean']:.2f} ± {f1['std']:.2f} |" in md
    assert "## tiny" in (root / "tables.md").read_text()

    # a second invocation runs nothing: no log line, no checkpoint or metrics rewritten
    files = [str(p) for run in runs for p in (run / "checkpoints" / "last.pth",
                                                run / "test_metrics.json")]
    files += [str(p) for p in (root / "logs" / "tiny").iterdir()]
    state = snapshot(files)
    assert main([grid]) == 0
    out = capsys.readouterr().out
    assert out.count(", skipped") == 3
    assert snapshot(files) == state

    # every job is done: the Slurm launcher has nothing to write
    assert main([grid, "--launcher", "slurm"]) == 0
    assert "nothing to submit" in capsys.readouterr().out
    assert not (root / "slurm").exists()


def test_failing_job_stops_the_grid_naming_its_log(tmp_path):
    from byov.grid.jobs import make_jobs
    from byov.grid.runner import run_grid

    tiny_config(tmp_path, str(tmp_path / "unused" / "synthetic"), "unused", "unused")
    root = tmp_path / "bench"
    grid = load_grid(write_grid(tmp_path, datasets=["tiny.yaml"], seeds=[0, 1],
                                output_root=str(root)))
    jobs = make_jobs(grid, lambda argv: {
        **_DEFAULTS, "dataset": "synthetic", "features": "fly",
                                         "epochs": 1}, Capabilities())
    for job in jobs:  # train.py refuses the flag at once (no torch import: a fast failure)
        job.train_argv.append("--no_such_flag")
    logs = [root / "logs" / "tiny" / f"byov_seed{s}.log" for s in (0, 1)]
    with pytest.raises(JobFailed) as info:
        run_grid(jobs, "local", 1)
    assert "job tiny/byov/seed0 failed at training" in str(info.value)
    assert str(logs[0]) in str(info.value)
    assert "no_such_flag" in logs[0].read_text()  # train.py's error, kept in the job's log
    assert not logs[1].exists()  # the grid stopped at the first failure
    failures = run_grid(jobs, "local", 1, continue_on_error=True)
    assert [job.name for job, _ in failures] == ["tiny/byov/seed0", "tiny/byov/seed1"]
    assert "no_such_flag" in logs[1].read_text()


def test_slurm_array_has_one_task_per_job(synthetic_root, tiny_clip_dir, train_cache_dir,
                                          tmp_path, capsys):
    tiny_config(tmp_path, synthetic_root, tiny_clip_dir, train_cache_dir)
    root = tmp_path / "bench"
    grid = write_grid(tmp_path, datasets=["tiny.yaml"], seeds=[0, 1, 2], baselines=["time"],
                      output_root=str(root), launcher="slurm",
                      slurm={"nodes": 2, "gpus_per_node": 4, "partition": "gpu",
                             "time": "01:00:00", "max_parallel": 2})
    assert main([grid]) == 0
    out = capsys.readouterr().out
    script = (root / "slurm" / "byov_array.sbatch").read_text()
    assert "#SBATCH --array=0-3%2" in script  # 3 seeds + the baseline
    assert "#SBATCH --nodes=2" in script and "#SBATCH --partition=gpu" in script
    assert "--nproc_per_node 4" in script and "--node_rank \\$SLURM_NODEID" in script
    assert "__" not in script.replace("__init__", "")  # every placeholder filled
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0
    assert f"sbatch {root / 'slurm' / 'byov_array.sbatch'}" in out

    jobs_file = str(root / "slurm" / "jobs.jsonl")
    lines = open(jobs_file).read().splitlines()
    assert len(lines) == 4
    jobs = [read_job(jobs_file, i) for i in range(4)]
    assert [j.name for j in jobs] == ["tiny/byov/seed0", "tiny/byov/seed1", "tiny/byov/seed2",
                                      "tiny/baselines/time"]
    for seed, job in enumerate(jobs[:3]):
        argv = job.train_argv
        assert argv[argv.index("--seed") + 1] == str(seed)
        assert argv[argv.index("--output_dir") + 1] == str(root / "tiny" / "byov" /
                                                            f"seed{seed}")
        assert argv[-2:] == ["--resume", "auto"]
    assert "--baseline" in jobs[3].eval_argv and jobs[3].train_argv == []
    # what an array task runs: not done yet, and the train.py arguments of its job
    assert main(["--run-job", jobs_file, "--index", "2", "--phase", "check"]) == 1
    capsys.readouterr()
    assert main(["--run-job", jobs_file, "--index", "2", "--phase", "train-args"]) == 0
    assert "--seed 2 --output_dir " in capsys.readouterr().out


def test_grid_errors_name_the_key(tmp_path):
    bad = write_grid(tmp_path, "a.yaml", datasets=["demo"], sedes=[0])
    with pytest.raises(GridError, match="sedes"):
        load_grid(bad)
    bad = write_grid(tmp_path, "b.yaml", datasets=["demo"], overrides={"seed": 3})
    with pytest.raises(GridError, match="seed"):
        load_grid(bad)
    bad = write_grid(tmp_path, "c.yaml", datasets=["no_such_dataset"])
    with pytest.raises(GridError, match="no_such_dataset"):
        load_grid(bad)
    bad = write_grid(tmp_path, "d.yaml", datasets=["demo"], overrides={"epochz": 2})
    with pytest.raises(GridError, match="epochz"):
        main([bad, "--dry-run"])


def test_baseline_flags_follow_the_evaluate_cli():
    old = Capabilities(method_flag=False, baseline_flag=False)
    assert old.baseline_argv("frozen") == ["--frozen_features"]  # the stand-in
    assert old.baseline_argv("time") is None  # skipped until evaluate.py takes --baseline
    new = Capabilities(method_flag=True, baseline_flag=True,
                       baseline_choices=("time", "frozen", "random_init"))
    assert new.baseline_argv("time") == ["--baseline", "time"]
    assert new.baseline_argv("frozen") == ["--baseline", "frozen"]


def test_tables_put_published_numbers_beside_ours(tmp_path):
    from byov.grid import tables
    from byov.grid.jobs import Job

    def metrics(f1):
        sets = {"regular": f1, "ego2exo": f1 / 2, "exo2ego": f1 / 4}
        return {"classification_f1": sets, "retrieval_map10": sets, "progression_r2": 0.5,
                "progression_r2_with_time_feature": 0.9, "kendalls_tau": f1}

    made = []
    for key in ("break_eggs", "pour_milk", "pour_liquid", "tennis_forehand"):
        jobs = []
        for seed, f1 in ((0, 0.6), (1, 0.8)):
            run = tmp_path / key / str(seed)
            run.mkdir(parents=True)
            (run / "test_metrics.json").write_text(json.dumps(metrics(f1)))
            jobs.append(Job(id=len(jobs), kind="train", dataset=key, dataset_key=key,
                            method="byov", seed=seed, run_dir=str(run), log="", config_path="",
                            train_argv=[], eval_argv=[], extract_argv=None, epochs=1,
                            checkpoint="best", signature="", config={}))
        made.append(tables.dataset_table(key, jobs, {0, 1}, "best"))
    rows = {r["name"]: r for r in made[0]["rows"]}
    assert set(rows) == {"byov", "BYOV (published)", "CLIP ViT-B/16 features (published)"}
    assert rows["byov"]["values"]["f1_regular"]["mean"] == pytest.approx(70.0)
    assert rows["byov"]["values"]["f1_regular"]["std"] == pytest.approx(
        statistics.stdev([60.0, 80.0]))
    assert rows["BYOV (published)"]["values"]["f1_regular"]["mean"] == 74.30
    assert "| byov | 2 | 70.00 ± 14.14 | 35.00 ± 7.07 |" in tables.format_table(made[0])
    # pour_liquid's headline progression is the time-feature variant (0.9), elsewhere plain
    liquid = {r["name"]: r for r in made[2]["rows"]}["byov"]
    assert liquid["values"]["progression"]["mean"] == pytest.approx(0.9)
    assert rows["byov"]["values"]["progression"]["mean"] == pytest.approx(0.5)
    average = tables.average_section(made)
    assert "| byov (ours, mean of dataset means) |  | 70.00 |" in average
    assert "| AE2 (PRISM) |  | 75.96 |" in average


def test_a_method_can_read_its_own_configs(tmp_path):
    from byov.grid.jobs import make_jobs

    grid = load_grid(write_grid(tmp_path, datasets=["break_eggs"], methods=["byov", "tcc"],
                                method_configs={"tcc": "ae2"}, baselines=["frozen"]))
    caps = Capabilities(method_flag=True, baseline_flag=True)
    jobs = make_jobs(grid, lambda argv: {
        **_DEFAULTS, "dataset": "break_eggs", "features": "fly",
                                         "epochs": 3}, caps)
    configs = {j.name: j.train_argv[1] if j.train_argv else j.eval_argv[1] for j in jobs}
    assert configs["break_eggs/byov/seed0"].endswith(os.path.join("configs", "break_eggs.yaml"))
    assert configs["break_eggs/tcc/seed0"].endswith(os.path.join("configs", "ae2",
                                                                 "break_eggs.yaml"))
    assert configs["break_eggs/baselines/frozen"].endswith(
        os.path.join("configs", "break_eggs.yaml"))
    assert jobs[1].train_argv[2:4] == ["--method", "tcc"]
    with pytest.raises(GridError, match="method_configs"):
        load_grid(write_grid(tmp_path, "e.yaml", datasets=["break_eggs"], methods=["tcc"],
                             method_configs={"tcc": "no_such_folder"}))
