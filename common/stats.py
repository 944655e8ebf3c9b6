"""Confidence intervals for the success rates and mean measurements every evaluation and benchmark reports."""

from __future__ import annotations

import math
from typing import Sequence


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of ``successes / n``: sound at 0 % and 100 %, unlike p ± 2 se."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def cluster_bootstrap_mean(groups: Sequence[Sequence[float]], reps: int = 2000, seed: int = 0,
                           level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of every value pooled over ``groups``, resampling
    whole groups (episodes) with replacement: the values inside an episode are not independent
    (one policy, one scene), so resampling them one by one, as a plain bootstrap would, gives an
    interval too narrow. Hand-written because the project has no scipy (numpy only, ten lines).
    None when no group has a value."""
    import numpy as np

    kept = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not kept:
        return None
    sums = np.array([g.sum() for g in kept])
    counts = np.array([len(g) for g in kept], dtype=np.float64)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(kept), size=(reps, len(kept)))
    means = sums[pick].sum(1) / counts[pick].sum(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))
