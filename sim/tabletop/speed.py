"""How fast the tabletop world runs: physics, IK, env steps with and without cameras, experts.

    MUJOCO_GL=egl python -m sim.tabletop.speed [--episodes 100]

Prints one JSON object. Numbers matter because demonstrations for policy training are collected
on small CPUs; ``--episodes`` also measures the scripted experts' success rate per family.
"""

from __future__ import annotations

import argparse
import json
import time

import mujoco
import numpy as np


def _per_call(fn, n: int) -> float:
    """Mean seconds per call of ``fn`` over ``n`` calls (after one warm-up call)."""
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def measure(episodes: int = 0, image_size: tuple[int, int] = (128, 128), n: int = 100) -> dict:
    from sim.tabletop.arm import HOME_QPOS
    from sim.tabletop.env import TabletopEnv
    from sim.tabletop.experts import make_expert
    from sim.tabletop.tasks import FAMILIES

    out: dict = {"image_size": list(image_size)}
    env = TabletopEnv(task="pick_up", cameras=())
    env.reset(seed=0)
    out["physics_steps_per_s"] = 1.0 / _per_call(lambda: mujoco.mj_step(env.model, env.data), 20 * n)
    out["substeps_per_env_step"] = env.n_substeps

    rng = np.random.default_rng(0)
    _, down = env.ik.site_pose(HOME_QPOS)
    targets = [np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.3, 0.3), rng.uniform(0.02, 0.4)])
               for _ in range(n)]
    it = iter(targets * 2)
    out["ik_ms_cold"] = 1e3 * _per_call(lambda: env.ik.solve(next(it), down, HOME_QPOS), n - 1)
    # A control step moves the target at most 5 cm from the last solution: a warm start.
    q = HOME_QPOS.copy()
    p0, _ = env.ik.site_pose(q)
    k = [0]

    def warm() -> None:
        nonlocal q
        k[0] += 1
        q = env.ik.solve(p0 + 0.1 * np.array([np.sin(k[0] / 7), np.cos(k[0] / 5), -0.5]), down, q).qpos

    out["ik_ms_warm"] = 1e3 * _per_call(warm, n)

    action = np.array([0.01, 0.0, -0.01, 0, 0, 0, 0], dtype=np.float32)

    def step(e: TabletopEnv) -> None:
        _, _, term, trunc, _ = e.step(action * (1 if e._steps % 20 < 10 else -1))
        if term or trunc:
            e.reset()

    out["env_step_ms_no_cameras"] = 1e3 * _per_call(lambda: step(env), n)
    cam_env = TabletopEnv(task="pick_up", image_size=image_size)
    cam_env.reset(seed=0)
    out["env_step_ms_two_cameras"] = 1e3 * _per_call(lambda: step(cam_env), n)
    cam_env.close()

    if episodes:
        success = {}
        for family in FAMILIES:
            fenv = TabletopEnv(task=family, cameras=())
            expert = make_expert(fenv, seed=0)
            wins, steps, t = 0, 0, time.perf_counter()
            for seed in range(episodes):
                obs, info = fenv.reset(seed=seed)
                expert.reset()
                done = False
                while not done:
                    obs, _, term, trunc, info = fenv.step(expert.act(obs))
                    steps += 1
                    done = term or trunc
                wins += bool(info["success"])
            success[family] = {"success_rate": wins / episodes, "episodes": episodes,
                               "mean_steps": steps / episodes,
                               "episodes_per_s": episodes / (time.perf_counter() - t)}
        out["experts"] = success
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=0, help="expert episodes per family (0: skip)")
    parser.add_argument("--size", type=int, default=128, help="square image size for the camera run")
    args = parser.parse_args()
    print(json.dumps(measure(args.episodes, (args.size, args.size)), indent=2))


if __name__ == "__main__":
    main()
