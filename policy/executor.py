"""Playing action chunks, one action per control step: the one executor every caller uses.

A policy predicts K future actions per call (``BasePolicy.predict_chunk``); a robot executes one
action per step. ``ChunkExecutor`` sits between them, with one queue per robot:

- ``open_loop``: play the first ``replan`` actions of a chunk, one per step, then predict again
  (openpi's replan_steps: K/replan times fewer model calls, yet a quick reaction where grasping
  needs it). ``replan`` is the policy's own setting (``describe()["replan"]``), absent = all K.
- ``ensemble``: predict every step and play the weighted mean of every chunk that covers this step,
  the oldest weighing most (ACT's temporal ensembling, ``w_i = exp(-decay * i)``); the gripper
  follows the newest chunk, since a blend of open and closed is neither.

Several robots share one batched model call per step: ``act`` takes lists and ``indices`` naming
each robot's queue; ``reset(i)`` when robot ``i`` starts a new episode, ``reset()`` for all.

Untrusted inputs are refused every step, queued actions or not (``policy.base.check_observations``:
a NaN state raises ``PolicyError`` and drops those robots' queues). With ``max_age_s`` set (a real
robot's deadline), every chunk remembers when it was requested, and actions of a chunk older than
that are never played: they are dropped and a new chunk is requested, so a dead model or server
cannot keep the robot moving on old predictions. Lock-step evaluation leaves it unset (the sim
does not move while the model thinks).

Used by closed-loop evaluation, DAgger, the agent, the ROS policy node and (through the policy
it wraps) the inference server's clients. Imports numpy only.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Sequence

import numpy as np

from policy.base import BasePolicy, Observation, check_observations
from policy.errors import PolicyError

EXECUTIONS = ("open_loop", "ensemble")


class ChunkExecutor:
    """Turns a ``BasePolicy``'s chunks into one action per robot per step."""

    def __init__(self, policy: BasePolicy, execution: str = "open_loop", ensemble_decay: float = 0.1,
                 max_age_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if execution not in EXECUTIONS:
            raise PolicyError(f"unknown execution {execution!r}; choose from {EXECUTIONS}")
        if max_age_s is not None and not max_age_s > 0:
            raise PolicyError(f"max_age_s must be positive (or None for no limit), got {max_age_s}")
        self.max_age_s = max_age_s
        self.clock = clock
        self.expired = 0  # chunks dropped unplayed (or partly played) because they grew too old
        self.policy = policy
        self.execution = execution
        self.decay = float(ensemble_decay)
        # Read once: the setting belongs to the checkpoint, it does not change while we run.
        self.replan: int | None = policy.describe().get("replan") or None
        self._queues: dict[int, deque[np.ndarray]] = {}  # open_loop: actions still to play
        self._history: dict[int, list[tuple[int, float, np.ndarray]]] = {}  # ensemble: (step, born, chunk)
        self._born: dict[int, float] = {}  # open_loop: when the queued chunk was requested
        self._played: dict[int, float] = {}  # when the chunk of each robot's last action was requested
        self._steps: dict[int, int] = {}

    def reset(self, index: int | None = None) -> None:
        """Forget queued actions of robot ``index``, or of every robot (and reset the policy)."""
        for store in (self._queues, self._history, self._born, self._played, self._steps):
            if index is None:
                store.clear()
            else:
                store.pop(index, None)
        if index is None:
            self.policy.reset()

    def act(self, observations: Sequence[Observation], instructions: Sequence[str],
            indices: Sequence[int] | None = None) -> np.ndarray:
        """The actions to execute now, float32 ``[B, 7]``, for B robots.

        ``indices`` name the robots' queues (default ``0..B-1``); robots whose queue still holds
        actions are not sent to the model, the others share one ``predict_chunk`` call.
        """
        indices = list(range(len(observations))) if indices is None else list(indices)
        if len(indices) != len(observations) or len(set(indices)) != len(indices):
            raise PolicyError(f"need one distinct index per observation, got {indices} for "
                              f"{len(observations)} observations")
        try:
            check_observations(observations)
        except PolicyError:
            for i in indices:  # what was queued for a robot that now reports nonsense is void
                self._queues.pop(i, None)
                self._history.pop(i, None)
            raise
        ensemble = self.execution == "ensemble"
        now = self.clock()
        if self.max_age_s is not None and not ensemble:
            for i in indices:
                if self._queues.get(i) and now - self._born[i] > self.max_age_s:
                    self._queues[i].clear()
                    self.expired += 1
        need = [j for j, i in enumerate(indices) if ensemble or not self._queues.get(i)]
        if need:
            chunks = self.policy.predict_chunk([observations[j] for j in need], [instructions[j] for j in need])
            for j, chunk in zip(need, chunks):
                i = indices[j]
                if ensemble:
                    self._history.setdefault(i, []).append((self._steps.get(i, 0), now, chunk))
                else:
                    self._queues[i] = deque(chunk[:self.replan])
                    self._born[i] = now
        actions = []
        for i in indices:
            step = self._steps.get(i, 0)
            if ensemble:
                actions.append(self._ensemble(i, step, now))
            else:
                actions.append(self._queues[i].popleft())
                self._played[i] = self._born[i]
            self._steps[i] = step + 1
        return np.stack(actions).astype(np.float32)

    def chunk_time(self, index: int = 0) -> float | None:
        """When (``clock()``) the chunk behind robot ``index``'s last action was requested: the age
        of what the robot is doing. None before its first action of the episode."""
        return self._played.get(index)

    def _ensemble(self, i: int, step: int, now: float) -> np.ndarray:
        """Weighted mean of every stored chunk's prediction for ``step`` (oldest weighs most);
        chunks older than ``max_age_s`` no longer vote."""
        old = self.max_age_s
        covering = [(s, t, c) for s, t, c in self._history[i] if step - s < len(c)]
        live = [(s, t, c) for s, t, c in covering if old is None or now - t <= old]
        self.expired += len(covering) - len(live)
        self._history[i] = live
        self._played[i] = min(t for _, t, _ in live)
        preds = np.stack([c[step - s] for s, _, c in live])
        weights = np.exp(-self.decay * np.arange(len(preds)))
        action = (preds * weights[:, None]).sum(0) / weights.sum()
        action[-1] = float(preds[-1, -1] > 0.5)  # the gripper follows the newest chunk: no blends
        return action
