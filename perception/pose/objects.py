"""Pose of the tabletop's primitive objects (boxes, cylinders) from RGB-D: colour mask -> depth
points -> ICP against the model's surface, from a few initial orientations.

The objects are small and textureless, so their pose is fixed by shape alone: what depth gives.
Symmetric objects are handled by the metrics (a cube turned 90 degrees is the same cube), so any
of the equivalent answers is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.errors import PerceptionError
from perception.pose.estimator import check_intrinsics
from perception.pose.init import backproject
from perception.pose.model import RigidObjectModel
from perception.pose.segment import ColorSegmenter
from perception.threads import single_threaded


def _kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising |R src + t - dst|^2."""
    cs, cd = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((src - cs).T @ (dst - cd))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, cd - R @ cs


def _nn_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T
    return d2.argmin(1)


def icp(obs: np.ndarray, model_pts: np.ndarray, R: np.ndarray, t: np.ndarray, iters: int = 25
        ) -> tuple[np.ndarray, np.ndarray, float]:
    """Align the model to the observed points (observed -> nearest model point, point-to-point)."""
    err = np.inf
    for _ in range(iters):
        # observed points in the model frame, matched to their nearest model points
        local = (obs - t) @ R
        idx = _nn_index(local, model_pts)
        matched = model_pts[idx]
        R_new, t_new = _kabsch(matched, obs)
        R, t = R_new, t_new
        err = float(np.linalg.norm(matched @ R.T + t - obs, axis=1).mean())
    return R, t, err


@dataclass
class ObjectPoseEstimator:
    """``estimate(image, depth, K) -> 4x4`` for a box or cylinder of known size and colour."""

    model: RigidObjectModel
    segmenter: object = None  # default: the model's colour
    n_model_points: int = 400  # surface samples for ICP
    max_points: int = 300  # observed points used (subsampled beyond): ICP cost is quadratic
    last: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.segmenter is None:
            if self.model.rgb is None:
                raise PerceptionError(f"model {self.model.name!r} has no colour to segment by")
            self.segmenter = ColorSegmenter(tuple(self.model.rgb), tol=0.05, min_pixels=20)
        self._pts = self.model.sample_surface(self.n_model_points, seed=0)

    @single_threaded
    def estimate(self, image: np.ndarray, depth: np.ndarray | None, K: np.ndarray) -> np.ndarray:
        if depth is None:
            raise PerceptionError("object pose needs depth (RGB-D); RGB-only is cue-only for now")
        K = check_intrinsics(K)
        mask = self.segmenter(image, depth)
        P = backproject(mask, depth, K)
        if len(P) < 20:
            raise PerceptionError(f"{self.model.name} is not visible")
        if len(P) > self.max_points:
            P = P[np.random.default_rng(0).choice(len(P), self.max_points, replace=False)]
        c = P.mean(0)
        _, _, vt = np.linalg.svd(P - c, full_matrices=False)
        base = vt.T * np.sign(np.linalg.det(vt.T))
        # the surface seen is the near side: start the centre a half-size behind it
        half = float(np.mean(self.model.dims[:3] if self.model.kind == "box" else self.model.dims))
        c0 = c + c / np.linalg.norm(c) * half
        best = None
        for perm in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):  # which principal axis is the model's z
            R0 = base[:, perm] * np.array([1, 1, np.linalg.det(base[:, perm])])
            R, t, err = icp(P, self._pts, R0, c0)
            if best is None or err < best[2]:
                best = (R, t, err)
        R, t, err = best
        self.last = {"points": len(P), "residual": err, "mask": mask}
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, t
        return T
