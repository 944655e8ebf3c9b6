"""Clip simulation: billiards shots and tabletop expert episodes, rendered small, with the ground
truth the questions and the dense labels need.

Each clip is rendered small (QA needs colours and motion, not detail) and summarised into a
JSON-able ``summary`` dict (``video_qa.questions`` asks about it, ``video_qa.labels`` labels its
frames). A clip depends only on its seed: the same seed gives the same frames and summary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Version 2: frames at 128 px wide (at 64 px a billiards ball was one pixel and several colours
# vanished into the felt) and per-frame image positions of every object and ball (dense labels
# for the frame encoder). A cached clip of an older version is simulated again, never mixed in.
# Version 3: the billiards physics of issue 25 (impulse ball-ball and cushion collisions, cloth
# friction with mu_roll 0.01, off-table events): shots unfold differently.
DATA_VERSION = 3

# ---------------------------------------------------------------------------- simulation
def _project_uv(K: np.ndarray, cam_to_world: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Pixel (column, row) of world point ``p`` (OpenCV camera: x right, y down, z forward)."""
    R, t = cam_to_world[:3, :3], cam_to_world[:3, 3]
    x = R.T @ (np.asarray(p, float) - t)
    return float(K[0, 0] * x[0] / x[2] + K[0, 2]), float(K[1, 1] * x[1] / x[2] + K[1, 2])


def _project_u(K: np.ndarray, cam_to_world: np.ndarray, p: np.ndarray) -> float:
    """Image column of world point ``p``: what "left of" means is what the camera shows."""
    return _project_uv(K, cam_to_world, p)[0]


def _px(uv: tuple[float, float]) -> list[float]:
    return [round(uv[0], 1), round(uv[1], 1)]


def billiards_record(seed: int, width: int = 128, height: int = 80, fps: float = 10.0) -> Any:
    """The ``ShotRecord`` of clip seed ``seed`` filmed by the overhead camera at ``width`` x
    ``height`` and ``fps``. The physics steps on its own clock, so the same seed plays the same shot
    at any size and frame rate (``video_qa.perceived`` films QA clips again at full resolution)."""
    from sim.billiards.player import ScriptedPlayer
    from sim.billiards.shot import simulate_shot
    from sim.billiards.world import BilliardsWorld

    world = BilliardsWorld(cameras=("overhead",), width=width, height=height)
    try:
        rng = np.random.default_rng(seed)
        world.reset(rng)
        aim, power, target = ScriptedPlayer(rng).plan(world.state())
        return simulate_shot(world, aim, power, fps=fps, target=target)
    finally:
        world.close()


def simulate_billiards(seed: int, width: int = 128, height: int = 80, fps: float = 10.0
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One scripted shot from the overhead camera: (frames, times, summary)."""
    rec = billiards_record(seed, width, height, fps)
    summary = billiards_summary(rec)
    summary.update(width=width, height=height)
    return rec.frames["overhead"], np.asarray(rec.times), summary


def billiards_summary(rec: Any) -> dict[str, Any]:
    """Ground truth of a ``ShotRecord`` that the questions need (JSON-able)."""
    pots: dict[str, float] = {}
    first_hit = None
    for e in rec.events:
        if e.kind == "pot" and e.a not in pots:
            pots[e.a] = round(float(e.t), 2)
        if e.kind == "ball_ball" and first_hit is None and "cue" in (e.a, e.b):
            first_hit = e.b if e.a == "cue" else e.a
    K, pose = rec.K["overhead"], rec.camera_pose["overhead"]
    uv = {n: [_project_u(K, pose, rec.ball_pos[0, i])] for i, n in enumerate(rec.ball_names)}
    # Every ball's pixel in every frame (None once potted): where the dense frame labels put it.
    track = {n: [None if rec.potted[f, i] else _px(_project_uv(K, pose, rec.ball_pos[f, i]))
                 for f in range(len(rec.times))] for i, n in enumerate(rec.ball_names)}
    return {"source": "billiards", "version": DATA_VERSION,
            "times": [round(float(t), 3) for t in rec.times],
            "ball_names": list(rec.ball_names), "pot_times": pots, "first_hit": first_hit,
            "start_uv": uv, "track": track,
            "events": [{"t": round(float(e.t), 3), "kind": e.kind, "a": e.a, "b": e.b}
                       for e in rec.events]}


def simulate_tabletop(seed: int, task: str = "PickUp", size: int = 128, idle_steps: int = 3
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One expert episode from the agent-view camera: (frames, times, summary).

    ``idle_steps`` no-op steps at the start give the clip a still prefix, so "when" answers are not
    simply the clip length.
    """
    import sim
    from sim.tabletop import scene, tasks
    from sim.tabletop.experts import make_expert

    env = sim.make(task, render_mode="rgb_array", image_size=(size, size), cameras=("agentview",))
    try:
        obs, _ = env.reset(seed=seed)
        u = env.unwrapped
        gt0 = u.ground_truth()
        K, pose = u.camera_intrinsics("agentview"), u.camera_pose("agentview")
        expert = make_expert(u, seed=seed)
        expert.reset()
        target = gt0["target"]
        z0 = float(u.object_pos(target)[2])
        slots = [(o["name"], o["id"]) for o in gt0["objects"]]

        def where() -> dict[str, list[float]]:
            return {name: _px(_project_uv(K, pose, u.object_pos(slot))) for name, slot in slots}

        frames, times, lifted, track = [obs["agentview"]], [0.0], [False], [where()]
        t0 = float(u.data.time)
        rng = np.random.default_rng(seed)
        idle = int(rng.integers(0, idle_steps + 1)) * 3
        for step in range(200):
            action = np.array(expert.act(obs), np.float32)
            if step < idle:  # hold still: keep the expert's gripper command, no motion
                action[:6] = 0.0
            obs, _, term, trunc, _ = env.step(action)
            frames.append(obs["agentview"])
            times.append(float(u.data.time) - t0)
            lifted.append(bool(float(u.object_pos(target)[2]) > z0 + 0.02))
            track.append(where())
            if term or trunc:
                break
        gt1 = u.ground_truth()
    finally:
        env.close()
    lift_idx = next((i for i, v in enumerate(lifted) if v), None)
    objects = [{"name": o["name"], "color": o["color"], "shape": o["shape"],
                "is_target": o["is_target"], "u": _project_u(K, pose, o["position"])}
               for o in gt0["objects"]]
    rec = None
    if gt0["receptacle"]:
        ruv = _project_uv(K, pose, gt0["receptacle"]["position"])
        rec = {"kind": gt0["receptacle"]["kind"], "u": ruv[0], "uv": _px(ruv)}
    summary = {"source": "tabletop", "version": DATA_VERSION, "task": gt0["task"], "instruction": gt0["instruction"],
               "times": [round(t, 3) for t in times], "objects": objects, "receptacle": rec,
               "lift_time": round(times[lift_idx], 2) if lift_idx is not None else None,
               "lifted": lifted, "success": gt1["success"],
               # each object's pixel per frame (the receptacle does not move: "uv" above)
               "track": {name: [f[name] for f in track] for name, _ in slots},
               "all_colors": list(tasks.COLORS), "all_shapes": list(scene.SHAPES),
               "width": size, "height": size}  # the frame size the "u" columns are measured in
    return np.stack(frames), np.asarray(times), summary

