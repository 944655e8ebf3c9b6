"""Pose errors as the BOP benchmark defines them, plus the cue's 5-DoF errors a player cares about.

Poses are 4x4 object->camera (or object->world: the errors do not care, as long as both poses
use the same frame). Distances are in metres unless a name says mm; angles in degrees.
References: Hodaň et al., "BOP: Benchmark for 6D Object Pose Estimation" (ADD, ADD-S, MSSD,
recall thresholds) and Xiang et al., PoseCNN (AUC of ADD-S up to 10 cm).
"""

from __future__ import annotations

import numpy as np


def _apply(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ T[:3, :3].T + T[:3, 3]


def rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray) -> float:
    """Angle of ``R_est R_gt^T`` in degrees."""
    c = (np.trace(R_est[:3, :3] @ R_gt[:3, :3].T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def translation_error_mm(T_est: np.ndarray, T_gt: np.ndarray) -> float:
    return float(1000.0 * np.linalg.norm(T_est[:3, 3] - T_gt[:3, 3]))


def add(T_est: np.ndarray, T_gt: np.ndarray, pts: np.ndarray) -> float:
    """Average distance between corresponding model points (for objects without symmetry)."""
    return float(np.linalg.norm(_apply(T_est, pts) - _apply(T_gt, pts), axis=1).mean())


def _nearest(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """For each row of ``a``, the distance to the closest row of ``b``."""
    out = np.empty(len(a))
    bb = (b ** 2).sum(1)
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk]
        d2 = (x ** 2).sum(1)[:, None] + bb[None] - 2 * x @ b.T
        out[i:i + chunk] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


def adds(T_est: np.ndarray, T_gt: np.ndarray, pts: np.ndarray) -> float:
    """ADD-S: average distance from each ground-truth point to the closest estimated point.

    Indistinguishable poses of a symmetric object (a cue rolled about its axis) score ~0.
    """
    return float(_nearest(_apply(T_gt, pts), _apply(T_est, pts)).mean())


def mssd(T_est: np.ndarray, T_gt: np.ndarray, pts: np.ndarray, symmetries: np.ndarray) -> float:
    """Maximum symmetry-aware surface distance: ``min_S max_p |e(p) - g(S p)|``."""
    e = _apply(T_est, pts)
    best = np.inf
    for S in symmetries:
        g = pts @ (T_gt[:3, :3] @ S).T + T_gt[:3, 3]
        best = min(best, float(np.linalg.norm(e - g, axis=1).max()))
    return best


def symmetric_rotation_error_deg(R_est: np.ndarray, R_gt: np.ndarray,
                                 symmetries: np.ndarray) -> float:
    """The rotation error to the closest symmetric equivalent of the ground truth."""
    return min(rotation_error_deg(R_est, R_gt[:3, :3] @ S) for S in symmetries)


def recall(errors: np.ndarray, threshold: float) -> float:
    """Share of errors strictly below ``threshold`` (0.1 x diameter for BOP's ADD(-S) recall)."""
    e = np.asarray(errors, float)
    return float(np.mean(e < threshold)) if len(e) else 0.0


def auc(errors: np.ndarray, max_threshold: float = 0.10, step: float = 0.001) -> float:
    """Area under the accuracy-vs-threshold curve for thresholds ``0..max`` (default ADD-S up to
    10 cm in 1 mm steps), normalised to [0, 1]."""
    e = np.asarray(errors, float)
    if len(e) == 0:
        return 0.0
    thresholds = np.arange(1, int(round(max_threshold / step)) + 1) * step
    return float(np.mean([(e < t).mean() for t in thresholds]))


# ------------------------------------------------------------------ cue, 5 degrees of freedom
def cue_axis_error_deg(T_est: np.ndarray, T_gt: np.ndarray) -> float:
    """Angle between the estimated and true cue axes (+z: tip toward butt), in degrees."""
    a, b = T_est[:3, 2], T_gt[:3, 2]
    c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def cue_tip_error_mm(T_est: np.ndarray, T_gt: np.ndarray) -> float:
    """Distance between the estimated and true tip (the cue frame's origin), in mm."""
    return translation_error_mm(T_est, T_gt)


def pose_errors(T_est: np.ndarray, T_gt: np.ndarray, model, n_points: int = 500) -> dict:
    """Every metric for one estimate, as a dict (the benchmark aggregates these)."""
    # axisymmetric models use ring grids so ADD-S has no sampling floor (see surface_rings)
    pts = (model.surface_rings() if model.kind in ("tapered_cylinder", "cylinder")
           else model.sample_surface(n_points, seed=0))
    syms = model.symmetries()
    out = {
        "add": add(T_est, T_gt, pts),
        "adds": adds(T_est, T_gt, pts),
        "mssd": mssd(T_est, T_gt, pts, syms),
        "rot_err_deg": symmetric_rotation_error_deg(T_est, T_gt, syms),
        "trans_err_mm": translation_error_mm(T_est, T_gt),
    }
    if model.kind == "tapered_cylinder":
        out["axis_err_deg"] = cue_axis_error_deg(T_est, T_gt)
        out["tip_err_mm"] = cue_tip_error_mm(T_est, T_gt)
    return out
