"""Keyframes around perceived events (issue 25): first and last frame kept, the frame nearest each
event kept, the rest from motion; a late event that motion sampling misses is caught."""

import numpy as np
import pytest

from perception.errors import PerceptionError
from perception.sampling import EventSampler, MotionSampler, event_frames, get_sampler


def _clip(n=150, busy=(10, 40)):
    """A dark clip with a bright square moving fast early on (a break) and still afterwards."""
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    for k in range(n):
        x = 4 + min(max(k, busy[0]), busy[1]) - busy[0]
        frames[k, 20:28, x:x + 8] = 255
    return frames


def test_event_frames_maps_times_to_the_nearest_frame():
    times = np.arange(10) / 30
    assert event_frames([0.0, 0.1, 0.16, 5.0, -1.0], times) == [0, 3, 5, 9, 0]
    assert event_frames([1.0], []) == []


@pytest.mark.parametrize("budget", [2, 5, 8, 16])
def test_first_last_and_events_are_kept_and_the_budget_is_filled(budget):
    frames = _clip()
    events = [12, 90, 140]
    picked = EventSampler(events=events).select(frames, budget)
    assert len(picked) == budget and len(set(picked.tolist())) == budget
    assert list(picked) == sorted(picked) and {0, 149} <= set(picked.tolist())
    assert set(events[: budget - 2]) <= set(picked.tolist())


def test_a_late_event_that_motion_sampling_misses_is_caught():
    frames = _clip()
    pot = 130  # a ball drops long after the busy stretch: one frame, barely any motion overall
    motion = MotionSampler().select(frames, 8)
    assert min(abs(motion - pot)) > 5  # the motion frames all sit in the busy stretch
    picked = get_sampler("events", events=[pot]).select(frames, 8)
    assert pot in picked.tolist()


def test_budget_errors_are_the_samplers_own():
    with pytest.raises(PerceptionError, match="larger than the stream"):
        EventSampler(events=[1]).select(_clip(5), 6)
    assert EventSampler(events=[3]).select(_clip(5), 1).tolist() == [3]
