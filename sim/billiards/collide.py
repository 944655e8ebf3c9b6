"""Ball-ball collisions as instantaneous rigid-body impulses (restitution and Coulomb friction).

Why not MuJoCo's contact for this pair: a soft contact that a 1 ms step can integrate lasts about
10 ms, and while the balls overlap the line of centres turns, so fast cut shots were thrown thin
(2-8 deg at 1.5-3 m/s) where real throw is a few degrees thick, and overlapping springs in a
cluster gained 7-14 % energy. Phenolic balls touch for about 0.2 ms, so an instantaneous impulse
is the better model at any step we can afford: it is exact for a pair and never adds energy (the
normal impulse has restitution below 1; friction only removes slip, never reverses it).

Balls therefore do not collide with each other in MuJoCo (see ``table.py``: a ball's conaffinity
excludes other balls); ``BallCollider.resolve`` runs after every ``mj_step``. For a pair that came
into contact during the step it backs up to the moment of touch, applies the impulse with the
normal at that moment and moves both balls on with their new velocities for the rest of the
step, so the outcome does not depend on where in a step the touch fell. Clusters (a rack) are
resolved by repeated passes over the touching pairs until none is approaching.

Friction between the balls falls with the sliding speed at the contact, as measured by Alciatore
("Pool and Billiards Physics Principles by Coriolis and Others", TP A-14 fit
``mu = a + b * exp(-c * v)``): that is what makes cut-induced throw about 1-4 deg and smaller for
faster shots.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim.billiards import table

RESTITUTION = 0.93  # ball-ball, phenolic resin (published values 0.92-0.98)
FRICTION_A, FRICTION_B, FRICTION_C = 9.951e-3, 0.108, 1.088  # mu(v) = a + b exp(-c v), v in m/s
MAX_PASSES = 20  # a rack of 9 settles in a few passes; the cap only guards against a pathology


def ball_friction(slip_speed: float | np.ndarray) -> float | np.ndarray:
    """Ball-ball sliding friction at relative sliding speed ``slip_speed`` (m/s) at the contact."""
    return FRICTION_A + FRICTION_B * np.exp(-FRICTION_C * np.asarray(slip_speed))


def pair_impulse(n: np.ndarray, v1: np.ndarray, w1: np.ndarray, v2: np.ndarray, w2: np.ndarray,
                 R: float = table.BALL_RADIUS, m: float = table.BALL_MASS,
                 e: float = RESTITUTION) -> np.ndarray:
    """Impulse on ball 1 (ball 2 gets its negative) for unit normal ``n`` from ball 1 to ball 2.

    Equal solid spheres: the normal part gives relative normal speed ``-e`` times the approach
    speed; the tangential part opposes the slip of the contact points and is capped both by
    ``mu * J_n`` and by what stops the slip (tangential effective mass m/7 for two spheres).
    """
    slip_1 = v1 + np.cross(w1, R * n)
    slip_2 = v2 + np.cross(w2, -R * n)
    rel = slip_1 - slip_2
    approach = float(rel @ n)
    if approach <= 0.0:
        return np.zeros(3)
    jn = (1.0 + e) * m * approach / 2.0
    slip = rel - approach * n
    s = float(np.linalg.norm(slip))
    jt = 0.0 if s < 1e-12 else min(float(ball_friction(s)) * jn, m * s / 7.0)
    tangential = -jt * slip / s if s >= 1e-12 else np.zeros(3)
    return -jn * n + tangential


class BallCollider:
    """Resolves the ball-ball collisions of one ``BilliardsWorld`` after each physics step."""

    def __init__(self, model: mujoco.MjModel, ball_names: tuple[str, ...]) -> None:
        obj = mujoco.mjtObj
        joints = [mujoco.mj_name2id(model, obj.mjOBJ_JOINT, n) for n in ball_names]
        self.qpos = np.array([model.jnt_qposadr[j] for j in joints])
        self.qvel = np.array([model.jnt_dofadr[j] for j in joints])
        self.bodies = np.array([mujoco.mj_name2id(model, obj.mjOBJ_BODY, n) for n in ball_names])
        self.R = table.BALL_RADIUS
        self.m = table.BALL_MASS
        self.inertia = 0.4 * self.m * self.R**2
        self.dt = float(model.opt.timestep)
        self.pos3 = self.qpos[:, None] + np.arange(3)  # [N, 3] qpos indices of the centres
        self.vel3 = self.qvel[:, None] + np.arange(3)  # [N, 3] qvel indices of the velocities
        n = len(ball_names)
        self._i, self._j = np.triu_indices(n, 1)

    def resolve(self, data: mujoco.MjData, out_of_play: np.ndarray) -> list[tuple[int, int]]:
        """Apply this step's collisions in ``data``; returns the (i, j) ball pairs that collided."""
        p = data.qpos[self.pos3]
        gap2 = ((p[self._i] - p[self._j]) ** 2).sum(axis=1)
        live = gap2 < (2 * self.R) ** 2
        if not live.any():
            return []
        live &= ~out_of_play[self._i] & ~out_of_play[self._j]
        if not live.any():
            return []
        v = data.qvel[self.vel3]
        # Angular velocity of a free joint is in the body frame; work in the world frame.
        rot = data.xmat[self.bodies].reshape(-1, 3, 3)
        w = (rot @ data.qvel[self.vel3 + 3][:, :, None])[:, :, 0]
        pairs = list(zip(self._i[live].tolist(), self._j[live].tolist()))
        hit: list[tuple[int, int]] = []
        for _ in range(MAX_PASSES):
            changed = False
            for i, j in pairs:
                if self._collide(p, v, w, i, j):
                    changed = True
                    if (i, j) not in hit:
                        hit.append((i, j))
            if not changed:
                break
        for k in {b for pair in hit for b in pair}:
            a, d = self.qpos[k], self.qvel[k]
            data.qpos[a:a + 3] = p[k]
            data.qvel[d:d + 3] = v[k]
            data.qvel[d + 3:d + 6] = rot[k].T @ w[k]
        return hit

    def _collide(self, p: np.ndarray, v: np.ndarray, w: np.ndarray, i: int, j: int) -> bool:
        d = p[j] - p[i]
        dist = float(np.linalg.norm(d))
        dv = v[j] - v[i]
        if dist >= 2 * self.R or float(dv @ d) >= 0.0:
            return False  # apart, or touching but already separating
        # Back up to the moment of touch within this step: |d - dv*tau| = 2R, smallest tau >= 0.
        a, b, c = float(dv @ dv), -2.0 * float(d @ dv), dist * dist - 4 * self.R**2
        tau = 0.0
        if a > 1e-12:
            disc = b * b - 4 * a * c
            if disc > 0.0:
                tau = min(max((-b + np.sqrt(disc)) / (2 * a), 0.0), self.dt)  # c < 0: one root > 0
        n = d - dv * tau
        n /= np.linalg.norm(n)
        J = pair_impulse(n, v[i], w[i], v[j], w[j], self.R, self.m)
        if not J.any():
            return False
        dvi, dvj = J / self.m, -J / self.m
        v[i] += dvi
        v[j] += dvj
        # Ball j's arm is -R n and its impulse -J: the same torque R n x J as ball i.
        dw = np.cross(self.R * n, J) / self.inertia
        w[i] += dw
        w[j] += dw
        # Where the balls would be had they bounced at the touch, tau ago.
        p[i] += dvi * tau
        p[j] += dvj * tau
        return True


def cushion_impulse(n: np.ndarray, v: np.ndarray, w: np.ndarray, R: float = table.BALL_RADIUS,
                    m: float = table.BALL_MASS, e: float = table.CUSHION_RESTITUTION,
                    mu: float = table.CUSHION_FRICTION) -> np.ndarray:
    """Impulse on a ball from a cushion it touches along unit normal ``n`` (centre -> contact).

    Han (2005): one impulse at the contact; the normal part reverses ``e`` times the approach
    speed, the tangential part opposes the slip of the contact point and is capped both by
    ``mu`` times the normal part and by what stops the slip (effective mass 2/7 m for a solid
    sphere on a fixed point).
    """
    u = v + np.cross(w, R * n)  # contact point velocity
    approach = float(u @ n)
    if approach <= 0.0:
        return np.zeros(3)
    pn = (1.0 + e) * m * approach
    slip = u - approach * n
    s = float(np.linalg.norm(slip))
    jn = -pn * n
    if s < 1e-12:
        return jn
    return jn - slip * (min(mu * pn, 2.0 / 7.0 * m * s) / s)


class CushionCollider:
    """Resolves ball-cushion collisions (the nose capsules of ``table.cushion_noses``) per step.

    For a ball within touching distance of a nose and moving into it, it backs up to the moment
    of touch, applies ``cushion_impulse`` there and moves the ball on with its new velocity for
    the rest of the step. The impulse's vertical part is taken by the cloth while the ball is on
    it (the cloth's reaction is vertical through the centre: it changes no spin), as in Han's
    model, so a cushion never bounces a ball off the table; its moment changes the spin in full.
    """

    def __init__(self, model: mujoco.MjModel, ball_names: tuple[str, ...]) -> None:
        obj = mujoco.mjtObj
        joints = [mujoco.mj_name2id(model, obj.mjOBJ_JOINT, n) for n in ball_names]
        self.pos3 = np.array([model.jnt_qposadr[j] + np.arange(3) for j in joints])
        self.vel3 = np.array([model.jnt_dofadr[j] + np.arange(3) for j in joints])
        self.bodies = np.array([mujoco.mj_name2id(model, obj.mjOBJ_BODY, n) for n in ball_names])
        noses = table.cushion_noses()
        self.names = [name for name, _, _ in noses]
        self.a = np.array([p0 for _, p0, _ in noses])  # [S, 3]
        self.d = np.array([p1 for _, _, p1 in noses]) - self.a
        self.dd = (self.d**2).sum(axis=1)
        self.R, self.m = table.BALL_RADIUS, table.BALL_MASS
        self.inertia = 0.4 * self.m * self.R**2
        self.reach = self.R + table.NOSE_RADIUS
        self.dt = float(model.opt.timestep)
        # A ball can only touch a nose with its centre this close to a cushion line.
        self._x_near = table.HALF_LENGTH - self.reach
        self._y_near = table.HALF_WIDTH - self.reach
        self._on_cloth_z = table.BED_Z + self.R + 0.002

    def resolve(self, data: mujoco.MjData, out_of_play: np.ndarray) -> list[tuple[int, str]]:
        """Apply this step's cushion collisions in ``data``; returns (ball index, cushion name)."""
        p = data.qpos[self.pos3]
        near = ((np.abs(p[:, 0]) > self._x_near) | (np.abs(p[:, 1]) > self._y_near)) & ~out_of_play
        if not near.any():
            return []
        hits = []
        for i in np.flatnonzero(near):
            pi = p[i]
            t = np.clip(((pi - self.a) * self.d).sum(axis=1) / self.dd, 0.0, 1.0)
            delta = self.a + t[:, None] * self.d - pi  # centre -> nearest point of each axis
            dist = np.sqrt((delta**2).sum(axis=1))
            k = int(np.argmin(dist))
            if dist[k] >= self.reach:
                continue
            v = data.qvel[self.vel3[i]]
            n = delta[k] / dist[k]
            approach = float(v @ n)
            if approach <= 0.0:
                continue  # touching but already leaving
            tau = min((self.reach - dist[k]) / approach, self.dt)  # since the touch
            rot = data.xmat[self.bodies[i]].reshape(3, 3)
            w = rot @ data.qvel[self.vel3[i] + 3]
            J = cushion_impulse(n, v, w, self.R, self.m)
            dv = J / self.m
            if pi[2] < self._on_cloth_z and dv[2] < 0.0:
                dv[2] = 0.0  # pressed into the cloth: the cloth takes it
            w = w + np.cross(self.R * n, J) / self.inertia
            data.qvel[self.vel3[i]] = v + dv
            data.qvel[self.vel3[i] + 3] = rot.T @ w
            data.qpos[self.pos3[i]] = pi + dv * tau  # as if it had bounced at the touch
            hits.append((int(i), self.names[k]))
        return hits
