"""Staleness bookkeeping for the robot's safety stop: no ROS here, so it is tested on its own."""

from __future__ import annotations

import time
from typing import Callable


class Watchdog:
    """Remembers when each input was last fresh; anything older than the deadline is stale.

    Inputs that have never been seen count as stale, so a robot whose camera never came up
    does not move.
    """

    def __init__(self, deadline_s: float, inputs: tuple[str, ...],
                 clock: Callable[[], float] = time.monotonic) -> None:
        if deadline_s <= 0:
            raise ValueError("the watchdog deadline must be positive")
        self.deadline_s = deadline_s
        self.clock = clock
        self._seen: dict[str, float | None] = {name: None for name in inputs}

    def feed(self, name: str, at: float | None = None) -> None:
        self._seen[name] = self.clock() if at is None else at

    def stale(self) -> list[str]:
        now = self.clock()
        return [n for n, t in self._seen.items() if t is None or now - t > self.deadline_s]

    def ok(self) -> bool:
        return not self.stale()
