"""Why a closed-loop episode failed, read off the simulator's ground truth.

A success rate says how often; a researcher choosing what to fix next needs to know how the
misses happen: a policy that goes for the wrong object needs better grounding, one that reaches
the target and fumbles it needs better grasping data. The classes are coarse on purpose, decided
from object and gripper positions alone, so they mean the same thing for every checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MOVED = 0.02  # m: an object displaced this far was handled (lifted or pushed)
NEAR = 0.03  # m: the TCP came this close (horizontally) to an object

# failure classes, in the order they are tested
TOOK_DISTRACTOR = "took_a_distractor"  # another object was moved or approached instead
LOST_TARGET = "target_moved_not_done"  # the target was handled but the task not finished
MISSED_TARGET = "reached_target_missed"  # the TCP got to the target without moving it enough
NEVER_REACHED = "never_reached_target"
FAILURE_CLASSES = (TOOK_DISTRACTOR, LOST_TARGET, MISSED_TARGET, NEVER_REACHED)


class EpisodeWatcher:
    """Follows one tabletop episode through ``ground_truth()`` snapshots; ``verdict`` at the end."""

    def __init__(self, env: Any) -> None:
        self.env = getattr(env, "unwrapped", env)
        gt = self.env.ground_truth()
        self._start = {o["id"]: np.asarray(o["position"]) for o in gt["objects"]}
        self._target = gt["target"]
        self._moved = {k: 0.0 for k in self._start}
        self._closest = {k: np.inf for k in self._start}
        self._note(gt)

    def _note(self, gt: dict) -> None:
        tcp = np.asarray(gt["tcp"]["position"])
        for o in gt["objects"]:
            pos = np.asarray(o["position"])
            self._moved[o["id"]] = max(self._moved[o["id"]],
                                       float(np.linalg.norm(pos - self._start[o["id"]])))
            self._closest[o["id"]] = min(self._closest[o["id"]],
                                         float(np.linalg.norm((tcp - pos)[:2])))

    def step(self) -> None:
        self._note(self.env.ground_truth())

    def verdict(self, success: bool) -> str:
        """"success" or one of :data:`FAILURE_CLASSES`."""
        if success:
            return "success"
        others = [k for k in self._start if k != self._target]
        target_near = self._closest[self._target] < NEAR
        if any(self._moved[k] >= MOVED for k in others) or (
                not target_near and any(self._closest[k] < NEAR for k in others)):
            return TOOK_DISTRACTOR
        if self._moved[self._target] >= MOVED:
            return LOST_TARGET
        return MISSED_TARGET if target_near else NEVER_REACHED


def tally(verdicts: list[str]) -> dict[str, int]:
    """Failure class -> count (every class listed, zeros included, so runs compare by key)."""
    return {c: sum(v == c for v in verdicts) for c in FAILURE_CLASSES}
