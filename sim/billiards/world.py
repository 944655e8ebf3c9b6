"""One billiards table in MuJoCo: the model and data, ball layouts, the cue's pose, the table state.

``BilliardsWorld`` is what ``simulate_shot`` drives and what ``BilliardsEnv`` wraps; it owns no
policy and no episode logic, so tests and tools can use it without Gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import mujoco
import numpy as np

from sim.billiards import table
from sim.billiards.cloth import ClothFriction
from sim.billiards.collide import BallCollider, CushionCollider
from sim.errors import SimError
from sim.render import Cameras, camera_pose

LAYOUTS = ("rack", "scatter")


@dataclass(frozen=True)
class TableState:
    """What a player sees: ball names, positions (world, metres) and which are potted."""

    ball_names: tuple[str, ...]
    positions: np.ndarray  # [N, 3]
    potted: np.ndarray  # [N] bool: fell into a pocket
    off_table: np.ndarray | None = None  # [N] bool: left the table (out of play, not potted)

    def position(self, name: str) -> np.ndarray:
        return self.positions[self.ball_names.index(name)]

    def out_of_play(self) -> np.ndarray:
        return self.potted if self.off_table is None else self.potted | self.off_table

    def in_play(self) -> list[str]:
        return [n for n, out in zip(self.ball_names, self.out_of_play()) if not out]


def _quat_from_matrix(R: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


def cue_rotation(aim: float, elevation: float) -> np.ndarray:
    """Rotation (cue -> world) of a cue that strikes along world yaw ``aim``.

    The cue frame's +z points from the tip to the butt: backwards along the aim and up by
    ``elevation``; its x axis is kept horizontal.
    """
    d = np.array([np.cos(aim), np.sin(aim), 0.0])
    z = -d * np.cos(elevation) + np.array([0.0, 0.0, np.sin(elevation)])
    x = np.array([-np.sin(aim), np.cos(aim), 0.0])  # horizontal, perpendicular to the aim
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


class Collisions(NamedTuple):
    """One step's collisions: ball index pairs, and (ball index, cushion name)."""

    balls: list[tuple[int, int]]
    cushions: list[tuple[int, str]]


class BilliardsWorld:
    """The MuJoCo table, with cameras rendered at ``width`` x ``height`` (``cameras=()``: none).

    ``shadows=False`` drops the one shadow-casting light's shadows: rendering is then ~3x faster
    on a CPU (Mesa), at the cost of balls without shadows on the cloth.
    """

    def __init__(self, cameras: tuple[str, ...] = table.CAMERAS, width: int = 640,
                 height: int = 480, depth: bool = False, shadows: bool = True) -> None:
        for name in cameras:
            if name not in table.CAMERAS:
                raise SimError(f"unknown billiards camera {name!r}; known: {', '.join(table.CAMERAS)}")
        if width <= 0 or height <= 0:
            raise SimError(f"image size must be positive, got {width}x{height}")
        self.model = mujoco.MjModel.from_xml_string(table.build_xml())
        self.data = mujoco.MjData(self.model)
        if not shadows:
            self.model.light_castshadow[:] = False
        self.ball_names = table.BALL_NAMES
        self.ball_colors = tuple(rgb for _, rgb in table.BALLS)
        self.cameras = Cameras(self.model, tuple(cameras), width, height, depth) if cameras else None
        obj = mujoco.mjtObj
        self._ball_qpos = np.array([self.model.jnt_qposadr[mujoco.mj_name2id(self.model, obj.mjOBJ_JOINT, n)]
                                    for n in self.ball_names])
        self._ball_qvel = np.array([self.model.jnt_dofadr[mujoco.mj_name2id(self.model, obj.mjOBJ_JOINT, n)]
                                    for n in self.ball_names])
        cue_joint = mujoco.mj_name2id(self.model, obj.mjOBJ_JOINT, "cue_stick")
        self._cue_qpos = self.model.jnt_qposadr[cue_joint]
        self._cue_qvel = self.model.jnt_dofadr[cue_joint]
        self.cue_body = mujoco.mj_name2id(self.model, obj.mjOBJ_BODY, "cue_stick")
        self.tip_geom = mujoco.mj_name2id(self.model, obj.mjOBJ_GEOM, "cue_tip")
        self._tip_contype = int(self.model.geom_contype[self.tip_geom])
        self.potted = np.zeros(len(self.ball_names), dtype=bool)  # fell into a pocket
        self.off_table = np.zeros(len(self.ball_names), dtype=bool)  # left the table (not a pot)
        self.collider = BallCollider(self.model, self.ball_names)
        self.cushions = CushionCollider(self.model, self.ball_names)
        self.cloth = ClothFriction(self.model, self.ball_names)

    def out_of_play(self) -> np.ndarray:
        """[N] bool: potted or off the table."""
        return self.potted | self.off_table

    def step(self) -> Collisions:
        """One physics step: the cloth's friction (``cloth.py``), ``mj_step``, then the ball-ball
        and ball-cushion collisions (``collide.py``). Returns what collided in this step.
        """
        out = self.out_of_play()
        self.cloth.apply(self.data, out)
        mujoco.mj_step(self.model, self.data)
        hit = Collisions(self.collider.resolve(self.data, out), self.cushions.resolve(self.data, out))
        if hit.balls or hit.cushions:  # positions moved: keep xpos (rendering) in step
            mujoco.mj_kinematics(self.model, self.data)
        return hit

    # ---- layouts -------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, layout: str = "scatter") -> None:
        """Fresh physics state (``mj_resetData``) with balls placed by ``layout`` from ``rng``."""
        if layout not in LAYOUTS:
            raise SimError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        mujoco.mj_resetData(self.model, self.data)
        self.model.geom_contype[self.tip_geom] = self._tip_contype
        self.potted[:] = False
        self.off_table[:] = False
        xy = self._rack(rng) if layout == "rack" else self._scatter(rng)
        self.place_balls(xy)
        self.park_cue()
        mujoco.mj_forward(self.model, self.data)

    def place_balls(self, xy: np.ndarray) -> None:
        """Put ball i at ``xy[i]`` resting on the cloth, at rest (rows follow ``ball_names``)."""
        for i, (x, y) in enumerate(np.asarray(xy, dtype=float)):
            a = self._ball_qpos[i]
            self.data.qpos[a:a + 7] = [x, y, table.BED_Z + table.BALL_RADIUS, 1, 0, 0, 0]
            self.data.qvel[self._ball_qvel[i]:self._ball_qvel[i] + 6] = 0.0

    def _rack(self, rng: np.random.Generator) -> np.ndarray:
        """Object balls in a tight triangle at the foot spot (order shuffled), cue ball behind the head string."""
        R = table.BALL_RADIUS + 0.0002  # a hair apart so the rack does not start in contact
        n = len(self.ball_names) - 1
        spots = []
        row = 0
        while len(spots) < n:
            for k in range(row + 1):
                spots.append((0.635 + row * 2 * R * np.sqrt(3) / 2, (k - row / 2) * 2 * R))
            row += 1
        spots = np.array(spots[:n])[rng.permutation(n)]
        cue = np.array([-0.635, rng.uniform(-0.2, 0.2)])
        return np.vstack([cue, spots])

    def _scatter(self, rng: np.random.Generator) -> np.ndarray:
        """Balls at random non-touching spots, away from the cushions and the pocket openings."""
        margin = 0.12
        lo = np.array([-table.HALF_LENGTH + margin, -table.HALF_WIDTH + margin])
        hi = -lo
        placed: list[np.ndarray] = []
        while len(placed) < len(self.ball_names):
            p = rng.uniform(lo, hi)
            if all(np.linalg.norm(p - q) > 4 * table.BALL_RADIUS for q in placed):
                placed.append(p)
        return np.array(placed)

    # ---- cue -------------------------------------------------------------------------------
    def set_cue(self, tip: np.ndarray, R: np.ndarray, velocity: np.ndarray | None = None) -> None:
        """Place the cue with its tip at ``tip`` and rotation ``R`` (cue -> world), moving at ``velocity``."""
        a, v = self._cue_qpos, self._cue_qvel
        self.data.qpos[a:a + 3] = tip
        self.data.qpos[a + 3:a + 7] = _quat_from_matrix(R)
        self.data.qvel[v:v + 6] = 0.0
        if velocity is not None:
            self.data.qvel[v:v + 3] = velocity

    def park_cue(self) -> None:
        """Cue lying out of the way above the side of the table (before a shot is addressed)."""
        tip = np.array([-0.7, -table.HALF_WIDTH - 0.35, table.BED_Z + 0.3])
        self.set_cue(tip, cue_rotation(0.0, 0.0))

    def enable_tip(self, on: bool) -> None:
        """Switch the tip's collisions, so a withdrawing cue can never touch the cue ball again."""
        self.model.geom_contype[self.tip_geom] = self._tip_contype if on else 0

    def cue_pose(self) -> np.ndarray:
        """4x4 cue -> world (origin at the tip, +z toward the butt), after ``mj_forward``/a step."""
        T = np.eye(4)
        T[:3, :3] = self.data.xmat[self.cue_body].reshape(3, 3)
        T[:3, 3] = self.data.xpos[self.cue_body]
        return T

    # ---- state -----------------------------------------------------------------------------
    def ball_positions(self) -> np.ndarray:
        return np.stack([self.data.qpos[a:a + 3] for a in self._ball_qpos]).copy()

    def ball_velocities(self) -> np.ndarray:
        """[N, 3] linear velocities (world, m/s)."""
        return np.stack([self.data.qvel[a:a + 3] for a in self._ball_qvel]).copy()

    def ball_speeds(self) -> np.ndarray:
        return np.linalg.norm(self.ball_velocities(), axis=1)

    def state(self) -> TableState:
        return TableState(self.ball_names, self.ball_positions(), self.potted.copy(),
                          self.off_table.copy())

    def camera_poses(self) -> dict[str, np.ndarray]:
        names = self.cameras.names if self.cameras else ()
        return {n: camera_pose(self.model, self.data, n) for n in names}

    def intrinsics(self) -> dict[str, np.ndarray]:
        names = self.cameras.names if self.cameras else ()
        return {n: self.cameras.K(n) for n in names}

    def render(self) -> dict[str, np.ndarray]:
        return self.cameras.render(self.data) if self.cameras else {}

    def close(self) -> None:
        if self.cameras:
            self.cameras.close()
