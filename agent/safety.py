"""The last line before the actuators: clamp actions, keep the tool in its workspace, refuse NaN.

Whatever the model or a remote server says, what reaches the robot is bounded here. Counts of
every intervention are kept so an operator can see how often the model pushed against the limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.tabletop.env import MAX_DPOS, MAX_DROT, WORKSPACE


@dataclass
class SafetyConfig:
    """Defaults are the tabletop robot's own limits; a real robot brings its own numbers."""

    max_translation: float = MAX_DPOS  # m per step
    max_rotation: float = MAX_DROT  # rad per step
    # Tool-centre-point box (m, world): x forward, y left, z up from the table top.
    workspace: tuple[tuple[float, float], ...] = tuple(tuple(map(float, r)) for r in WORKSPACE)


@dataclass
class SafetyFilter:
    config: SafetyConfig = field(default_factory=SafetyConfig)
    clamped: int = 0
    workspace_stops: int = 0
    refused: int = 0

    def __call__(self, action: np.ndarray, tcp_position: np.ndarray | None = None) -> np.ndarray:
        """A safe copy of ``action`` (float32[7]); a non-finite action becomes a stop."""
        a = np.asarray(action, dtype=np.float64).reshape(-1).copy()
        if a.shape != (7,) or not np.all(np.isfinite(a)):
            self.refused += 1
            return np.zeros(7, dtype=np.float32)
        c = self.config
        limits = np.array([c.max_translation] * 3 + [c.max_rotation] * 3)
        clipped = np.clip(a[:6], -limits, limits)
        grip = float(np.clip(a[6], 0.0, 1.0))
        if not np.allclose(clipped, a[:6]) or grip != a[6]:
            self.clamped += 1
        a[:6], a[6] = clipped, grip
        if tcp_position is not None:
            box = np.asarray(c.workspace)
            nxt = np.asarray(tcp_position)[:3] + a[:3]
            outside = (nxt < box[:, 0]) | (nxt > box[:, 1])
            # Only the motion that leaves the box is cancelled: sliding along a wall stays allowed.
            moving_out = outside & (((nxt < box[:, 0]) & (a[:3] < 0)) | ((nxt > box[:, 1]) & (a[:3] > 0)))
            if moving_out.any():
                self.workspace_stops += 1
                a[:3][moving_out] = 0.0
        return a.astype(np.float32)
