"""`embodied bench billiards`'s keyframe score: the event sampler's frames catch the perceived
events that motion sampling leaves between its keyframes."""

from types import SimpleNamespace as NS

import numpy as np

from bench.billiards_bench import keyframe_recall


def test_the_event_sampler_catches_a_late_pot_that_motion_misses():
    n = 150
    times = np.arange(n) / 30
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    for k in range(n):  # fast motion in the first second only
        x = 4 + min(k, 30)
        frames[k, 20:28, x:x + 8] = 255
    truth = [NS(t=0.2, kind="strike"), NS(t=0.5, kind="ball_ball"), NS(t=4.5, kind="pot")]
    seen = [NS(t=0.21, kind="strike"), NS(t=0.52, kind="ball_ball"), NS(t=4.48, kind="pot")]
    out = keyframe_recall(NS(events=truth, times=times), NS(events=seen), frames)
    assert out["events"] == [True, True, True]
    assert out["motion"][2] is False  # the pot
