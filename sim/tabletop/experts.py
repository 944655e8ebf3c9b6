"""Scripted experts: waypoints over privileged sim state, plus a little noise.

Each expert is a small phase machine. A phase names a TCP waypoint (recomputed every step from
the live object poses, so it corrects for objects that slide), a gripper command and a
tolerance on the *measured* TCP; when the TCP is within tolerance (and the phase's minimum
number of steps has passed) the next phase starts. Actions steer the *commanded* TCP towards
the waypoint at up to ``SPEED`` per step, keep the hand pointing straight down with the yaw
the phase asks for, and add Gaussian noise so demonstrations are not all identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim.errors import SimError
from sim.tabletop import scene, tasks
from sim.tabletop.env import ACTION_HIGH, ACTION_LOW, MAX_DPOS, TabletopEnv
from sim.tabletop.ik import orientation_error

SPEED = 0.04  # m per step, under MAX_DPOS so noise rarely clips
TURN = 0.2  # rad per step
HOVER = 0.1  # m above an object's top before descending
LOST = 0.04  # m from the TCP: a target this far away during a carrying phase is not in the hand
CARRYING = ("lift", "hold", "carry", "lower")  # phases that assume the target is held
DOWN = np.diag([1.0, -1.0, -1.0])  # home orientation: TCP z pointing at the table


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _wrap(angle: float, period: float) -> float:
    """Wrap to [-period/2, period/2): cubes look the same every 90 degrees."""
    return float((angle + period / 2) % period - period / 2)


@dataclass
class Phase:
    name: str
    waypoint: Callable[[], np.ndarray]
    gripper: float
    tol: float = 0.01
    min_steps: int = 0
    yaw: Callable[[], float] | None = None  # None keeps the current yaw
    done: Callable[[], bool] | None = None  # replaces the tolerance test when given


class Expert:
    """Drives a ``TabletopEnv`` through its task. ``reset()`` after every ``env.reset()``."""

    def __init__(self, env, seed: int | None = None, noise: float = 0.002) -> None:
        self.env: TabletopEnv = env.unwrapped
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.phases: list[Phase] = []
        self.index = 0
        self.steps_in_phase = 0
        self.yaw = 0.0

    # --- privileged views of the world
    def _obj(self) -> np.ndarray:
        return self.env.object_pos(self.env.episode.target.slot)

    def _half(self) -> float:
        return scene.half_height(self.env.episode.target.shape)

    def _grasp_yaw(self) -> float:
        """Yaw that lines the fingers up with a cube's faces (any yaw suits a cylinder)."""
        target = self.env.episode.target
        if target.shape != "cube":
            return 0.0
        q = self.env.object_quat(target.slot)
        cube_yaw = 2.0 * np.arctan2(q[3], q[0])
        return _wrap(cube_yaw, np.pi / 2)

    def reset(self) -> None:
        if self.env.episode is None:
            raise SimError("reset the env before the expert")
        self.index, self.steps_in_phase, self.yaw = 0, 0, 0.0
        self.phases = getattr(self, "_" + self.env.task)()

    # --- task plans
    def _pick(self) -> list[Phase]:
        obj, half = self._obj, self._half
        above = lambda: obj() + [0.0, 0.0, half() + HOVER]  # noqa: E731
        grasp = obj  # the TCP between the pads goes to the object's centre
        lifted = obj()
        return [
            Phase("above", above, 0.0, tol=0.02, yaw=self._grasp_yaw),
            Phase("descend", grasp, 0.0, tol=0.008, yaw=self._grasp_yaw),
            Phase("close", grasp, 1.0, tol=1.0, min_steps=4),
            Phase("lift", lambda: np.array([lifted[0], lifted[1], 0.2]), 1.0, tol=0.02),
        ]

    def _reach(self) -> list[Phase]:
        obj, half = self._obj, self._half
        top = lambda: obj() + [0.0, 0.0, half() + 0.005]  # noqa: E731
        return [
            Phase("above", lambda: top() + [0.0, 0.0, HOVER], 0.0, tol=0.03),
            Phase("touch", top, 0.0, tol=0.005),
            Phase("hold", top, 0.0, tol=0.005, min_steps=100),
        ]

    def _pick_up(self) -> list[Phase]:
        phases = self._pick()
        phases.append(Phase("hold", phases[-1].waypoint, 1.0, tol=0.0, min_steps=100))
        return phases

    def _push(self) -> list[Phase]:
        ep = self.env.episode
        d = np.array([*tasks.SIDES[ep.side], 0.0])
        start = self.env.object_pos(ep.target.slot)
        half = self._half()
        reach = half + 0.012 + 0.02  # object half-width + finger half-thickness + margin
        low = 0.02
        goal = start + d * 0.13  # a few cm past the 8 cm threshold

        def behind() -> np.ndarray:
            p = self._obj()
            return np.array([p[0], p[1], low]) - d * reach

        def pushing() -> np.ndarray:
            # Keep the fingers on the object's far side, advancing towards the goal line.
            p = self._obj()
            along = min(np.dot(goal - p, d), SPEED)
            return np.array([p[0], p[1], low]) - d * (reach - 0.015) + d * max(along, 0.0)

        def done_pushing() -> bool:
            return np.dot(self._obj() - start, d) >= 0.11

        yaw = np.pi / 2  # closed fingers side by side across the push: a wider paddle
        return [
            Phase("above", lambda: behind() + [0.0, 0.0, 0.1], 1.0, tol=0.02, yaw=lambda: yaw),
            Phase("down", behind, 1.0, tol=0.008, yaw=lambda: yaw),
            Phase("push", pushing, 1.0, yaw=lambda: yaw, done=done_pushing),
            Phase("retract", lambda: goal - d * reach + [0.0, 0.0, 0.1], 1.0, tol=0.0,
                  min_steps=100),
        ]

    def _put_in(self) -> list[Phase]:
        phases = self._pick()
        rec = self.env.receptacle_pos()
        kind = self.env.episode.receptacle
        floor = 0.008 if kind == "bowl" else 2 * scene.PLATE_HALF_THICK
        half = self._half()
        # Release with the object's bottom ~1.5 cm above the receptacle surface.
        place_z = floor + 0.015 + half
        carry = lambda: np.array([rec[0], rec[1], 0.2])  # noqa: E731
        place = lambda: np.array([rec[0], rec[1], place_z])  # noqa: E731
        phases[-1] = Phase("lift", lambda: self._obj() * [1, 1, 0] + [0, 0, 0.2], 1.0, tol=0.03)
        phases += [
            Phase("carry", carry, 1.0, tol=0.015),
            Phase("lower", place, 1.0, tol=0.01),
            Phase("release", place, 0.0, tol=1.0, min_steps=3),
            Phase("retract", lambda: np.array([rec[0], rec[1], 0.22]), 0.0, tol=0.01, min_steps=100),
        ]
        return phases

    # --- acting
    def _lost_target(self, phase: Phase, tcp: np.ndarray) -> bool:
        """A closed hand in a carrying phase but the target is elsewhere: the grasp missed.

        Scripted rollouts rarely get here; rollouts driven by a learner (DAgger relabelling) or
        bursts of random moves do, and "keep lifting an empty hand" would be a wrong label.
        """
        if phase.name not in CARRYING or self.env.task not in ("pick_up", "put_in"):
            return False
        return bool(np.linalg.norm(tcp - self._obj()) > LOST)

    def act(self, obs=None) -> np.ndarray:
        tcp, _ = self.env.tcp_pose()
        if self._lost_target(self.phases[self.index], tcp):  # start over: open, hover, descend
            self.phases = getattr(self, "_" + self.env.task)()
            self.index, self.steps_in_phase = 0, 0
        plan = self.phases
        phase = plan[self.index]
        waypoint = phase.waypoint()
        reached = phase.done() if phase.done else np.linalg.norm(tcp - waypoint) < phase.tol
        if reached and self.steps_in_phase >= phase.min_steps and self.index < len(plan) - 1:
            self.index += 1
            self.steps_in_phase = 0
            phase = plan[self.index]
            waypoint = phase.waypoint()
        self.steps_in_phase += 1

        cmd_pos, cmd_mat = self.env.commanded_tcp()
        delta = waypoint - cmd_pos
        dist = np.linalg.norm(delta)
        if dist > SPEED:
            delta *= SPEED / dist
        if phase.yaw is not None:
            self.yaw = phase.yaw()
        rot = orientation_error(_rot_z(self.yaw) @ DOWN, cmd_mat)
        norm = np.linalg.norm(rot)
        if norm > TURN:
            rot *= TURN / norm
        action = np.concatenate([delta, rot, [phase.gripper]])
        action[:3] += self.rng.normal(0.0, self.noise, 3)
        action[:3] = np.clip(action[:3], -MAX_DPOS, MAX_DPOS)
        return np.clip(action, ACTION_LOW, ACTION_HIGH).astype(np.float32)


def make_expert(env, seed: int | None = None, noise: float = 0.002) -> Expert:
    """A scripted expert for ``env``'s task family (call ``expert.reset()`` after ``env.reset()``)."""
    return Expert(env, seed=seed, noise=noise)
