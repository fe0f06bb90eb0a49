import builtins
import json
import math
import os
import time

import numpy as np
import pytest
import torch

from byov.training.logger import MetricMeter, RunLogger, SmoothedValue


def test_run_logger_writes_json_lines_and_tensorboard_events(tmp_path):
    with RunLogger(str(tmp_path)) as logger:
        logger.log(0, epoch=0, train_loss=torch.tensor(0.5), lr=np.float64(1e-5), phase="train")
        logger.log(4, train_loss=float("nan"))
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)  # each line is valid JSON
    assert first["step"] == 0 and first["epoch"] == 0 and first["phase"] == "train"
    assert first["train_loss"] == 0.5 and first["lr"] == 1e-5
    assert first["time"] > 1e9 and first["elapsed"] >= 0
    assert second["step"] == 4 and "epoch" not in second and second["train_loss"] is None
    events = os.listdir(tmp_path / "tb")
    assert len(events) == 1 and events[0].startswith("events.out.tfevents")
    assert os.path.getsize(tmp_path / "tb" / events[0]) > 100  # scalars were written

    with RunLogger(str(tmp_path), tensorboard=False) as logger:  # appends, never truncates
        logger.log(8, train_loss=0.25)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3


def test_run_logger_rejects_bad_values(tmp_path):
    with RunLogger(str(tmp_path), tensorboard=False) as logger:
        with pytest.raises(ValueError, match="'loss' must be a scalar"):
            logger.log(0, loss=torch.zeros(3))
        with pytest.raises(ValueError, match="'cfg' has type dict"):
            logger.log(0, cfg={})
        with pytest.raises(ValueError, match="reserved"):
            logger.log(0, time=3.0)
    with pytest.raises(RuntimeError, match="closed"):
        logger.log(1, loss=1.0)


def test_disabled_logger_touches_no_files(tmp_path):
    logger = RunLogger(str(tmp_path / "rank1"), enabled=False)
    logger.log(0, loss=1.0)
    logger.close()
    assert not (tmp_path / "rank1").exists()


def test_missing_tensorboard_is_a_clear_error_only_when_asked(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ImportError, match="pip install tensorboard.*tensorboard=False"):
        RunLogger(str(tmp_path / "a"))
    RunLogger(str(tmp_path / "b"), tensorboard=False).close()  # works without it


def test_smoothed_value_window_and_global_mean():
    v = SmoothedValue(window=3)
    assert math.isnan(v.avg)
    for x in [1, 2, 3, 10]:
        v.update(x)
    assert v.value == 10 and v.avg == 5.0 and v.median == 3
    assert v.global_avg == 4.0
    v.update(0.0, n=4)  # a batch of 4 with mean 0
    assert v.global_avg == 16 / 8


def test_metric_meter_throughput_and_averages():
    meter = MetricMeter(window=10)
    for loss in [1.0, 3.0]:
        time.sleep(0.01)
        meter.data_ready()
        time.sleep(0.02)
        meter.update(loss=torch.tensor(loss))
        meter.tick(n_items=8)
    assert meter.averages() == {"loss": 2.0}
    assert 0.025 <= meter.iter_time < 0.3 and 0.008 <= meter.data_time < meter.iter_time
    assert meter.throughput == pytest.approx(8 / meter.iter_time)
    assert "loss: 3 (2)" in str(meter) and "items/s" in str(meter)


def test_resumed_logger_drops_what_the_interrupted_run_logged_after_its_checkpoint(tmp_path):
    logger = RunLogger(str(tmp_path), tensorboard=False)
    for step in range(1, 9):
        logger.log(step, loss=float(step))
    logger.close()
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"step": 9, "loss": 9')  # a line torn by the kill
    logger = RunLogger(str(tmp_path), tensorboard=False, resume_step=5)
    logger.log(6, loss=60.0)
    logger.close()
    with open(tmp_path / "log.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [(r["step"], r["loss"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0),
                                                         (5, 5.0), (6, 60.0)]
