"""`embodied bench sim`: how fast the worlds run and how reliable the scripted experts are.

Measured in one run, so the ratios compare like with like:
* physics steps/s (raw ``mj_step`` of the tabletop and billiards models) and env control steps/s;
* rendered frames/s per camera size, as a ratio to the smallest size;
* IK solve time (damped least squares, from the home posture to random reachable poses);
* expert episodes/minute: rollouts that render the cameras (baseline) against full collection
  into a LeRobot dataset (video encoding, parquet, ground truth), with and without fsync;
* collection at scale: one run collects into a dataset until it is large; episodes/s over a window
  just after it reached a small size (100) and a large one (5,000) and their ratio, which stays near
  1 when the per-episode cost does not grow with the dataset (statistics are merged incrementally,
  ``sim.stats``), plus the error of the incrementally merged q01/q99 against exact quantiles over
  every frame of that dataset. To keep 5,000 episodes tractable it collects the cheapest family
  (Reach) at 32x32 px with both cameras and without fsync;
* expert success rate per task family over N seeded episodes (no rendering: only the physics and
  the expert decide success), with a 95% Wilson interval.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import Any

import numpy as np

from common.stats import wilson_interval

DESCRIPTION = "physics/render/IK speed, collection throughput and expert success per task"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=None,
                        help="expert episodes per task family for the success rate (default: 100, quick: 10)")
    parser.add_argument("--collect-episodes", type=int, default=None,
                        help="episodes timed for collection throughput (default: 20, quick: 4)")
    parser.add_argument("--scaling-sizes", default=None,
                        help="dataset sizes at which collection episodes/s is measured, in one run "
                             "(default: 100,5000; quick: 20,200)")
    parser.add_argument("--scaling-window", type=int, default=None,
                        help="episodes timed after reaching each size (default: 50; quick: 10)")
    parser.add_argument("--sizes", default=None,
                        help="render sizes, comma list of WxH (default: 64,128,256,640x480; quick: 64,128,256)")


def physics_rates(seconds: float) -> dict[str, float]:
    """Raw mj_step rate of each world and the env's control-step rate without cameras."""
    import mujoco

    import sim
    from sim.billiards.world import BilliardsWorld

    out: dict[str, float] = {}
    env = sim.make("PickUp", cameras=())
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    out["tabletop"] = _rate(lambda: mujoco.mj_step(model, data), seconds)
    env.reset(seed=0)
    zero = np.zeros(7, np.float32)
    out["tabletop_env_control_steps"] = _rate(lambda: env.step(zero), seconds)
    env.close()
    world = BilliardsWorld(cameras=())
    world.reset(np.random.default_rng(0))
    out["billiards"] = _rate(lambda: mujoco.mj_step(world.model, world.data), seconds)
    world.close()
    return out


def _rate(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after one warm-up call)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed


def render_rates(sizes: list[tuple[int, int]], seconds: float) -> dict[str, float]:
    """Frames/s of the agentview camera at each size (one camera, RGB only)."""
    import sim

    out = {}
    for w, h in sizes:
        env = sim.make("PickUp", cameras=("agentview",), image_size=(w, h))
        env.reset(seed=0)
        cams, data = env.unwrapped.cameras, env.unwrapped.data
        out[f"{w}x{h}"] = _rate(lambda: cams.render(data), seconds)
        env.close()
    return out


def ik_timing(n: int) -> dict[str, float]:
    """Median/p95 solve time and convergence rate from home to random poses in the workspace."""
    import sim

    env = sim.make("PickUp", cameras=())
    env.reset(seed=0)
    u = env.unwrapped
    ik = u.ik
    home_q = u.data.qpos[u.ids.arm_qpos].copy()
    pos0, mat0 = ik.site_pose(home_q)
    rng = np.random.default_rng(0)
    times, iters, ok = [], [], 0
    for _ in range(n):
        target = pos0 + rng.uniform([-0.15, -0.2, -0.2], [0.15, 0.2, 0.05])
        t0 = time.perf_counter()
        res = ik.solve(target, mat0, home_q)
        times.append(time.perf_counter() - t0)
        iters.append(res.iterations)
        ok += res.pos_error < 2e-3
    env.close()
    t = np.array(times) * 1e3
    return {"median_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95)),
            "mean_iterations": float(np.mean(iters)), "converged": ok / n}


def expert_success(tasks: list[str], n: int) -> dict[str, dict[str, Any]]:
    """Success of the scripted expert over seeds 0..n-1 per family (cameras off)."""
    import sim
    from sim.collect import CollectConfig, run_episode
    from sim.tabletop.experts import make_expert

    cfg = CollectConfig(cameras=())
    out = {}
    for task in tasks:
        env = sim.make(task, cameras=())
        wins, steps, t0 = 0, [], time.perf_counter()
        for seed in range(n):
            result = run_episode(env, make_expert(env.unwrapped, seed=seed), seed, cfg)
            wins += result["success"]
            steps.append(result["steps"])
        env.close()
        lo, hi = wilson_interval(wins, n)
        out[task] = {"rate": wins / n, "ci95": [round(lo, 3), round(hi, 3)], "episodes": n,
                     "mean_steps": float(np.mean(steps)), "seconds": round(time.perf_counter() - t0, 2)}
    return out


def collection_throughput(n: int, size: tuple[int, int]) -> dict[str, float]:
    """Episodes/minute rendering two cameras, without and with writing the dataset."""
    import sim
    import sim.dataset  # noqa: F401 - import (pyarrow, PyAV) outside the timed region
    from sim.collect import CollectConfig, collect, run_episode
    from sim.tabletop.experts import make_expert

    cfg = CollectConfig(task="PickUp", episodes=n, image_size=size, progress=False)
    env = sim.make("PickUp", cameras=cfg.cameras, image_size=size)
    t0 = time.perf_counter()
    for seed in range(n):
        run_episode(env, make_expert(env.unwrapped, seed=seed), seed, cfg)  # renders, writes nothing
    no_video = time.perf_counter() - t0
    env.close()
    timed = {}
    for fsync in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            cfg.out, cfg.fsync = f"{tmp}/ds", fsync
            t0 = time.perf_counter()
            summary = collect(cfg)
            timed[fsync] = (time.perf_counter() - t0, summary["saved_now"] or 1)
    per_min = lambda seconds, count: 60.0 * count / seconds  # noqa: E731
    return {"image_size": f"{size[0]}x{size[1]}", "cameras": len(cfg.cameras),
            "episodes_per_min_render_only": per_min(no_video, n),
            "episodes_per_min_with_video": per_min(*timed[True]),
            "episodes_per_min_with_video_no_fsync": per_min(*timed[False]),
            "frames": summary["frames"]}


def collection_scaling(sizes: list[int], window: int, task: str = "Reach",
                       image_size: tuple[int, int] = (32, 32)) -> dict[str, Any]:
    """Episodes/s over ``window`` episodes right after the dataset reached each size, in one run.

    The times come from the collector's own per-attempt log (``logs/metrics.jsonl``, seconds since
    the run began), so the marginal rate at 5,000 episodes is measured inside the same
    uninterrupted collection as the rate at 100, with nothing reopened in between. The same rates
    per second of this process's CPU time (``cpu_ratio``) are blind to other load on a shared
    machine, which the wall-clock ratio is not.
    """
    import json
    from pathlib import Path

    from sim.collect import CollectConfig, collect

    sizes = sorted(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CollectConfig(task=task, episodes=sizes[-1] + window, out=f"{tmp}/ds", image_size=image_size,
                            fsync=False, progress=False)
        t0 = time.perf_counter()
        summary = collect(cfg)
        total = time.perf_counter() - t0
        lines = [json.loads(line) for line in (Path(cfg.out) / "logs" / "metrics.jsonl").read_text().splitlines()]
        committed = {r["episode_index"]: r for r in lines if r.get("episode_index") is not None}
        rates, cpu_rates = {}, {}
        for n in sizes:
            start, end = committed[n - 1], committed[n + window - 1]
            rates[str(n)] = window / (end["seconds"] - start["seconds"])
            cpu_rates[str(n)] = window / (end["cpu_seconds"] - start["cpu_seconds"])
        quantile_error = _stats_error(Path(cfg.out))
    small, large = rates[str(sizes[0])], rates[str(sizes[-1])]
    return {"task": task, "image_size": f"{image_size[0]}x{image_size[1]}", "cameras": len(cfg.cameras),
            "fsync": False, "window": window, "episodes": summary["episodes"], "frames": summary["frames"],
            "seconds": round(total, 1), "episodes_per_s": rates, "ratio": large / small,
            "episodes_per_cpu_s": cpu_rates,
            "cpu_ratio": cpu_rates[str(sizes[-1])] / cpu_rates[str(sizes[0])], "stats_error": quantile_error}


def _stats_error(root) -> dict[str, float]:
    """Largest error of stats.json against exact statistics over every frame, per statistic.

    Quantile errors are relative to the feature's exact q99 - q01 span (what the action tokenizer
    divides into bins); mean/std errors relative to the std.
    """
    from sim.dataset import LeRobotDataset
    from sim.stats import numeric_stats

    ds = LeRobotDataset(root)
    episodes = [ds.episode(i, decode_video=False) for i in range(ds.num_episodes)]
    worst = {"q01": 0.0, "q99": 0.0, "mean": 0.0, "std": 0.0}
    for key in ("observation.state", "action"):
        exact = numeric_stats(np.concatenate([ep[key] for ep in episodes]))
        got = ds.stats[key]
        span = np.maximum(np.subtract(exact["q99"], exact["q01"]), 1e-12)
        scale = np.maximum(exact["std"], 1e-12)
        for stat in worst:
            denom = span if stat.startswith("q") else scale
            err = float(np.max(np.abs(np.subtract(got[stat], exact[stat])) / denom))
            worst[stat] = max(worst[stat], err)
    return worst


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    from sim.collect import parse_size

    return [parse_size(s.strip()) for s in text.split(",") if s.strip()]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sim.registry import TABLETOP_TASKS

    quick = bool(getattr(args, "quick", False))
    n_success = getattr(args, "episodes", None) or (10 if quick else 100)
    n_collect = getattr(args, "collect_episodes", None) or (4 if quick else 20)
    sizes = _parse_sizes(getattr(args, "sizes", None) or ("64,128,256" if quick else "64,128,256,640x480"))
    scaling_spec = getattr(args, "scaling_sizes", None) or ("20,200" if quick else "100,5000")
    scaling_sizes = [int(n) for n in scaling_spec.split(",")]
    scaling_window = getattr(args, "scaling_window", None) or (10 if quick else 50)
    seconds = 0.5 if quick else 2.0

    physics = physics_rates(seconds)
    render = render_rates(sizes, seconds)
    ik = ik_timing(50 if quick else 500)
    throughput = collection_throughput(n_collect, (128, 128))
    success = expert_success(list(TABLETOP_TASKS), n_success)
    scaling = collection_scaling(scaling_sizes, scaling_window)

    base = next(iter(render))
    result = {
        "physics_steps_per_s": physics,
        "render_fps": render,
        "render_vs_" + base: {k: v / render[base] for k, v in render.items()},
        "ik": ik,
        "collection": throughput,
        "video_overhead_ratio": (throughput["episodes_per_min_render_only"]
                                 / throughput["episodes_per_min_with_video"]),
        "expert_success": {t: s["rate"] for t, s in success.items()},
        "expert_success_ci95": {t: s["ci95"] for t, s in success.items()},
        "episodes": {t: s["episodes"] for t, s in success.items()},
        "expert_mean_steps": {t: s["mean_steps"] for t, s in success.items()},
        "collection_scaling": scaling,
    }
    _print_table(result)
    return result


def _print_table(r: dict[str, Any]) -> None:
    """A short human summary on stderr; the JSON stays the last thing on stdout."""
    p = sys.stderr.write
    p("\nsim benchmark\n")
    for k, v in r["physics_steps_per_s"].items():
        p(f"  physics  {k:28s} {v:10.0f} steps/s\n")
    for k, v in r["render_fps"].items():
        p(f"  render   {k:28s} {v:10.1f} fps\n")
    p(f"  ik       median {r['ik']['median_ms']:.3f} ms, p95 {r['ik']['p95_ms']:.3f} ms, "
      f"converged {r['ik']['converged']:.0%}\n")
    c = r["collection"]
    p(f"  collect  {c['image_size']} x{c['cameras']} cams: {c['episodes_per_min_render_only']:.1f} ep/min "
      f"render only, {c['episodes_per_min_with_video']:.1f} with video+dataset "
      f"({c['episodes_per_min_with_video_no_fsync']:.1f} without fsync)\n")
    s = r["collection_scaling"]
    (small, a), (large, b) = list(s["episodes_per_s"].items())[0], list(s["episodes_per_s"].items())[-1]
    p(f"  scaling  {s['task']} {s['image_size']}: {a:.2f} ep/s at {small} episodes, {b:.2f} at {large} "
      f"(ratio {b / a:.2f}, per CPU second {s['cpu_ratio']:.2f}); stats q01/q99 error <= "
      f"{max(s['stats_error']['q01'], s['stats_error']['q99']):.2e} of the q01-q99 span\n")
    for t, rate in r["expert_success"].items():
        lo, hi = r["expert_success_ci95"][t]
        p(f"  expert   {t:10s} {rate:6.1%}  [{lo:.2f}, {hi:.2f}]  n={r['episodes'][t]}\n")
