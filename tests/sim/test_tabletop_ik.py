"""IK: the damped least-squares solver reaches reachable TCP poses within 5 mm, and the arm
model has the Panda's joint limits and link offsets."""

import mujoco
import numpy as np

from sim.tabletop.arm import HOME_QPOS, JOINT_LIMITS
from sim.tabletop.ik import DampedLeastSquaresIK
from sim.tabletop.scene import build_model


def _ik():
    model, ids = build_model()
    return model, ids, DampedLeastSquaresIK(model, ids.tcp_site, ids.arm_qpos, ids.arm_dof)


def test_panda_limits_and_offsets():
    model, ids, ik = _ik()
    jnt = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"joint{i}") for i in range(1, 8)]
    np.testing.assert_allclose(model.jnt_range[jnt], JOINT_LIMITS)
    assert model.jnt_range[jnt[3]].tolist() == [-3.0718, -0.0698]
    data = mujoco.MjData(model)
    data.qpos[ids.arm_qpos] = 0.0
    mujoco.mj_kinematics(model, data)
    body = lambda n: data.xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)]  # noqa: E731
    # Zero pose of the Panda: shoulder at 0.333, elbow 0.316 higher and 0.0825 forward, wrist
    # 0.384 above that and back, flange 0.088 forward and 0.107 down.
    np.testing.assert_allclose(body("link2"), [0, 0, 0.333], atol=1e-9)
    np.testing.assert_allclose(body("link4"), [0.0825, 0, 0.649], atol=1e-9)
    np.testing.assert_allclose(body("link5"), [0, 0, 1.033], atol=1e-9)
    np.testing.assert_allclose(body("hand"), [0.088, 0, 0.926], atol=1e-9)


def test_ik_reaches_targets_within_5mm():
    _, _, ik = _ik()
    _, down = ik.site_pose(HOME_QPOS)
    rng = np.random.default_rng(0)
    for _ in range(25):
        target = np.array([rng.uniform(0.3, 0.7), rng.uniform(-0.3, 0.3), rng.uniform(0.02, 0.4)])
        yaw = rng.uniform(-0.7, 0.7)
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
        res = ik.solve(target, rz @ down, HOME_QPOS)
        pos, mat = ik.site_pose(res.qpos)
        assert np.linalg.norm(pos - target) < 0.005, (target, pos)
        assert res.rot_error < 0.02
        assert np.all(res.qpos >= JOINT_LIMITS[:, 0]) and np.all(res.qpos <= JOINT_LIMITS[:, 1])


def test_ik_does_not_pretend_on_unreachable_target():
    _, _, ik = _ik()
    _, down = ik.site_pose(HOME_QPOS)
    res = ik.solve(np.array([1.5, 0.0, 0.3]), down, HOME_QPOS)  # beyond the arm's ~0.85 m reach
    assert res.pos_error > 0.3
