"""Keyframe samplers behind one interface, looked up by name.

``get_sampler("motion")`` returns a ready sampler; an unknown name lists the valid ones.
Every sampler answers ``select(frames_or_features, budget, query=None) -> sorted indices``.
"""

from __future__ import annotations

from typing import Any

from perception.errors import PerceptionError
from perception.sampling.base import Sampler, check_budget, motion_signal
from perception.sampling.events import EventSampler, event_frames
from perception.sampling.motion import MotionSampler
from perception.sampling.query import QueryAdaptiveSampler
from perception.sampling.streaming import StreamingKeyframes, StreamingSampler
from perception.sampling.uniform import UniformSampler

SAMPLERS: dict[str, type[Sampler]] = {
    "uniform": UniformSampler,
    "motion": MotionSampler,
    "query": QueryAdaptiveSampler,
    "streaming": StreamingSampler,
    "events": EventSampler,
}


def get_sampler(name: str, **kwargs: Any) -> Sampler:
    """A sampler by name; keyword arguments go to its dataclass (e.g. ``encoder=`` for query)."""
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise PerceptionError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}") from None
    return cls(**kwargs)


__all__ = ["SAMPLERS", "Sampler", "get_sampler", "check_budget", "motion_signal",
           "UniformSampler", "MotionSampler", "QueryAdaptiveSampler", "StreamingSampler",
           "StreamingKeyframes", "EventSampler", "event_frames"]
