import numpy as np
import pytest

from byov.training.schedules import lr_schedule


def test_constant_without_warmup_is_flat():
    s = lr_schedule(1e-5, 10)
    assert s.shape == (10,) and s.dtype == np.float64
    assert np.all(s == 1e-5)


def test_linear_warmup_from_zero_then_constant():
    s = lr_schedule(1.0, 10, warmup_steps=4)
    np.testing.assert_allclose(s[:5], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.all(s[4:] == 1.0)


def test_cosine_endpoints_and_monotone_decay():
    s = lr_schedule(1.0, 14, warmup_steps=3, kind="cosine", min_lr=0.1)
    assert s[0] == 0.0 and s[3] == 1.0 and s[-1] == pytest.approx(0.1, abs=1e-15)
    assert np.all(np.diff(s[3:]) < 0)
    assert s[8] == pytest.approx(0.55)  # halfway through the decay: the mean of the two ends


def test_resume_indexes_the_same_curve():
    full = lr_schedule(2.0, 50, warmup_steps=5, kind="cosine")
    again = lr_schedule(2.0, 50, warmup_steps=5, kind="cosine")
    assert np.array_equal(full[20:], again[20:])  # resuming at step 20 = indexing from 20


def test_degenerate_lengths():
    assert lr_schedule(1.0, 1, kind="cosine").tolist() == [1.0]
    np.testing.assert_allclose(lr_schedule(1.0, 4, warmup_steps=4), [0, 0.25, 0.5, 0.75])


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="step"), "expected one of"),
    (dict(total_steps=0), "total_steps"),
    (dict(warmup_steps=11), "warmup_steps"),
    (dict(kind="cosine", min_lr=2.0), "min_lr"),
    (dict(base_lr=-1.0), ">= 0"),
])
def test_bad_arguments_raise(kwargs, match):
    args = dict(base_lr=1.0, total_steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lr_schedule(**args)
