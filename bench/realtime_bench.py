"""`embodied bench realtime`: closed-loop episodes in real time, with a slow model, sync vs async.

The shipped policy drives the sim through the one executor (``policy.executor.ChunkExecutor``)
while the control loop ticks at a nominal period (the sim's 10 Hz): it sleeps until the next tick,
observes, asks the executor for an action and steps the sim with it. A tick that waits for the
model is late, and like a fixed-rate ROS timer the loop then skips the ticks it missed. The model's
latency is made artificially larger (``DelayedPolicy`` sleeps before each call: 0, 100, 200, 300 ms
on top of the model's own ~15 ms).

Modes: ``sync`` is the checkpoint's open loop (``replan`` actions per chunk, then a blocking
call: every chunk boundary stalls the loop by the latency; the sim does not move meanwhile, so its
success is lock-step evaluation's). ``async`` is the executor's async mode (the next chunk is
computed while the current one plays, aligned by the steps played meanwhile, joined with the
``guided`` blend, ``prefix`` for a policy without a distribution; ``max_inflight`` = the chunk
length, since sleeping calls overlap freely; a chunk up to ``--hold-steps`` late is bridged by
holding the last command); ``async-prefix``, ``async-crossfade``, ``async-ensemble`` and
``async-none`` are the other blends and ``async-serial`` async with one call at a time, each at
the ``--compare-ms`` latency only by default; ``sync-mean`` is ``sync`` playing the belief's mean
instead of the most likely bin (what ``guided`` plays: the like-for-like within-chunk
reference); ``async-committed`` is real-time
chunking for a checkpoint trained for it (``committed_steps``: the model is told the commands
the robot is bound to play while it thinks and continues them; one call at a time). The backend is ONNX Runtime by default:
its call releases the GIL, so the model thinking on its thread does not make the loop late.

Per mode and added latency (JSON: ``METRIC -> mode -> latency in ms``, and every number per cell in
``cells``):

- ``success_rate`` (and ``ci95``, Wilson) over the same held-out seeds in every cell;
- ``period_ms_p50`` / ``period_ms_p99``: the interval between consecutive commands of an episode,
  against the nominal period (``jitter_p99`` = |p99 - period| / period); ``act_ms_p99``: the time
  spent in the executor per tick (its share: the rest is the sim and the machine's load);
- ``boundary_jump`` / ``within_chunk_jump``: mean norm of the change between consecutive commands
  (translation and rotation, not the gripper, whose steps are meant), where the newest chunk behind
  the command changed (a boundary) against where it did not; ``*_ci95``: their 95 % intervals,
  resampling whole episodes (seeds differ more than steps do);
- ``reaction_latency_ms``: mean time from an observation the model was given to the first command
  computed from it; ``event_reaction_ms``: mean time from any tick's observation to the first
  command computed from that observation or a later one (how late the robot reacts to a change);
- ``model_calls`` per episode, ``waits`` (ticks that waited for the model), chunks that came back
  too late for any of their steps (``stale``), ``mean_episode_length``.

Ratios (printed) are against ``sync`` at 0 ms in the same run; ``done_when`` checks issue 27's
realtime criteria at 200 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any, Sequence

import numpy as np

from policy.base import BasePolicy, ChunkDistribution, Observation

DESCRIPTION = "closed-loop sim in real time with a slow model: sync vs async chunk execution"
# The blend of plain ``async`` (measured: see policy.executor): guided for a policy that gives the
# distribution behind its actions, prefix for one that does not (an l1 head).
DEFAULT_BLEND, FALLBACK_BLEND = "guided", "prefix"
MODES = ("sync", "async", "async-crossfade", "async-ensemble", "async-none", "async-prefix", "async-serial",
         "async-committed", "async-guided", "sync-mean")


class DelayedPolicy(BasePolicy):
    """A policy whose every call takes ``delay_s`` longer (a slow model or server). Thread-safe as
    long as the wrapped one is: it only sleeps."""

    def __init__(self, policy: BasePolicy, delay_s: float) -> None:
        self.policy, self.delay_s = policy, float(delay_s)

    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.policy.predict_chunk(observations, instructions)

    def predict_chunk_distribution(self, observations: Sequence[Observation],
                                   instructions: Sequence[str]) -> ChunkDistribution:
        time.sleep(self.delay_s)
        return self.policy.predict_chunk_distribution(observations, instructions)

    def reset(self) -> None:
        self.policy.reset()

    def describe(self) -> dict[str, Any]:
        return self.policy.describe()


class MeanDecoded(BasePolicy):
    """A policy that plays the mean of its belief over the bins instead of the most likely bin
    (``policy.executor.belief_mean``, no prior): mode ``sync-mean``, the within-chunk reference
    with the decoding the ``guided`` blend plays."""

    def __init__(self, policy: BasePolicy) -> None:
        self.policy = policy

    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        from policy.executor import belief_mean

        dist = self.policy.predict_chunk_distribution(observations, instructions)
        return belief_mean(dist.actions, dist.log_probs, dist.values).astype(np.float32)

    def reset(self) -> None:
        self.policy.reset()

    def describe(self) -> dict[str, Any]:
        return self.policy.describe()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="checkpoints/vla-default", help="policy checkpoint")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="onnx",
                        help="policy backend (default: %(default)s, fp32: ONNX Runtime releases the GIL for "
                             "the whole call, so the background model does not delay the control loop; "
                             "torch's Python-level forward does, by tens of ms on this 2-core CPU)")
    parser.add_argument("--task", default="PickUp", help="tabletop task (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=0,
                        help="episodes per cell, the same seeds in each (default 25, quick 2)")
    parser.add_argument("--seed", type=int, default=100_000, help="first held-out seed")
    parser.add_argument("--latencies-ms", default=None,
                        help="added model latencies, comma-separated (default 0,100,200,300; quick 0,200)")
    parser.add_argument("--period-ms", type=float, default=100.0,
                        help="nominal control period (default: the sim's 10 Hz)")
    parser.add_argument("--modes", default="sync,async",
                        help=f"modes run at every latency, from {', '.join(MODES)} (default: %(default)s)")
    parser.add_argument("--compare", default="sync-mean,async-prefix,async-crossfade,async-ensemble,async-none",
                        help="modes run at --compare-ms only, to choose the blend (default: %(default)s)")
    parser.add_argument("--compare-ms", type=float, default=200.0, help="latency of the --compare modes")
    parser.add_argument("--hold-steps", type=int, default=1,
                        help="async: steps a late chunk may be bridged by replaying the last command "
                             "instead of stalling (default: %(default)s; 0 = always wait)")
    parser.add_argument("--margin-steps", type=int, default=2,
                        help="async: ask for the next chunk when fewer than ceil(latency / period) + this many "
                             "steps are covered (default: %(default)s; a chunk's length or more asks every step)")
    parser.add_argument("--ensemble-decay", type=float, default=0.1,
                        help="async-ensemble: chunk weights exp(-decay * i), i = 0 the oldest (default: "
                             "%(default)s, ACT's; negative favours the newest)")
    parser.add_argument("--guide-weight", type=float, default=None,
                        help="async-guided: nats of log-probability per bin of distance from the last "
                             "command (default: the executor's, policy.executor.GUIDE_WEIGHT)")


def make_executor(mode: str, policy: BasePolicy, period_s: float, hold_steps: int = 1,
                  margin_steps: int = 2, ensemble_decay: float = 0.1, guide_weight: float | None = None):
    from policy.executor import GUIDE_WEIGHT, ChunkExecutor

    if mode in ("sync", "sync-mean"):
        return ChunkExecutor(policy)
    blend = {"async-ensemble": "ensemble", "async-none": "none", "async-prefix": "prefix",
             "async-crossfade": "crossfade", "async-committed": "committed",
             "async-guided": "guided"}.get(mode)
    if blend is None:
        blend = DEFAULT_BLEND if policy.describe().get("distribution") else FALLBACK_BLEND
    serial = mode in ("async-serial", "async-committed")  # committed: one chunk in flight at a time
    inflight = 1 if serial else int(policy.describe().get("chunk") or 1)
    return ChunkExecutor(policy, execution="async", period_s=period_s, blend=blend, max_inflight=inflight,
                         hold_steps=hold_steps, margin_steps=margin_steps, ensemble_decay=ensemble_decay,
                         guide_weight=GUIDE_WEIGHT if guide_weight is None else guide_weight)


def run_episode(env, executor, seed: int, period_s: float) -> dict[str, Any]:
    """One episode at the nominal period; returns its success and per-command records."""
    obs, info = env.reset(seed=seed)
    instruction = info["instruction"]
    executor.reset(0)
    t_obs, t_cmd, actions, sources = [], [], [], []
    born_tick: dict[int, int] = {}  # chunk (call number) -> the tick whose observation it was given
    next_tick, done, success = time.monotonic(), False, False
    while not done:
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        calls = executor.calls
        t_obs.append(time.monotonic())
        action = executor.act([obs], [instruction])[0]
        t_cmd.append(time.monotonic())
        for seq in range(calls + 1, executor.calls + 1):
            born_tick[seq] = len(t_obs) - 1
        actions.append(action)
        sources.append(executor.chunk_id(0))
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        success = bool(info.get("success", False))
        next_tick += period_s
        late = time.monotonic() - next_tick
        if late > 0:  # missed ticks are skipped, as a fixed-rate timer does
            next_tick += math.ceil(late / period_s) * period_s
    return {"success": success, "t_obs": np.array(t_obs), "t_cmd": np.array(t_cmd),
            "actions": np.array(actions), "sources": sources, "born_tick": born_tick}


def episode_metrics(ep: dict[str, Any]) -> dict[str, list[float]]:
    """Intervals, jumps and reaction times of one episode (lists, pooled over a cell)."""
    t_obs, t_cmd, actions, sources = ep["t_obs"], ep["t_cmd"], ep["actions"], ep["sources"]
    out: dict[str, list[float]] = {"interval": list(np.diff(t_cmd)), "act": list((t_cmd - t_obs)[1:]),
                                   "boundary": [], "within": [], "reaction": [], "event": []}
    for j in range(1, len(actions)):
        jump = float(np.linalg.norm(actions[j, :6] - actions[j - 1, :6]))
        out["boundary" if sources[j] != sources[j - 1] else "within"].append(jump)
    first: dict[int, int] = {}
    for j, seq in enumerate(sources):
        first.setdefault(seq, j)
    out["reaction"] = [float(t_cmd[j] - t_obs[ep["born_tick"][seq]]) for seq, j in first.items()]
    tick_of = [ep["born_tick"][seq] for seq in sources]  # the observation behind each command
    for k in range(len(t_obs)):
        j = next((j for j in range(k, len(sources)) if tick_of[j] >= k), None)
        if j is not None:
            out["event"].append(float(t_cmd[j] - t_obs[k]))
    return out


def run_cell(env, policy: BasePolicy, mode: str, latency_ms: float, seeds: list[int],
             period_s: float, hold_steps: int = 1, margin_steps: int = 2,
             ensemble_decay: float = 0.1, guide_weight: float | None = None) -> dict[str, Any]:
    from common.stats import cluster_bootstrap_mean, wilson_interval

    slow = DelayedPolicy(MeanDecoded(policy) if mode == "sync-mean" else policy, latency_ms / 1000.0)
    executor = make_executor(mode, slow, period_s, hold_steps, margin_steps, ensemble_decay, guide_weight)
    t0 = time.perf_counter()
    pooled: dict[str, list[float]] = {}
    per_episode: dict[str, list[list[float]]] = {"boundary": [], "within": []}
    successes, lengths = 0, []
    try:
        for seed in seeds:
            ep = run_episode(env, executor, seed, period_s)
            successes += ep["success"]
            lengths.append(len(ep["actions"]))
            for k, v in episode_metrics(ep).items():
                pooled.setdefault(k, []).extend(v)
                if k in per_episode:
                    per_episode[k].append(v)
        executor.join(5.0)
    finally:
        executor.close()
    n = len(seeds)
    ms = lambda xs, q=None: (round(float(np.percentile(xs, q) if q else np.mean(xs)) * 1000, 1)  # noqa: E731
                             if xs else None)
    interval = pooled["interval"]
    p99 = ms(interval, 99)
    return {
        "mode": mode, "blend": executor.blend if executor.execution == "async" else None,
        "latency_ms": latency_ms, "episodes": n, "successes": successes,
        "success_rate": successes / n, "ci95": list(wilson_interval(successes, n)),
        "period_ms_p50": ms(interval, 50), "period_ms_p99": p99,
        "period_ms_max": round(max(interval) * 1000, 1) if interval else None,
        # The executor's share of the jitter: time inside act() per tick after an episode's first
        # (which waits for the first chunk, before any interval): a stall shows here, a tick made
        # late by the sim's own step and rendering on a busy CPU does not.
        "act_ms_p99": ms(pooled["act"], 99),
        "jitter_p99": round(abs(p99 - period_s * 1000) / (period_s * 1000), 3) if p99 is not None else None,
        "boundary_jump": round(float(np.mean(pooled["boundary"])), 5) if pooled["boundary"] else None,
        "within_chunk_jump": round(float(np.mean(pooled["within"])), 5) if pooled["within"] else None,
        # 95 % intervals of those two means, resampling whole episodes (common.stats): is a
        # difference between them more than which seeds were drawn?
        "boundary_jump_ci95": _rounded(cluster_bootstrap_mean(per_episode["boundary"])),
        "within_chunk_jump_ci95": _rounded(cluster_bootstrap_mean(per_episode["within"])),
        "boundaries": len(pooled["boundary"]), "within_steps": len(pooled["within"]),
        "reaction_latency_ms": ms(pooled["reaction"]), "event_reaction_ms": ms(pooled["event"]),
        "model_calls": round(executor.calls / n, 1), "waits": executor.waits, "holds": executor.holds,
        "stale": executor.stale,
        "mean_episode_length": round(float(np.mean(lengths)), 1),
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def _rounded(interval: tuple[float, float] | None) -> list[float] | None:
    return [round(x, 5) for x in interval] if interval else None


def _done_when(table: dict[str, dict[str, dict[str, Any]]], compare_ms: float) -> dict[str, Any]:
    """Issue 27's realtime criteria, read off the cells (None where a cell was not run). The
    within-chunk jump they compare against is the policy's own, synchronous at 0 ms: with a chunk
    barely longer than the latency, every async command comes from a new chunk, and its few
    "within" steps are holds (no change at all), which are no measure of a chunk's smoothness."""
    key = f"{compare_ms:g}"
    a, s = table.get("async", {}).get(key), table.get("sync", {}).get(key)
    s0 = table.get("sync", {}).get("0")
    if not (a and s and s0):
        return {}
    within = s0["within_chunk_jump"]
    return {
        "latency_ms": compare_ms,
        "async_jitter_p99": a["jitter_p99"], "sync_jitter_p99": s["jitter_p99"],
        "async_jitter_under_10pct": a["jitter_p99"] < 0.10,
        "sync_stalls": s["jitter_p99"] >= 0.10,
        "boundary_jump": a["boundary_jump"], "within_chunk_jump": within, "within_from": "sync at 0 ms",
        "boundary_jump_ci95": a.get("boundary_jump_ci95"), "within_chunk_jump_ci95": s0.get("within_chunk_jump_ci95"),
        "async_within_chunk_jump": a["within_chunk_jump"],
        "boundary_not_larger": a["boundary_jump"] is not None and within is not None and a["boundary_jump"] <= within,
        "async_success": a["success_rate"], "sync_0ms_success": s0["success_rate"],
        "sync_0ms_ci95": s0["ci95"],
        "success_within_ci_of_sync_0ms": a["success_rate"] >= s0["ci95"][0],
        **_same_decoding(table, a),
    }


def _same_decoding(table: dict[str, dict[str, dict[str, Any]]], a: dict[str, Any]) -> dict[str, Any]:
    """The guided blend plays the belief's mean, sync plays the most likely bin: the within-chunk
    jump of ``sync-mean`` (synchronous, the mean; its episodes do not depend on the added latency,
    the sim waits for it) is the like-for-like reference, when that mode ran."""
    cells = table.get("sync-mean", {})
    m = cells.get("0") or next(iter(cells.values()), None)
    if not m or a.get("blend") != "guided":
        return {}
    within = m["within_chunk_jump"]
    return {"within_chunk_jump_same_decoding": within, "within_same_decoding_from": "sync-mean",
            "within_chunk_jump_same_decoding_ci95": m.get("within_chunk_jump_ci95"),
            "boundary_not_larger_same_decoding": a["boundary_jump"] is not None and within is not None
            and a["boundary_jump"] <= within}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import sim
    from policy.backends import load_policy
    from policy.errors import PolicyError

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    compare = [m.strip() for m in args.compare.split(",") if m.strip()]
    for m in modes + compare:
        if m not in MODES:
            raise PolicyError(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    try:
        spec_ms = args.latencies_ms or ("0,200" if args.quick else "0,100,200,300")
        latencies = [float(x) for x in spec_ms.split(",") if x.strip()]
    except ValueError:
        raise PolicyError(f"--latencies-ms takes numbers, got {args.latencies_ms!r}") from None
    if not latencies or min(latencies) < 0 or not args.period_ms > 0 or min(args.hold_steps, args.margin_steps) < 0:
        raise PolicyError("--latencies-ms, --hold-steps and --margin-steps must be non-negative and "
                          "--period-ms positive")
    episodes = args.episodes or (2 if args.quick else 25)
    period_s = args.period_ms / 1000.0
    # One thread for the model: the control loop keeps the other core (2-core CI).
    torch.set_num_threads(1)
    policy = load_policy(args.checkpoint, backend=args.backend, threads=1)
    spec = policy.describe()
    size, cams = spec["image_size"], list(spec["cameras"])
    env = sim.make(args.task, cameras=tuple(dict.fromkeys(cams + ["agentview"])), image_size=(size, size))
    seeds = [args.seed + i for i in range(episodes)]
    plan = [(m, lat) for lat in latencies for m in modes]
    plan += [(m, args.compare_ms) for m in compare if (m, args.compare_ms) not in plan]
    cells = []
    load0 = _load()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    try:
        env.reset(seed=seeds[0])
        with torch.no_grad():
            policy.predict_chunk([env.reset(seed=seeds[0])[0]], ["warm up"])  # first-call costs
            for mode, lat in plan:
                cell = run_cell(env, policy, mode, lat, seeds, period_s, args.hold_steps, args.margin_steps,
                                args.ensemble_decay, args.guide_weight)
                cells.append(cell)
                print(f"{mode:15s} +{lat:4.0f} ms: success {cell['success_rate']:.0%} "
                      f"period p50/p99 {cell['period_ms_p50']}/{cell['period_ms_p99']} ms, "
                      f"jump boundary/within {cell['boundary_jump']}/{cell['within_chunk_jump']}, "
                      f"reaction {cell['reaction_latency_ms']} ms, waits/holds {cell['waits']}/{cell['holds']}, "
                      f"length {cell['mean_episode_length']} ({cell['wall_s']} s)", flush=True)
    finally:
        env.close()
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for c in cells:
        table.setdefault(c["mode"], {})[f"{c['latency_ms']:g}"] = c
    metrics = ("success_rate", "period_ms_p50", "period_ms_p99", "jitter_p99", "boundary_jump",
               "within_chunk_jump", "reaction_latency_ms", "event_reaction_ms")
    result: dict[str, Any] = {m: {mode: {lat: c[m] for lat, c in by.items()} for mode, by in table.items()}
                              for m in metrics}
    base = table.get("sync", {}).get("0")
    if base:
        ratios = {}
        for c in cells:
            ratios[f"{c['mode']}@{c['latency_ms']:g}"] = {
                "period_p99_vs_sync_0ms": round(c["period_ms_p99"] / base["period_ms_p99"], 2),
                "event_reaction_vs_sync_0ms": round(c["event_reaction_ms"] / base["event_reaction_ms"], 2)}
        result["ratios"] = ratios
        print("vs sync at 0 ms: " + ", ".join(f"{k} p99 x{v['period_p99_vs_sync_0ms']}" for k, v in ratios.items()))
    result.update({
        "checkpoint": args.checkpoint, "backend": args.backend, "task": args.task, "episodes": episodes,
        "margin_steps": args.margin_steps, "ensemble_decay": args.ensemble_decay, "hold_steps": args.hold_steps,
        "guide_weight": args.guide_weight,
        "seeds": [seeds[0], seeds[-1]], "period_ms": args.period_ms, "policy": spec,
        "done_when": _done_when(table, args.compare_ms), "cells": cells,
        "cost": {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - cpu0, 1)},
        # Jitter is the machine's as much as the executor's: the load the run shared the CPU with.
        "load_average": {"start": load0, "end": _load()},
    })
    return result
