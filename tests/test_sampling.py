"""Clip and pair sampling with the released semantics (docs/released_code.md#training-sampler, docs/design.md#pairing)."""
import numpy as np
import pytest

from byov.data.layout import DataError, Video
from byov.data.sampling import draw_pair, sample_frames


def _videos(views):
    return [Video(path=f"/d/{v}/{v}_{k}.mp4", name=f"{v}_{k}", view=v, split="train",
                  num_frames=50) for k, v in enumerate(views)]


def test_long_video_distinct_sorted_never_frame_zero():
    rng = np.random.default_rng(0)
    seen = np.zeros(100, int)
    for _ in range(300):
        idx = sample_frames(100, 32, rng)
        assert idx.dtype == np.int64 and idx.shape == (32,)
        assert np.all(np.diff(idx) > 0)  # sorted and distinct
        assert idx.min() >= 1 and idx.max() <= 99
        seen[idx] += 1
    assert seen[0] == 0 and np.all(seen[1:] > 0)  # uniform over 1..L-1


@pytest.mark.parametrize("L, T, expect", [
    (33, 32, np.arange(32)),                                   # L = T + 1: exactly 0..T-1
    (32, 32, np.arange(32)),
    (5, 8, np.array([0, 1, 2, 3, 4, 4, 4, 4])),                # L < T: repeat the last frame
    (1, 3, np.array([0, 0, 0])),
])
def test_short_video_padding(L, T, expect):
    idx = sample_frames(L, T, np.random.default_rng(1))
    np.testing.assert_array_equal(idx, expect)
    assert idx.dtype == np.int64


def test_boundary_t_equals_l_minus_two_uses_random_branch():
    idx = sample_frames(34, 32, np.random.default_rng(2))  # T < L - 1: 32 of 1..33
    assert idx.min() >= 1 and len(np.unique(idx)) == 32


def test_seeded_reproducibility():
    a = sample_frames(500, 20, np.random.default_rng([3, 1, 4]))
    b = sample_frames(500, 20, np.random.default_rng([3, 1, 4]))
    c = sample_frames(500, 20, np.random.default_rng([3, 1, 5]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_lengths():
    with pytest.raises(ValueError, match="at least one frame"):
        sample_frames(0, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_frames"):
        sample_frames(10, 0, np.random.default_rng(0))


def test_merged_pairing_draws_from_whole_pool():
    videos = _videos(["ego", "ego", "exo", "exo", "exo"])
    rng = np.random.default_rng(0)
    pairs = [draw_pair(videos, "merged", rng) for _ in range(2000)]
    kinds = {(videos[i].view, videos[j].view) for i, j in pairs}
    assert kinds == {("ego", "ego"), ("ego", "exo"), ("exo", "ego"), ("exo", "exo")}
    assert any(i == j for i, j in pairs)  # the same video twice is possible, as released
    counts = np.bincount([i for i, _ in pairs], minlength=5)
    assert counts.min() > 300  # uniform: about 400 each


def test_ego_exo_pairing_slots():
    videos = _videos(["ego", "exo", "ego", "exo", "exo"])
    rng = np.random.default_rng(0)
    pairs = [draw_pair(videos, "ego_exo", rng) for _ in range(500)]
    assert all(videos[i].is_ego and not videos[j].is_ego for i, j in pairs)
    assert {i for i, _ in pairs} == {0, 2} and {j for _, j in pairs} == {1, 3, 4}


def test_pairing_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="no exo video"):
        draw_pair(_videos(["ego", "ego"]), "ego_exo", rng)
    with pytest.raises(DataError, match="empty"):
        draw_pair([], "merged", rng)
    with pytest.raises(ValueError, match="unknown pairing"):
        draw_pair(_videos(["ego", "exo"]), "paired", rng)
