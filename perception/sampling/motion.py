"""Motion-guided sampling (MGSampler, Zhi et al. 2021): more frames where more moves.

Per-frame motion comes from downscaled grey frame differences (or feature differences); its
cumulative distribution is split into ``budget`` segments of equal motion, and each segment gives
one frame: the centre for evaluation, a random one for training. A floor on the motion keeps a
still video sampling uniformly rather than piling frames onto sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception.sampling.base import (THUMB_WIDTH, Sampler, check_budget, inverse_cdf_pick,
                                      motion_signal)


@dataclass
class MotionSampler(Sampler):
    random: bool = False  # False: segment centres (evaluation); True: random in segment (training)
    floor: float = 0.05  # share of the mean motion added to every frame: still scenes stay covered
    smooth: int = 3  # box filter over frames: one noisy difference should not grab a segment
    width: int = THUMB_WIDTH  # thumbnail width for the frame differences
    seed: int = 0  # for random=True; fixed so a run is repeatable

    name = "motion"

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def weights(self, frames_or_features: Any) -> np.ndarray:
        m = motion_signal(frames_or_features, self.width).astype(np.float64)
        if self.smooth > 1 and len(m) > self.smooth:
            m = np.convolve(m, np.ones(self.smooth) / self.smooth, mode="same")
        return m + self.floor * (m.mean() + 1e-6)

    def select(self, frames_or_features: Any, budget: int, query: Any = None) -> np.ndarray:
        budget = check_budget(len(frames_or_features), budget)
        w = self.weights(frames_or_features)
        return inverse_cdf_pick(w, budget, self._rng if self.random else None)
