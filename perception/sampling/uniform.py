"""The baseline every other sampler must beat: equally spaced frames, centred in their slots."""

from __future__ import annotations

from typing import Any

import numpy as np

from perception.sampling.base import Sampler, check_budget


class UniformSampler(Sampler):
    name = "uniform"

    def select(self, frames_or_features: Any, budget: int, query: Any = None) -> np.ndarray:
        n = len(frames_or_features)
        budget = check_budget(n, budget)
        # centre of each of `budget` equal slots: never both ends, never a duplicate
        return np.floor((np.arange(budget) + 0.5) * n / budget).astype(np.int64)
