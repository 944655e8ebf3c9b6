"""Keyframes around perceived events: the tracker's strikes, contacts and pots are kept.

A contact lasts a few milliseconds and a pot one frame, so a sampler that only sees motion can
put all its frames in the busy second after the strike and miss the pot seconds later (issue 25:
the demo's eight motion keyframes all lay within 1.2 s of the strike; the pot at 3.97 s was never
seen). Here the perceived events choose frames first: the clip's first and last frame (always
kept, so a question about the start or the end has its frame), then the frame nearest each event
in the order given (the caller puts the most important first), then the rest of the budget from
another sampler (motion by default).

Event positions are frame indices; :func:`event_frames` turns event times into them for a clip
with known frame times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from perception.sampling.base import Sampler, check_budget, unique_sorted
from perception.sampling.motion import MotionSampler


def event_frames(event_times: Sequence[float], frame_times: Sequence[float]) -> list[int]:
    """The index of the frame nearest each event time (events outside the clip clip to its ends)."""
    t = np.asarray(frame_times, np.float64)
    if t.size == 0:
        return []
    return [int(np.argmin(np.abs(t - float(e)))) for e in event_times]


@dataclass
class EventSampler(Sampler):
    events: Sequence[int] = ()  # frame indices of perceived events, most important first
    fill: Sampler = field(default_factory=MotionSampler)  # the rest of the budget

    name = "events"

    def select(self, frames_or_features: Any, budget: int, query: Any = None) -> np.ndarray:
        n = len(frames_or_features)
        budget = check_budget(n, budget)
        chosen: list[int] = []
        for i in ([0, n - 1] if budget >= 2 else []) + [min(max(int(e), 0), n - 1) for e in self.events]:
            if len(chosen) == budget:
                break
            if i not in chosen:
                chosen.append(i)
        if len(chosen) < budget:
            for i in self.fill.select(frames_or_features, budget, query):
                if len(chosen) == budget:
                    break
                if int(i) not in chosen:
                    chosen.append(int(i))
        if len(chosen) < budget:  # the fill's picks were all taken: the nearest free frames
            chosen += chosen[: budget - len(chosen)]
        return unique_sorted(np.array(chosen), n)
