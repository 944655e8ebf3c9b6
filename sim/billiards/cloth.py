"""The cloth's friction on the balls: sliding friction, rolling resistance and spin decay.

Why not MuJoCo's contact friction: in MuJoCo's convex contact model a sliding contact also pushes
the bodies apart (a normal velocity that grows with the slip speed), so a ball struck at 5 m/s
hopped ~10 mm off the cloth, which is what carried full-power shots over the cushions. MuJoCo
keeps the cloth's normal support (a frictionless contact); the friction is the standard ball-on-
cloth motion model (Alciatore's "The Illustrated Principles of Pool and Billiards"; pooltool's
equations of motion are the same), applied as external forces each step:

- sliding: a force ``-mu_s m g`` against the slip of the contact point, at the contact point;
  when that would overshoot within the step, exactly the force that ends the slip (rolling);
- rolling: deceleration ``ROLL_DECEL`` (mu_roll g) with the spin kept matched to the speed;
- spin about the vertical: decays at ``SPIN_DECEL`` rad/s^2.

Only balls touching the cloth and moving feel it (not balls at rest, in the air, in a pocket, or
off the table). This runs every physics step for at most nine balls, so it is plain Python on
floats, one ball at a time, with the cross products spelled out: numpy's per-call overhead on
[9, 3] arrays made the vectorised version cost twice a whole ``mj_step``; this one costs less
than one, and nothing for balls at rest.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from sim.billiards import table

SPIN_DECEL = 10.0  # rad/s^2: vertical-axis spin decays (pooltool's default cloth: ~11)
CONTACT_BAND = 0.002  # m: a ball whose centre is this much above resting height is in the air
REST = 1e-9  # m/s (and m/s of R * spin): below this a ball is at rest and feels no friction


class ClothFriction:
    """Sets ``data.xfrc_applied`` of the balls before each ``mj_step``."""

    def __init__(self, model: mujoco.MjModel, ball_names: tuple[str, ...]) -> None:
        obj = mujoco.mjtObj
        joints = [mujoco.mj_name2id(model, obj.mjOBJ_JOINT, n) for n in ball_names]
        self.zadr = np.array([model.jnt_qposadr[j] + 2 for j in joints])
        self.dof6 = np.array([model.jnt_dofadr[j] + np.arange(6) for j in joints])  # [N, 6]
        self.bodies = np.array([mujoco.mj_name2id(model, obj.mjOBJ_BODY, n) for n in ball_names])
        self.dt = float(model.opt.timestep)
        self.R, self.m = table.BALL_RADIUS, table.BALL_MASS
        self.inertia = 0.4 * self.m * self.R**2
        self._z_lo, self._z_hi = table.BED_Z, table.BED_Z + self.R + CONTACT_BAND
        self._pushed = False  # whether any ball's xfrc_applied is non-zero

    def apply(self, data: mujoco.MjData, out_of_play: np.ndarray) -> None:
        if self._pushed:
            data.xfrc_applied[self.bodies] = 0.0
            self._pushed = False
        qv = data.qvel[self.dof6].tolist()  # per ball: linear (world), angular (body frame)
        z = data.qpos[self.zadr].tolist()
        out = out_of_play.tolist()
        xmat = None
        R, m, dt, inertia = self.R, self.m, self.dt, self.inertia
        full = table.CLOTH_SLIDE * m * table.GRAVITY
        # A force F at the contact point changes the slip by 3.5 F/m per second (1 + m R^2/I):
        # below this slip the full friction would overshoot within the step, and the ball rolls.
        stop = full * 3.5 * dt / m
        roll_dv, spin_dw = table.ROLL_DECEL * dt, SPIN_DECEL * dt
        c = inertia / (m * R)  # a torque c (z x f) keeps the spin matched to a force f's change
        rows, wrenches = [], []
        for i, (vx, vy, _, ax, ay, az) in enumerate(qv):
            if out[i] or not self._z_lo < z[i] < self._z_hi:
                continue
            if max(abs(vx), abs(vy), abs(ax), abs(ay), abs(az)) <= REST:
                continue
            if xmat is None:
                xmat = data.xmat[self.bodies].tolist()
            r = xmat[i]  # body -> world rotation, row-major
            wx = r[0] * ax + r[1] * ay + r[2] * az
            wy = r[3] * ax + r[4] * ay + r[5] * az
            wz = r[6] * ax + r[7] * ay + r[8] * az
            sx, sy = vx - R * wy, vy + R * wx  # slip of the contact point: v + w x (0, 0, -R)
            s = math.hypot(sx, sy)
            k = m / (3.5 * dt) if s <= stop else full / s
            fx, fy = -k * sx, -k * sy
            tx, ty = R * fy, -R * fx  # (0, 0, -R) x (fx, fy, 0)
            speed = math.hypot(vx, vy)
            if s <= stop and speed > 0.0:
                # Rolling resistance: slow the centre and the spin together so it keeps rolling.
                a = m * min(roll_dv, speed) / (dt * speed)
                rx, ry = -a * vx, -a * vy
                fx, fy = fx + rx, fy + ry
                tx, ty = tx - c * ry, ty + c * rx
            tz = -inertia * math.copysign(min(abs(wz), spin_dw), wz) / dt
            rows.append(self.bodies[i])
            wrenches.append((fx, fy, 0.0, tx, ty, tz))
        if rows:
            data.xfrc_applied[rows] = wrenches
            self._pushed = True
