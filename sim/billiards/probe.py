"""Launch experiments: balls placed by hand, one given a launch state, the physics stepped alone.

The physics checks (``bench/billiards_physics_bench.py``, ``tests/sim/test_billiards_physics.py``)
compare the table with published models on matched shots: the same ball launch state (velocity
and spin) in both, so the cue's strike is not part of the comparison. ``Launch`` runs such a shot
without the cue (parked) and keeps, per step, what the checks measure: positions, velocities,
spins (world frame), the balls' mechanical energy and the event log.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.billiards import table
from sim.billiards.events import Event, EventDetector
from sim.billiards.world import BilliardsWorld

PARK_Y = -0.55  # balls not in an experiment wait in a row near the bottom cushion
SETTLE = 0.1  # s of stepping at rest after placing, so a launch starts from a ball at rest


def rolling_spin(velocity: np.ndarray) -> np.ndarray:
    """Spin (world, rad/s) of a ball rolling without slipping at horizontal ``velocity``."""
    v = np.asarray(velocity, float)
    return np.array([-v[1], v[0], 0.0]) / table.BALL_RADIUS


@dataclass
class Trace:
    """Per-step record of a launch: ``t`` [T], ``pos``/``vel``/``spin`` [T, N, 3], ``energy`` [T]."""

    t: np.ndarray
    pos: np.ndarray
    vel: np.ndarray
    spin: np.ndarray
    energy: np.ndarray
    events: list[Event]
    ball_names: tuple[str, ...]
    potted: np.ndarray  # [N] at the end
    off_table: np.ndarray  # [N] at the end

    def index(self, name: str) -> int:
        return self.ball_names.index(name)


def roll_start_velocity(trace: Trace, ball: int, after: float = 0.0) -> np.ndarray:
    """``ball``'s horizontal velocity when it first rolls (contact point at rest) after ``after`` s.

    The stun/follow/draw results are speeds at the end of sliding; measured later, the cloth's
    rolling resistance would already have taken its share. The last sample if it never rolls.
    """
    v, w = trace.vel[:, ball], trace.spin[:, ball]
    slip = np.hypot(v[:, 0] - table.BALL_RADIUS * w[:, 1], v[:, 1] + table.BALL_RADIUS * w[:, 0])
    rolling = (trace.t > after) & (slip < 2e-3)
    return v[int(np.argmax(rolling)) if rolling.any() else -1, :2]


def ball_energy(world: BilliardsWorld, balls: np.ndarray | None = None) -> float:
    """Kinetic (translational + rotational) plus potential energy of ``balls`` (default: in play).

    Potential energy is measured from the cloth, so a ball pressed into the cloth or hopping off
    it counts what it really holds.
    """
    m, R = table.BALL_MASS, table.BALL_RADIUS
    idx = np.flatnonzero(~world.out_of_play() if balls is None else balls)
    qv, qp = world.collider.qvel[idx], world.collider.qpos[idx]
    v = world.data.qvel[qv[:, None] + np.arange(3)]
    w = world.data.qvel[qv[:, None] + 3 + np.arange(3)]  # body frame: its norm is all we need
    z = world.data.qpos[qp + 2] - (table.BED_Z + R)
    return float(0.5 * m * (v**2).sum() + 0.2 * m * R**2 * (w**2).sum() + m * table.GRAVITY * z.sum())


def _spins(world: BilliardsWorld) -> np.ndarray:
    c = world.collider
    rot = world.data.xmat[c.bodies].reshape(-1, 3, 3)
    local = world.data.qvel[c.qvel[:, None] + 3 + np.arange(3)]
    return np.einsum("nij,nj->ni", rot, local)


def place(world: BilliardsWorld, spots: dict[str, tuple[float, float]]) -> None:
    """Fresh state: the named balls at their spots, the others parked in a row, all at rest."""
    world.reset(np.random.default_rng(0))
    xy = []
    parked = 0
    for name in world.ball_names:
        if name in spots:
            xy.append(spots[name])
        else:
            xy.append((-1.0 + 0.07 * parked, PARK_Y))
            parked += 1
    world.place_balls(np.array(xy, float))
    world.enable_tip(False)
    mujoco.mj_forward(world.model, world.data)
    for _ in range(int(SETTLE / world.model.opt.timestep)):  # sink into the cloth, at rest
        world.step()
    world.data.qvel[:] = 0.0


def launch(world: BilliardsWorld, ball: str, velocity: tuple[float, float],
           spin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
    """Give ``ball`` a horizontal ``velocity`` (m/s) and ``spin`` (world, rad/s)."""
    i = world.ball_names.index(ball)
    d = world.collider.qvel[i]
    world.data.qvel[d:d + 3] = [velocity[0], velocity[1], 0.0]
    rot = world.data.xmat[world.collider.bodies[i]].reshape(3, 3)
    world.data.qvel[d + 3:d + 6] = rot.T @ np.asarray(spin, float)


def run(world: BilliardsWorld, duration: float, every: int = 1) -> Trace:
    """Step ``world`` for ``duration`` seconds, recording every ``every``-th step."""
    model, data = world.model, world.data
    detector = EventDetector(model, world.ball_names, t0=float(data.time))
    t0 = float(data.time)
    ts, pos, vel, spin, energy = [], [], [], [], []
    steps = int(round(duration / model.opt.timestep))
    for k in range(steps + 1):
        if k % every == 0:
            ts.append(float(data.time) - t0)
            pos.append(world.ball_positions())
            vel.append(world.ball_velocities())
            spin.append(_spins(world))
            energy.append(ball_energy(world))
        if k == steps:
            break
        hit = world.step()
        detector.update(data, world.potted, hit.balls, world.off_table, hit.cushions)
    return Trace(np.array(ts), np.array(pos), np.array(vel), np.array(spin), np.array(energy),
                 list(detector.events), tuple(world.ball_names), world.potted.copy(),
                 world.off_table.copy())
