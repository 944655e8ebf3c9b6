"""Damped least-squares inverse kinematics on the TCP site (position and orientation).

Each iteration linearises the TCP pose with ``mujoco.mj_jacSite`` and takes the step

    dq = J^T (J J^T + lambda^2 I)^-1 e,   e = [position error; orientation error (axis-angle)]

which stays bounded near singularities, where the plain pseudo-inverse blows up. The seventh
(redundant) degree of freedom is spent pulling the arm gently towards a rest posture in the
null space of J, so the elbow does not wander over a long episode. The solve runs on a private
``MjData`` so the simulated robot is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.tabletop.arm import HOME_QPOS, JOINT_LIMITS


def orientation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (world frame) that turns rotation matrix ``current`` into ``target``."""
    r = target @ current.T
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, r.reshape(-1))
    if quat[0] < 0:  # the short way round
        quat = -quat
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


@dataclass
class IKResult:
    qpos: np.ndarray
    pos_error: float  # metres
    rot_error: float  # radians
    iterations: int


class DampedLeastSquaresIK:
    """Solve for arm joint angles that put ``site`` at a target pose."""

    def __init__(self, model: mujoco.MjModel, site: int, qpos_adr: np.ndarray, dof_adr: np.ndarray,
                 damping: float = 0.05, max_iters: int = 30, pos_tol: float = 5e-4,
                 rot_tol: float = 5e-3, nullspace_gain: float = 0.05,
                 rest: np.ndarray = HOME_QPOS) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.site, self.qpos_adr, self.dof_adr = site, np.asarray(qpos_adr), np.asarray(dof_adr)
        self.damping, self.max_iters = damping, max_iters
        self.pos_tol, self.rot_tol, self.nullspace_gain = pos_tol, rot_tol, nullspace_gain
        self.rest = np.asarray(rest, dtype=float)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def site_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: (position, 3x3 rotation) of the site for arm joints ``q``."""
        self.data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(self, target_pos: np.ndarray, target_mat: np.ndarray, q_init: np.ndarray) -> IKResult:
        q = np.clip(np.asarray(q_init, dtype=float).copy(), JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])
        lam2 = self.damping ** 2
        pos_err = rot_err = np.inf
        it = 0
        for it in range(1, self.max_iters + 1):
            pos, mat = self.site_pose(q)
            e_pos = target_pos - pos
            e_rot = orientation_error(target_mat, mat)
            pos_err, rot_err = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
            if pos_err < self.pos_tol and rot_err < self.rot_tol:
                break
            mujoco.mj_comPos(self.model, self.data)  # jacobians need the com-based quantities
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            J = np.vstack([self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]])
            e = np.concatenate([e_pos, e_rot])
            JJt = J @ J.T + lam2 * np.eye(6)
            dq = J.T @ np.linalg.solve(JJt, e)
            # Null-space pull towards the rest posture: changes no TCP pose to first order.
            null = np.eye(len(q)) - J.T @ np.linalg.solve(JJt, J)
            dq += null @ (self.nullspace_gain * (self.rest - q))
            q = np.clip(q + dq, JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])
        else:
            pos, mat = self.site_pose(q)
            pos_err = float(np.linalg.norm(target_pos - pos))
            rot_err = float(np.linalg.norm(orientation_error(target_mat, mat)))
        return IKResult(q, pos_err, rot_err, it)
