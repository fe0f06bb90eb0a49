"""The protocol never degrades quietly: an --eval_task that can never compute --best_metric is
refused at start-up (train.py and the benchmark grid) naming both flags and the fix, and the
tables say which checkpoint each seed was tested with."""
import json

import pytest
import yaml

from byov.spec.protocol import ProtocolError, check_best_metric, checkpoint_plan
from train_helpers import train_args, train_in_process


@pytest.mark.parametrize("tasks, metric, ok", [
    ("34", "val_score", False), ("34", "kendalls_tau", True), ("1", "val_score", True),
    ("2", "classification_f1.ego2exo", False), ("kendall", "progression_r2", False),
    ("progression", "progression_r2_with_time_feature", True), ("1234", "val_score", True)])
def test_best_metric_must_be_computable_by_eval_task(tasks, metric, ok):
    if ok:
        check_best_metric(tasks, metric)
    else:
        with pytest.raises(ProtocolError, match=rf"--eval_task {tasks} .*never computes "
                                                rf"--best_metric {metric}.*--eval_task \d+"):
            check_best_metric(tasks, metric)


def test_train_refuses_it_before_any_work(synthetic_root, tiny_clip_dir, tmp_path):
    cache = tmp_path / "fresh_frame_cache"

    def args(name, **over):
        return train_args(synthetic_root, tiny_clip_dir, str(tmp_path / name), str(cache), **over)
    argv = args("run", eval_task="34", ds_every_n_epoch=1)
    with pytest.raises(ProtocolError, match="--eval_task 34 .*--best_metric val_score"):
        train_in_process(argv)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "config.yaml").exists()
    assert not cache.exists()  # no frame was decoded
    # the fix it names works: a metric the tasks compute
    train_in_process(args("run", eval_task="34", ds_every_n_epoch=1, best_metric="kendalls_tau"))
    assert (tmp_path / "run" / "checkpoints" / "last.pth").exists()


def test_checkpoint_plan_says_last_pth_without_val_evaluation():
    from byov.spec import EvalSpec
    plan = checkpoint_plan(EvalSpec(tasks=("classification",), time_feature=False,
                                    every_n_epochs=0, best_metric="val_score", eval_task="1234"))
    assert "best.pth is not written" in plan and "last.pth" in plan


def test_grid_refuses_it_before_any_job_runs(tmp_path):
    from byov.cli.grid import main
    from byov.grid.jobs import GridError

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({"dataset": "synthetic"}))
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"datasets": ["tiny.yaml"], "seeds": [0],
                                    "overrides": {"eval_task": "34", "ds_every_n_epoch": 1},
                                    "output_root": str(tmp_path / "bench")}))
    with pytest.raises(GridError, match="job tiny/byov/seed0: --eval_task 34 .*never computes"):
        main([str(grid)])
    assert not (tmp_path / "bench").exists()


def test_tables_name_the_checkpoint_each_seed_was_tested_with(tmp_path):
    from byov.grid import tables
    from byov.grid.jobs import Job
    from byov.grid.runner import MARKER

    jobs = []
    for seed, ckpt in ((0, "best.pth"), (1, "last.pth")):
        run = tmp_path / str(seed)
        run.mkdir()
        sets = {"regular": 0.5, "ego2exo": 0.5, "exo2ego": 0.5}
        (run / "test_metrics.json").write_text(json.dumps({
            "classification_f1": sets, "retrieval_map10": sets, "progression_r2": 0.1,
            "kendalls_tau": 0.2}))
        (run / MARKER).write_text(json.dumps({"data": "blake2b:ab", "code": {"hash": "src:1"},
                                              "checkpoint": str(run / "checkpoints" / ckpt)}))
        jobs.append(Job(id=seed, kind="train", dataset="tiny", dataset_key="synthetic",
                        method="byov", seed=seed, run_dir=str(run), log="", config_path="",
                        train_argv=[], eval_argv=[], extract_argv=None, epochs=1,
                        checkpoint="best", signature="", config={}))
    md = tables.format_table(tables.dataset_table("tiny", jobs, {0, 1}, "best"))
    assert "byov: seed(s) 0 tested with best.pth (chosen on val)" in md
    assert "byov: seed(s) 1 tested with last.pth (the final epoch, not chosen on val)" in md
    assert "best.pth (chosen on val), else last.pth" not in md
