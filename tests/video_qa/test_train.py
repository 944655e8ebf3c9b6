"""How training draws its clips."""

import numpy as np
import pytest

from video_qa.errors import VideoQAError
from video_qa.configuration_train import TrainQAConfig
from video_qa.train import clip_weights


def test_billiards_share_sets_how_often_each_world_is_drawn():
    clips = ["billiards_0000", "billiards_0001"] + [f"tabletop_{i:04d}" for i in range(8)]
    uniform = clip_weights(clips, 0.0)
    np.testing.assert_allclose(uniform, np.full(10, 0.1))
    w = clip_weights(clips, 0.5)
    assert w.sum() == pytest.approx(1.0)
    assert w[:2].sum() == pytest.approx(0.5) and np.ptp(w[2:]) == 0  # uniform within a world
    draws = np.random.default_rng(0).choice(10, size=20_000, p=w)
    assert (draws < 2).mean() == pytest.approx(0.5, abs=0.02)
    np.testing.assert_allclose(clip_weights(clips[2:], 0.5), np.full(8, 1 / 8))  # one world only


def test_billiards_share_must_be_a_fraction():
    with pytest.raises(VideoQAError, match="billiards_share"):
        TrainQAConfig(billiards_share=1.0)
