"""``embodied/Billiards-v0``: one step is one whole shot.

Action: ``[aim, power]`` (Box float32): aim is the world yaw of the stroke in radians (0 = +x,
toward the right of the overhead picture), power in [0, 1] (cue speed 0.4 .. 4 m/s).
Observation: a dict with one uint8 image per camera (``cameras``, none when ``cameras=()``),
``state`` = ball positions [N*3] float32 in ``ball_names`` order, and ``potted`` [N] (0/1).
Reward: object balls potted by this shot (a ball knocked off the table is out of play, not a
pot). Terminated when every object ball is out of play or the cue ball is (a scratch); truncated after ``max_shots`` shots. ``info["events"]`` lists the
shot's events as dicts, ``info["task"] = "billiards"``; ``env.unwrapped.last_shot`` is the full
``ShotRecord`` (frames only when ``record_frames``: 640x480 frames of a 5 s shot are ~300 MB).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.billiards import table
from sim.billiards.shot import ShotRecord, simulate_shot
from sim.billiards.world import LAYOUTS, BilliardsWorld
from sim.errors import SimError


class BilliardsEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, cameras: tuple[str, ...] = table.CAMERAS,
                 width: int = 640, height: int = 480, depth: bool = False, layout: str = "scatter",
                 max_shots: int = 10, max_time: float = 8.0, record_frames: bool = False,
                 shadows: bool = True) -> None:
        if render_mode not in (None, "rgb_array"):
            raise SimError(f"unsupported render_mode {render_mode!r}; use 'rgb_array' or None")
        if layout not in LAYOUTS:
            raise SimError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        if max_shots < 1:
            raise SimError(f"max_shots must be >= 1, got {max_shots}")
        self.render_mode = render_mode
        self.layout, self.max_shots, self.max_time = layout, int(max_shots), float(max_time)
        self.record_frames = bool(record_frames)
        self.world = BilliardsWorld(tuple(cameras), width, height, depth, shadows)
        n = len(self.world.ball_names)
        obs: dict[str, spaces.Space] = {
            cam: spaces.Box(0, 255, (height, width, 3), np.uint8) for cam in cameras
        }
        obs["state"] = spaces.Box(-3.0, 3.0, (3 * n,), np.float32)  # metres; the room is 6 m wide
        obs["potted"] = spaces.MultiBinary(n)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(np.array([-np.pi, 0.0], np.float32),
                                       np.array([np.pi, 1.0], np.float32), dtype=np.float32)
        self.ball_names = self.world.ball_names
        self.last_shot: ShotRecord | None = None
        self.shots = 0
        self.task = "billiards"

    def _obs(self) -> dict[str, np.ndarray]:
        images = self.world.render()
        obs = {k: v for k, v in images.items() if not k.endswith("_depth")}
        obs["state"] = self.world.ball_positions().reshape(-1).astype(np.float32)
        obs["potted"] = self.world.potted.astype(np.int8)
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        layout = (options or {}).get("layout", self.layout)
        self.world.reset(self.np_random, layout)
        self.shots = 0
        self.last_shot = None
        return self._obs(), {"task": self.task, "events": []}

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.all(np.isfinite(a)):
            raise SimError(f"action must be 2 finite numbers [aim, power], got {action!r}")
        aim, power = float(a[0]), float(np.clip(a[1], 0.0, 1.0))
        before = self.world.potted.copy()
        self.last_shot = simulate_shot(self.world, aim, power, record=self.record_frames,
                                       max_time=self.max_time)
        self.shots += 1
        newly = self.world.potted & ~before
        cue = self.ball_names.index("cue")
        reward = float(newly.sum() - newly[cue])
        out = self.world.out_of_play()
        objects_left = int((~out).sum() - (not out[cue]))
        terminated = bool(out[cue] or objects_left == 0)
        truncated = bool(not terminated and self.shots >= self.max_shots)
        info = {"task": self.task, "events": [e.to_dict() for e in self.last_shot.events],
                "potted": [n for n, p in zip(self.ball_names, newly) if p], "shot": self.shots}
        return self._obs(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The player's view (or the first camera) as uint8[H, W, 3]; None without cameras."""
        if self.render_mode != "rgb_array" or self.world.cameras is None:
            return None
        images = self.world.render()
        name = "player" if "player" in images else self.world.cameras.names[0]
        return images[name]

    def close(self) -> None:
        self.world.close()
