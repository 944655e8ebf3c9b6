"""The learning-rate schedule every trainer of the stack uses."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """LR multiplier at ``step``: linear warm-up to 1 over ``warmup`` steps, then a cosine down
    to ``min_ratio`` at step ``total`` (held there after it).

    A multiplier, not a rate, so it plugs into ``torch.optim.lr_scheduler.LambdaLR`` or scales a
    peak rate by hand.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
