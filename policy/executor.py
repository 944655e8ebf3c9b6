"""Playing action chunks, one action per control step: the one executor every caller uses.

A policy predicts K future actions per call (``BasePolicy.predict_chunk``); a robot executes one
action per step. ``ChunkExecutor`` sits between them, with one queue per robot:

- ``open_loop``: play the first ``replan`` actions of a chunk, one per step, then predict again
  (openpi's replan_steps: K/replan times fewer model calls, yet a quick reaction where grasping
  needs it). ``replan`` is the policy's own setting (``describe()["replan"]``), absent = all K.
- ``ensemble``: predict every step and play the weighted mean of every chunk that covers this step,
  the oldest weighing most (ACT's temporal ensembling, ``w_i = exp(-decay * i)``); the gripper
  follows the newest chunk, since a blend of open and closed is neither.
- ``async`` (a robot that does not wait for the model; real-time chunking): the next chunk is
  requested on a background thread while the current one plays, as soon as the steps still
  covered fall below ``ceil(latency / period) + margin_steps`` (the latency measured on the
  recent calls, so a slower model or server is asked earlier). An answer is aligned by the steps
  played since its request (that stale prefix is dropped: the robot has already done it) and
  cross-faded into the plan being played over their overlap (``blend``, below), so the commanded
  motion has no jump at the boundary. The robot waits (a stall) only when nothing covers the
  step: at an episode's start, or when the latency exceeds what a chunk covers. ``replan``, a
  setting of the synchronous modes, is not used: every fresh action of a chunk may be played.
  ``max_inflight`` > 1 lets requests overlap, for a backend that serves concurrent calls without
  slowing down (a batching server, latency that is network or queueing, not compute); it is what
  keeps a chunk shorter than latency + one step fed. ``RemotePolicy`` serialises its calls on one
  socket, so leave it at 1 there.

  ``blend``: ``crossfade`` (default) weighs the new chunk ``w = k / (m + 1)`` at the k-th of the
  m overlapping steps (and fully after), the plan being played ``1 - w``; ``ensemble`` keeps every
  overlapping chunk's vote with ACT's weights, oldest first; ``none`` switches to the new chunk
  at once; ``prefix`` (for delta or velocity actions, ours: not for absolute joint targets)
  switches too, and steers the first fresh action back toward the path the chunk planned from
  where the robot was observed, by the part of the gap between that chunk's own prefix and the
  commands really played meanwhile (``_prefix_consistent``: RTC's prefix consistency after the
  fact, since a parallel decoder cannot be guided while it predicts).

  Measured on the shipped checkpoint (chunk 4) on PickUp, held-out seeds, lock-step with the
  latency in control steps (``d`` steps late: every command is position ``d`` of the chunk
  observed ``d`` steps earlier; at 200 ms and 10 Hz, d = 3 is all a 4-action chunk leaves),
  success and mean episode length: open loop (replan 3, no latency) 10/10, 14.4 steps; ``none``
  9/10, 20.3 at d=1; 6/10, 41.5 at d=2; 16/20, 29.1 at d=3; ``prefix`` 10/10, 13.7 at d=1;
  10/10, 15.8 at d=2; 20/20, 15.9 at d=3. At d=3 making up the whole gap at once got 7/10, 37.7,
  with jumps 8x larger; steering rotations too, 20/20 but rougher. Mean jump between consecutive
  commands at d=3: prefix 0.021, none 0.020, within the open loop's chunks 0.020. Crossfade (the
  earlier default, still the constructor's: it assumes nothing of the action space) lags: in
  real time at 0 ms added latency it took 29 steps an episode (8/10) against 14 for the open
  loop. ``embodied bench realtime`` (default ``prefix``) re-measures in real time.

  ``committed`` (real-time chunking, for a policy trained for it: ``describe()["committed_steps"]``
  > 0, ``embodied train --init CKPT --committed-steps N``): each request tells the model the
  commands the robot is bound to play until the answer can arrive (the one just played, then the
  plan; as many as the slowest recent call took periods, at most ``committed_steps``), under
  ``policy.base.COMMITTED``; the model predicts the rest of the chunk as their continuation, and
  the answer switches in after them (the steps it was told keep their planned commands). The
  new chunk joins what was played by construction, not by blending afterwards, and sees the
  freshest observation. One request at a time (``max_inflight`` 1): a request made while
  another is on its way would be told commitments that chunk is about to replace. Measured, not
  the default: an 8-action checkpoint fine-tuned for it succeeded 11/25 at 200 ms on validation
  seeds (each chunk plays positions 3-5, and the model continues its own drift), where the
  shipped 4-action checkpoint with ``prefix`` succeeds 23/25 (docs/results.md).

  ``guided`` (for a policy that gives the distribution behind its chunk: ``describe()
  ["distribution"]``, ``BasePolicy.predict_chunk_distribution``; the torch policy, an export, a
  server asked for it): the new chunk switches in, and each step plays, per dimension, the mean of
  the chunk's belief over the bin values under a prior of continuing the command just played
  (``guide_weight`` nats per bin of distance, ``_guided``). Measured on validation seeds at 200 ms
  (PickUp 200000+, 25 episodes, ONNX Runtime): 25/25 in 18.2 steps an episode, boundary jump
  0.0077, where ``prefix`` got 23/25 in 24.7 steps with 0.0246 and synchronous execution at 0 ms
  jumps 0.0101 inside its chunks: the default of ``embodied bench realtime`` and the policy node.
  The most likely bin of a broad belief (a std of 20-30 bins here) hops from one observation to
  the next; its mean does not.

  ``hold_steps`` (default 0): when nothing covers a step but a call for it is on its way, replay
  the last command for up to that many steps instead of stalling (never one whose chunk is older
  than ``max_age_s``); a reply a fraction of a period late then costs no stall.

Several robots share one batched model call per step: ``act`` takes lists and ``indices`` naming
each robot's queue; ``reset(i)`` when robot ``i`` starts a new episode, ``reset()`` for all.

Untrusted inputs are refused every step, queued actions or not (``policy.base.check_observations``:
a NaN state raises ``PolicyError`` and drops those robots' queues). With ``max_age_s`` set (a real
robot's deadline), every chunk remembers when it was requested, and actions of a chunk older than
that are never played: they are dropped and a new chunk is requested, so a dead model or server
cannot keep the robot moving on old predictions (in ``async`` mode a failed background request is
raised at the next ``act`` and voids that robot's plan, as a failed call does in the others).
Lock-step evaluation leaves it unset (the sim does not move while the model thinks).

Used by closed-loop evaluation, DAgger, the agent, the ROS policy node and (through the policy
it wraps) the inference server's clients. Imports numpy only.
"""

from __future__ import annotations

import concurrent.futures
import math
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from policy.base import COMMITTED, BasePolicy, Observation, check_observations
from policy.errors import PolicyError

EXECUTIONS = ("open_loop", "ensemble", "async")
BLENDS = ("crossfade", "ensemble", "none", "prefix", "committed", "guided")
LATENCY_WINDOW = 8  # recent model calls whose slowest sets the async threshold
PLAYED_WINDOW = 64  # async: commands remembered per robot (``prefix`` compares a chunk's prefix with them)
PERIOD_WINDOW = 16  # recent act() intervals whose median is the control period when not given
TRANSLATION = 3  # action[:3] is a translation delta (OpenVLA's layout): what ``prefix`` steers
# ``prefix``: the gap made up per chunk is PREFIX_GAIN / (m + 1) of it. On validation seeds
# (PickUp 200000+, 25 episodes, 200 ms added latency, bench realtime) 1.0 gave 22/25 and a mean
# boundary jump of 0.0343; 0.5 gave 23/25 and 0.0246: half the gain, a third less jump.
PREFIX_GAIN = 0.5
# ``guided``: the prior's weight, nats of log-probability per bin of distance from the command just
# played. On validation seeds (PickUp 200000+, 25 episodes, 200 ms added latency, ONNX Runtime,
# bench realtime): 0 (the plain mean) 25/25, boundary jump 0.0077, 17.8 steps an episode; 0.002
# 25/25, 0.0077, 18.2; 0.005 24/25, 0.0078, 20.2; 0.05 (5 episodes) 0/5, the robot frozen near its
# first command (the belief is broad: a std of 20-30 bins). 0.002 ties the mean on this task and
# still prefers the mode being followed where a belief has two far apart.
GUIDE_WEIGHT = 0.002


def _checked_distribution(actions, log_probs, values) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A policy's (possibly a server's) ``ChunkDistribution`` parts, checked before any of it can
    become a command: ``log_probs`` ``[B, K, A, N]`` matching the actions ``[B, K, A]`` and the
    values ``[A, N]``, no NaN (a zero probability, -inf, is fine), finite values, and every
    dimension with some probability. A PolicyError here fails the call: the robot stops."""
    actions = np.asarray(actions, dtype=np.float32)
    log_probs = np.asarray(log_probs, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if (actions.ndim != 3 or values.ndim != 2 or values.shape[0] != actions.shape[2]
            or log_probs.shape != (*actions.shape, values.shape[1]) or values.shape[1] < 2):
        raise PolicyError(f"the policy's distribution does not fit its actions: actions "
                          f"{list(actions.shape)}, log_probs {list(log_probs.shape)}, values {list(values.shape)}")
    if np.isnan(log_probs).any() or not np.isfinite(values).all() or not np.isfinite(log_probs.max(-1)).all():
        raise PolicyError("the policy's distribution holds NaN, infinite values or a dimension with "
                          "no probability anywhere: refusing to act on it")
    return actions, (log_probs, values)


def belief_mean(actions: np.ndarray, log_probs: np.ndarray, values: np.ndarray,
                previous: np.ndarray | None = None, weight: float = 0.0) -> np.ndarray:
    """The mean of a belief over bin values, per dimension, each value weighed by ``p(value) *
    exp(-weight * |value - previous| / bin step)`` (``weight`` 0 or no ``previous``: the plain
    mean). ``actions`` ``[..., A]`` (the most likely values: kept for the gripper, the last
    dimension, and constant dimensions), ``log_probs`` ``[..., A, N]``, ``values`` ``[A, N]``
    (uniform bins), ``previous`` broadcastable to ``actions``. float64 ``[..., A]``."""
    out = np.array(actions, dtype=np.float64)
    dims = [d for d in range(out.shape[-1] - 1) if values[d, -1] != values[d, 0]]
    if not dims:
        return out
    v = np.asarray(values[dims], dtype=np.float64)  # [D, N]
    score = np.asarray(log_probs, dtype=np.float64)[..., dims, :]
    if previous is not None and weight:
        step = (v[:, -1] - v[:, 0]) / (v.shape[1] - 1)
        gap = np.abs(v - np.asarray(previous, dtype=np.float64)[..., dims, None]) / step[:, None]
        score = score - weight * gap
    w = np.exp(score - score.max(-1, keepdims=True))
    out[..., dims] = (w * v).sum(-1) / w.sum(-1)
    return out


@dataclass
class _Request:
    """One background model call (async mode) for some robots, all observed at the same step."""

    future: concurrent.futures.Future
    robots: list[int]
    starts: list[int]  # per robot: the step its chunk's first action belongs to
    gens: list[int]  # per robot: the episode generation it was asked for
    born: float
    seq: int
    told: list[int] = field(default_factory=list)  # per robot: committed actions it was given


@dataclass
class _Track:
    """One robot's plan in async mode: step -> contributions ``[born, seq, weight, action]``."""

    step: int = 0
    rows: dict[int, list[list]] = field(default_factory=dict)
    newest: int = -1  # seq of the newest chunk merged into the plan
    error: BaseException | None = None  # a failed background call, raised at the next act()
    last: list | None = None  # the last command played, as a contribution ``[born, seq, 1, action]``
    held: int = 0  # steps held in a row (``hold_steps``) since the plan last covered a step
    played: dict[int, np.ndarray] = field(default_factory=dict)  # step -> the command played then


class ChunkExecutor:
    """Turns a ``BasePolicy``'s chunks into one action per robot per step."""

    def __init__(self, policy: BasePolicy, execution: str = "open_loop", ensemble_decay: float = 0.1,
                 max_age_s: float | None = None, clock: Callable[[], float] = time.monotonic,
                 period_s: float | None = None, margin_steps: int = 2, blend: str = "crossfade",
                 max_inflight: int = 1, hold_steps: int = 0, guide_weight: float = GUIDE_WEIGHT) -> None:
        if execution not in EXECUTIONS:
            raise PolicyError(f"unknown execution {execution!r}; choose from {EXECUTIONS}")
        if max_age_s is not None and not max_age_s > 0:
            raise PolicyError(f"max_age_s must be positive (or None for no limit), got {max_age_s}")
        if blend not in BLENDS:
            raise PolicyError(f"unknown blend {blend!r}; choose from {BLENDS}")
        # ``committed``: the policy continues the actions it is told are committed (COMMITTED).
        self.committed_steps = int(policy.describe().get("committed_steps") or 0)
        if blend == "committed" and not self.committed_steps:
            raise PolicyError("the committed blend needs a policy trained for real-time chunking "
                              "(describe()['committed_steps'] > 0: `embodied train --init CKPT "
                              "--committed-steps N`); choose another blend for this one")
        if blend == "committed" and max_inflight != 1:
            raise PolicyError("the committed blend asks one chunk at a time (max_inflight=1): a chunk "
                              "asked while another is on its way would be told the wrong commitments")
        if blend == "guided" and execution == "async" and not policy.describe().get("distribution"):
            raise PolicyError("the guided blend needs a policy that gives the distribution over its "
                              "action bins (describe()['distribution']: a parallel-decoding checkpoint "
                              "with a token head, run here or exported); choose another blend for this one")
        if not guide_weight >= 0:
            raise PolicyError(f"guide_weight must be >= 0, got {guide_weight}")
        if period_s is not None and not 0 < period_s < float("inf"):
            raise PolicyError(f"period_s must be positive (or None to measure it), got {period_s}")
        if margin_steps < 0 or max_inflight < 1 or hold_steps < 0:
            raise PolicyError(f"need margin_steps >= 0, max_inflight >= 1 and hold_steps >= 0, got "
                              f"{margin_steps}, {max_inflight}, {hold_steps}")
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
        self._source: dict[int, int] = {}  # the newest chunk (a call number) behind each robot's last action
        self._steps: dict[int, int] = {}
        self.calls = 0  # model calls made (or, in async mode, started) so far: numbers the chunks
        # async mode
        self.period_s = period_s
        self.margin = int(margin_steps)
        self.blend = blend
        self.max_inflight = int(max_inflight)
        self.hold_steps = int(hold_steps)
        self.guide_weight = float(guide_weight)
        self._values: np.ndarray | None = None  # guided: ChunkDistribution.values, [A, N]
        self.holds = 0  # async steps that replayed the last command while the late chunk was on its way
        self.stale = 0  # async answers with nothing left to play once aligned (or overtaken)
        self.waits = 0  # async steps that had to wait for the model (stalls)
        self._tracks: dict[int, _Track] = {}
        self._gens: dict[int, int] = {}
        self._inflight: list[_Request] = []
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._ticks: deque[float] = deque(maxlen=PERIOD_WINDOW)
        self._last_tick: float | None = None
        self._chunk_len: int | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def reset(self, index: int | None = None) -> None:
        """Forget queued actions of robot ``index``, or of every robot (and reset the policy).
        Async requests still in flight for them are ignored when they return."""
        everyone = set(self._gens) | set(self._tracks) | {i for r in self._inflight for i in r.robots}
        for store in (self._queues, self._history, self._born, self._played, self._steps, self._tracks,
                      self._source):
            if index is None:
                store.clear()
            else:
                store.pop(index, None)
        for i in (everyone if index is None else [index]):
            self._gens[i] = self._gens.get(i, 0) + 1
        if index is None:
            self._last_tick = None
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
                self._void(i)
            raise
        if self.execution == "async":
            return self._act_async(observations, instructions, indices)
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
            self.calls += 1
            for j, chunk in zip(need, chunks):
                i = indices[j]
                if ensemble:
                    self._history.setdefault(i, []).append((self._steps.get(i, 0), now, chunk))
                else:
                    self._queues[i] = deque(chunk[:self.replan])
                    self._born[i] = now
                    self._source[i] = self.calls
        actions = []
        for i in indices:
            step = self._steps.get(i, 0)
            if ensemble:
                actions.append(self._ensemble(i, step, now))
                self._source[i] = self.calls
            else:
                actions.append(self._queues[i].popleft())
                self._played[i] = self._born[i]
            self._steps[i] = step + 1
        return np.stack(actions).astype(np.float32)

    def chunk_time(self, index: int = 0) -> float | None:
        """When (``clock()``) the chunk behind robot ``index``'s last action was requested: the age
        of what the robot is doing (ensemble: the oldest chunk voting; async: the newest chunk, the
        others fading out). None before its first action."""
        return self._played.get(index)

    def chunk_id(self, index: int = 0) -> int | None:
        """A number that changes exactly when robot ``index``'s last action came from a newer chunk
        than the one before (the newest chunk in a blend): where the chunk boundaries are."""
        return self._source.get(index)

    @property
    def threshold_steps(self) -> int | None:
        """Async: request the next chunk when fewer steps than this are still covered;
        ``ceil(latency / period) + margin_steps``. None until a latency and a period are known
        (until then a request goes out whenever one may)."""
        period = self._period()
        if not self._latencies or period is None:
            return None
        return math.ceil(max(self._latencies) / period - 1e-9) + self.margin

    def in_flight(self) -> int:
        """Async model calls not yet returned (including ones a reset abandoned)."""
        return sum(not r.future.done() for r in self._inflight)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every async call in flight has returned (tests, clean shutdown)."""
        done, pending = concurrent.futures.wait([r.future for r in self._inflight], timeout=timeout)
        return not pending

    def close(self) -> None:
        """Stop the async worker threads (calls in flight finish, their answers are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- ensemble ------------------------------------------------------------------------------
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

    # -- async ---------------------------------------------------------------------------------
    def _act_async(self, observations: Sequence[Observation], instructions: Sequence[str],
                   indices: list[int]) -> np.ndarray:
        now = self.clock()
        if self._last_tick is not None and now > self._last_tick:
            self._ticks.append(now - self._last_tick)
        self._last_tick = now
        self._harvest()
        self._raise_errors(indices)
        for i in indices:
            self._expire(self._tracks.setdefault(i, _Track()), now)
        # Robots with nothing to play now hold their last command (``hold_steps``) or wait: for
        # their call in flight, else for a new one.
        waited = False
        while True:
            bare = [j for j, i in enumerate(indices) if self._tracks[i].step not in self._tracks[i].rows]
            if not bare:
                break
            unasked = [j for j in bare if not any(self._asked(r, indices[j]) is not None for r in self._inflight)]
            if unasked:
                self._request(observations, instructions, indices, unasked)
            bare = [j for j in bare if not self._hold(indices[j], now)]
            if not bare:
                break
            waited = True
            waiting = [r.future for r in self._inflight
                       if any(self._asked(r, indices[j]) is not None for j in bare)]
            concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
            # Time passed while waiting: ages (max_age_s) and what is covered count from now on.
            now = self.clock()
            self._harvest()
            self._raise_errors(indices)
            for i in indices:
                self._expire(self._tracks[i], now)
        self.waits += waited
        actions = []
        for i in indices:
            track = self._tracks[i]
            row = track.rows.pop(track.step)
            actions.append(self._blended(i, row, track.played.get(track.step - 1)))
            if track.last is None or row[0] is not track.last:  # the plan covered the step: a hold may start afresh
                track.last, track.held = [self._played[i], self._source[i], 1.0, actions[-1]], 0
            track.played[track.step] = actions[-1]
            track.played.pop(track.step - PLAYED_WINDOW, None)
            track.step += 1
        # Ask for the next chunk where the plan (with what is on its way) runs short.
        threshold = self.threshold_steps
        ask = [j for j, i in enumerate(indices) if threshold is None or self._covered(i, now) < threshold]
        if ask and self.in_flight() < self.max_inflight:
            self._request(observations, instructions, indices, ask, step_offset=1)
        return np.stack(actions).astype(np.float32)

    def _request(self, observations, instructions, indices: list[int], which: list[int],
                 step_offset: int = 0) -> _Request:
        """Start one background call for robots ``indices[which]``. Its chunk's first action
        belongs to the step being decided now (``step - step_offset`` once it was played)."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.max_inflight,
                                                               thread_name_prefix="chunk-executor")
        # Copies: the caller may refill its image buffers (a renderer, a ROS callback) while the
        # model reads them on the worker thread.
        obs = [{k: np.array(v, copy=True) for k, v in observations[j].items()} for j in which]
        texts = [instructions[j] for j in which]
        robots = [indices[j] for j in which]
        told = [0] * len(robots)
        if self.blend == "committed" and step_offset:
            for b, (o, i) in enumerate(zip(obs, robots)):
                given = self._commitments(self._tracks[i], self._tracks[i].step - step_offset)
                if len(given):
                    o[COMMITTED], told[b] = given, len(given)
        self.calls += 1
        born = self.clock()
        request = _Request(self._pool.submit(self._call, obs, texts), robots,
                           [self._tracks[i].step - step_offset for i in robots],
                           [self._gens.get(i, 0) for i in robots], born, self.calls, told)
        self._inflight.append(request)
        return request

    def _commitments(self, track: _Track, start: int) -> np.ndarray:
        """``committed``: the commands the robot is bound to play from step ``start`` (the one just
        played, then the plan) until an answer asked now can arrive (the slowest recent latency in
        periods), at most the policy's ``committed_steps``: float32 ``[n, A]``."""
        period = self._period()
        late = math.ceil(max(self._latencies) / period - 1e-9) if self._latencies and period else \
            self.committed_steps
        n = min(self.committed_steps, max(late, 1))
        given = []
        for s in range(start, start + n):
            if s in track.played:
                given.append(track.played[s])
            elif track.rows.get(s):
                given.append(self._mix(track.rows[s]))
            else:
                break
        return np.array(given, dtype=np.float32).reshape(len(given), -1)

    def _call(self, observations, instructions) -> tuple[np.ndarray, np.ndarray | None, float]:
        """Worker thread: the model call (the chunk, and for ``guided`` its log-probabilities),
        and when it returned (for the latency estimate)."""
        if self.blend == "guided":
            dist = self.policy.predict_chunk_distribution(observations, instructions)
            return (*_checked_distribution(dist.actions, dist.log_probs, dist.values), self.clock())
        chunks = np.asarray(self.policy.predict_chunk(observations, instructions), dtype=np.float32)
        return chunks, None, self.clock()

    def _harvest(self) -> None:
        """Merge every returned call into its robots' plans (or note its failure)."""
        still = []
        for request in self._inflight:
            if not request.future.done():
                still.append(request)
                continue
            try:
                chunks, belief, finished = request.future.result()
            except Exception as exc:  # noqa: BLE001 - the robot's next act() raises it
                chunks, belief, error = None, None, exc
            else:
                error = None
                log_probs, values = belief if belief is not None else (None, None)
                if values is not None:
                    self._values = values
                self._latencies.append(max(0.0, finished - request.born))
                self._chunk_len = chunks.shape[1]
            for b, (i, start, gen) in enumerate(zip(request.robots, request.starts, request.gens)):
                track = self._tracks.get(i)
                if track is None or gen != self._gens.get(i, 0):
                    continue  # asked before a reset: another episode's answer
                if error is not None:
                    track.rows.clear()
                    track.error = error
                else:
                    self._merge(track, chunks[b], start, request.born, request.seq, request.told[b],
                                None if log_probs is None else log_probs[b])
        self._inflight = still

    def _raise_errors(self, indices: list[int]) -> None:
        for i in indices:
            track = self._tracks.get(i)
            if track is not None and track.error is not None:
                error, track.error = track.error, None
                raise error

    def _merge(self, track: _Track, chunk: np.ndarray, start: int, born: float, seq: int,
               told: int = 0, log_probs: np.ndarray | None = None) -> None:
        """Align a returned chunk (drop the steps already played) and blend it into the plan.
        ``told``: how many of its first steps the model was given as committed (``committed``);
        ``log_probs``: its distribution ``[K, A, N]`` (``guided``), kept with each step's action."""
        first = max(start, track.step)
        steps = list(range(first, start + len(chunk)))
        if seq < track.newest or not steps:
            self.stale += 1  # overtaken by a newer answer, or too late for every one of its steps
            return
        track.newest = seq
        if self.blend == "prefix":
            chunk = self._prefix_consistent(track, chunk, start, first)
        overlap = sum(1 for s in steps if track.rows.get(s))
        for k, s in enumerate(steps, start=1):
            row = track.rows.setdefault(s, [])
            action = chunk[s - start]
            if self.blend == "committed" and s < start + told and row:
                continue  # the model was told this step's command: the robot plays it as planned
            if self.blend == "guided":
                row[:] = [[born, seq, 1.0, action, log_probs[s - start]]]
            elif not row or self.blend in ("none", "prefix", "committed"):
                row[:] = [[born, seq, 1.0, action]]
            elif self.blend == "ensemble":
                row.append([born, seq, math.exp(-self.decay * len(row)), action])
            else:  # crossfade: the new chunk's weight ramps up over the overlap
                w = k / (overlap + 1) if k <= overlap else 1.0
                total = sum(c[2] for c in row)
                for c in row:
                    c[2] *= 1.0 - w
                row.append([born, seq, w * total if w < 1.0 else 1.0, action])
                row[:] = [c for c in row if c[2] > 0.0]

    @staticmethod
    def _prefix_consistent(track: _Track, chunk: np.ndarray, start: int, first: int) -> np.ndarray:
        """``prefix``: the chunk planned its first ``m = first - start`` actions for steps the robot
        has already played with other commands. Its translation deltas are a path from where the
        robot was when observed; the first fresh action is shifted by ``(what its prefix would
        have moved - what the played commands moved) * PREFIX_GAIN / (m + 1)``, so the robot steers
        back toward that path instead of replaying the chunk's deltas from a point it never
        reached. Only part of the gap is made up per step (every later chunk measures what is
        left: a feedback loop with gain ``PREFIX_GAIN / (m + 1)``): all of it at once is a jump,
        and with a 3-step delay it overshoots. Rotation deltas (which do not add up) and the
        gripper are left as predicted.
        (RTC's prefix consistency, after the fact: a parallel decoder cannot be guided.)"""
        m = first - start
        if m <= 0 or m >= len(chunk) or any(s not in track.played for s in range(start, first)):
            return chunk
        chunk = chunk.copy()
        planned = chunk[:m, :TRANSLATION].astype(np.float64).sum(0)
        done = np.sum([track.played[s][:TRANSLATION] for s in range(start, first)], axis=0)
        chunk[m, :TRANSLATION] += (PREFIX_GAIN * (planned - done) / (m + 1)).astype(chunk.dtype)
        return chunk

    def _hold(self, i: int, now: float) -> bool:
        """Nothing covers robot ``i``'s step: replay its last command (``hold_steps``), if a call
        for it is on its way and that command's chunk is young enough (``max_age_s``). A robot
        whose delta commands keep their last value moves on as it was moving, instead of
        stopping for a reply that is a fraction of a period late."""
        track = self._tracks[i]
        if track.last is None or track.held >= self.hold_steps:
            return False
        if self.max_age_s is not None and now - track.last[0] > self.max_age_s:
            return False
        if not any(self._asked(r, i) is not None and not r.future.done() for r in self._inflight):
            return False
        track.rows[track.step] = [track.last]
        track.held += 1
        self.holds += 1
        return True

    def _expire(self, track: _Track, now: float) -> None:
        """Drop steps already played and, past ``max_age_s``, the votes of chunks too old."""
        for s in [s for s in track.rows if s < track.step]:
            del track.rows[s]
        if self.max_age_s is None:
            return
        old = {c[1] for row in track.rows.values() for c in row if now - c[0] > self.max_age_s}
        if not old:
            return
        self.expired += len(old)
        for s in list(track.rows):
            track.rows[s] = [c for c in track.rows[s] if c[1] not in old]
            if not track.rows[s]:
                del track.rows[s]

    @staticmethod
    def _mix(row: list[list]) -> np.ndarray:
        """The command a plan row stands for: its contributions' weighted mean, the gripper the
        newest chunk's (a blend of open and closed is neither)."""
        weights = np.array([c[2] for c in row], dtype=np.float64)
        preds = np.stack([c[3] for c in row]).astype(np.float64)
        action = (preds * weights[:, None]).sum(0) / weights.sum()
        action[-1] = max(row, key=lambda c: c[1])[3][-1]
        return action

    def _blended(self, i: int, row: list[list], previous: np.ndarray | None = None) -> np.ndarray:
        newest = max(row, key=lambda c: c[1])
        if len(newest) > 4:  # guided: a distribution came with the action
            action = self._guided(newest[3], newest[4], previous)
        else:
            action = self._mix(row)
        self._source[i] = newest[1]
        # The age of what the robot does is its newest chunk's: older ones only fade out (and
        # never past max_age_s), and a dead model still ages it until the caller stops.
        self._played[i] = newest[0]
        return action

    def _guided(self, action: np.ndarray, log_probs: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """``guided``: per dimension (the gripper and constant ones aside), the mean of the
        chunk's distribution over the bin values, each weighed by ``p(value) * exp(-guide_weight *
        |value - previous| / bin step)``: the model's belief under a prior of continuous motion
        around the command just played. The most likely bin of a broad distribution hops between
        its flat top's bins from one observation to the next (a new chunk every step, in async
        mode); the mean does not, and the prior, where the belief has several modes, keeps the
        one the robot is following instead of averaging them into a motion neither means. (RTC
        guides a diffusion policy's sampling toward the plan being played; this is the idea for a
        decoder that scores bins: it cannot be steered while it predicts, its answer can be read
        with the plan in mind.) ``guide_weight`` 0, or no command played yet, is the plain mean."""
        return belief_mean(action, log_probs, self._values, previous, self.guide_weight)

    def _covered(self, i: int, now: float) -> int:
        """Steps after the current one that the plan, and the calls on their way, will cover
        with actions still young enough to play (``max_age_s``) when their step comes."""
        track = self._tracks[i]
        period = self._period()

        def young(born: float) -> float:
            """How many of the coming steps (the next is one period away) a chunk born then may
            still play before it passes ``max_age_s``."""
            if self.max_age_s is None or period is None:
                return float("inf")
            return math.floor((born + self.max_age_s - now) / period + 1e-9)

        n = 0
        while track.rows.get(track.step + n) and any(n < young(c[0]) for c in track.rows[track.step + n]):
            n += 1
        for r in self._inflight:
            start = self._asked(r, i)
            if start is not None and self._chunk_len:
                n = max(n, min(start + self._chunk_len - track.step, young(r.born)))
        return n

    def _asked(self, request: _Request, i: int) -> int | None:
        """The step robot ``i``'s chunk starts at in ``request``, if the call is for its episode."""
        if i not in request.robots:
            return None
        b = request.robots.index(i)
        return request.starts[b] if request.gens[b] == self._gens.get(i, 0) else None

    def _period(self) -> float | None:
        if self.period_s is not None:
            return self.period_s
        return statistics.median(self._ticks) if self._ticks else None

    def _void(self, i: int) -> None:
        """A robot's plan is void (it reported nonsense): forget it and its calls in flight."""
        if i in self._tracks:
            self._tracks.pop(i)
            self._gens[i] = self._gens.get(i, 0) + 1
