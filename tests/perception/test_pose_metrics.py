"""BOP metrics against hand-computed cases, including the cue's continuous symmetry."""

import numpy as np
import pytest

import sim.billiards.cue as cue_mod
from perception.pose import metrics as M
from perception.pose.model import box_model, cue_model, cylinder_model


def rot(axis, deg):
    a = np.radians(deg)
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * Kx + (1 - np.cos(a)) * Kx @ Kx


def pose(R=np.eye(3), t=(0, 0, 0)):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def test_translation_only_errors_are_the_offset():
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    gt, est = pose(t=(0, 0, 1)), pose(t=(0.003, 0.004, 1))
    assert M.add(est, gt, pts) == pytest.approx(0.005)
    assert M.translation_error_mm(est, gt) == pytest.approx(5.0)
    assert M.rotation_error_deg(est[:3, :3], gt[:3, :3]) == pytest.approx(0.0, abs=1e-6)


def test_rotation_error_and_add_by_hand():
    gt, est = pose(), pose(rot([0, 0, 1], 90))
    assert M.rotation_error_deg(est[:3, :3], gt[:3, :3]) == pytest.approx(90.0)
    # point (1,0,0) moves to (0,1,0): distance sqrt(2); the origin does not move
    pts = np.array([[1, 0, 0], [0, 0, 0]], float)
    assert M.add(est, gt, pts) == pytest.approx(np.sqrt(2) / 2)
    # ADD-S: each true point finds its closest estimated one: (1,0,0) -> origin (1), origin -> 0
    assert M.adds(est, gt, pts) == pytest.approx(0.5)


def test_cue_roll_about_its_axis_costs_nothing_under_symmetry():
    cue = cue_model()
    pts = cue.surface_rings(100, 36)
    gt = pose(rot([1, 0.2, 0], 30), (0.1, 0.0, 1.2))
    rolled = gt.copy()
    rolled[:3, :3] = gt[:3, :3] @ rot([0, 0, 1], 73)
    assert M.add(rolled, gt, pts) > 0.005  # ADD sees the roll ...
    assert M.adds(rolled, gt, pts) < 0.0015  # ... ADD-S (nearly) does not (sampling density)
    assert M.mssd(rolled, gt, pts, cue.symmetries(360)) < 1e-3  # and MSSD not at all
    assert M.cue_axis_error_deg(rolled, gt) == pytest.approx(0.0, abs=1e-6)
    assert M.cue_tip_error_mm(rolled, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.symmetric_rotation_error_deg(rolled, gt, cue.symmetries(360)) < 0.6


def test_cue_axis_and_tip_errors_by_hand():
    gt = pose(t=(0, 0, 1))
    tilted = pose(rot([1, 0, 0], 2.0), (0.003, 0, 1.004))
    assert M.cue_axis_error_deg(tilted, gt) == pytest.approx(2.0)
    assert M.cue_tip_error_mm(tilted, gt) == pytest.approx(5.0)
    # MSSD of a tilt about the tip: the butt moves most, L * sin(2 deg) (+ its radius' share)
    cue = cue_model()
    tilt_only = pose(rot([1, 0, 0], 2.0), (0, 0, 1))
    e = M.mssd(tilt_only, gt, cue.sample_surface(2000), cue.symmetries())
    assert e == pytest.approx(2 * 1.45 * np.sin(np.radians(1.0)), rel=0.03)


def test_recall_and_auc():
    errs = np.array([0.0005, 0.02, 0.05, 0.2])
    assert M.recall(errs, 0.03) == 0.5
    # AUC over 100 thresholds 1..100 mm: 0.5 mm passes all 100, 20 mm passes 80 (21..100 mm),
    # 50 mm passes 50, 200 mm none -> (100 + 80 + 50 + 0) / 400
    assert M.auc(errs) == pytest.approx((100 + 80 + 50) / 400)


def test_models_diameter_and_symmetries():
    cue = cue_model()
    assert cue.diameter == pytest.approx(np.hypot(1.45, 0.021))
    box = box_model("cube", (0.02, 0.02, 0.02))
    assert len(box.symmetries()) == 24 and box.diameter == pytest.approx(2 * np.sqrt(3) * 0.02)
    assert len(box_model("b", (0.01, 0.02, 0.03)).symmetries()) == 4
    cyl = cylinder_model("c", 0.02, 0.03)
    pts = cyl.sample_surface(500)
    r = np.hypot(pts[:, 0], pts[:, 1])
    on_side = np.isclose(r, 0.02)
    assert on_side.mean() > 0.5 and np.all(np.abs(pts[~on_side, 2]) == pytest.approx(0.03))
    # a cube turned 90 degrees about any axis is the same cube
    T = pose(rot([0, 1, 0], 90), (0, 0, 0.5))
    assert M.symmetric_rotation_error_deg(T, pose(t=(0, 0, 0.5)), box.symmetries()) < 1e-6


def test_cue_model_matches_the_simulator_constants():
    cue = cue_model()
    assert cue.dims == (cue_mod.CUE_LENGTH, cue_mod.TIP_RADIUS, cue_mod.BUTT_RADIUS)
    assert cue.parts[0].z1 == pytest.approx(cue_mod.TIP_LENGTH)
    shaft = cue.parts[1]
    assert shaft.rgb == tuple(cue_mod.SHAFT_RGBA[:3])
    assert shaft.z1 == pytest.approx(3 * cue_mod.CUE_LENGTH / cue_mod.N_SEGMENTS)
