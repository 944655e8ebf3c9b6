"""Pixels <-> the table plane: a calibrated camera looking at a flat table.

A ball's centre is always ``ball_radius_mm`` above the cloth, so a pixel where a ball's centre
appears back-projects to exactly one point: the ray through it meets the plane z = R (table frame).
That is exact for any camera pose (overhead or the player's oblique view), needs no depth, and is
a handful of vectorised multiply-adds per point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.billiards.types import TableGeometry
from perception.errors import PerceptionError


@dataclass(frozen=True)
class TableCamera:
    """One camera (intrinsics ``K``, OpenCV ``cam_to_world``) seeing the table ``geometry``.

    Internally everything is in the table frame (mm): ``R_ct`` rotates camera vectors into it and
    ``c_t`` is the camera centre there.
    """

    K: np.ndarray
    K_inv: np.ndarray
    R_ct: np.ndarray  # camera -> table rotation
    c_t: np.ndarray  # camera centre, table frame, mm
    R_tc: np.ndarray  # table -> camera rotation
    t_tc: np.ndarray  # table -> camera translation, mm

    @staticmethod
    def build(K: np.ndarray, cam_to_world: np.ndarray, geometry: TableGeometry) -> "TableCamera":
        K = np.asarray(K, float)
        T = np.asarray(cam_to_world, float)
        if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise PerceptionError(f"intrinsics must be a 3x3 matrix with positive focal lengths, got {K.tolist()}")
        if T.shape != (4, 4):
            raise PerceptionError(f"the camera pose must be a 4x4 camera->world transform, got shape {T.shape}")
        # table (m) -> world; we want camera -> table (mm).
        world_to_table = np.linalg.inv(np.asarray(geometry.table_to_world, float))
        cam_to_table = world_to_table @ T
        R_ct = cam_to_table[:3, :3]
        c_t = cam_to_table[:3, 3] * 1000.0
        return TableCamera(K=K, K_inv=np.linalg.inv(K), R_ct=R_ct, c_t=c_t, R_tc=R_ct.T,
                           t_tc=-R_ct.T @ c_t)

    def to_table(self, uv: np.ndarray, height_mm: float) -> np.ndarray:
        """[N, 2] pixels (x right, y down; pixel centres at integers) -> [N, 2] table mm on the
        plane z = ``height_mm``. Rays parallel to the plane or pointing away give NaN."""
        uv = np.atleast_2d(np.asarray(uv, float))
        rays = np.c_[uv, np.ones(len(uv))] @ (self.R_ct @ self.K_inv).T  # table-frame directions
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (height_mm - self.c_t[2]) / rays[:, 2]
        s = np.where(s > 0, s, np.nan)
        return self.c_t[:2] + s[:, None] * rays[:, :2]

    def to_pixels(self, xy_mm: np.ndarray, height_mm: float) -> np.ndarray:
        """[N, 2] table mm at height ``height_mm`` -> [N, 2] pixels (NaN behind the camera)."""
        xy = np.atleast_2d(np.asarray(xy_mm, float))
        P = np.c_[xy, np.full(len(xy), height_mm)] @ self.R_tc.T + self.t_tc
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(P[:, 2] > 1e-6, P[:, 2], np.nan)
            q = P @ self.K.T
            return q[:, :2] / z[:, None]

    def ball_radius_px(self, xy_mm: np.ndarray, radius_mm: float) -> np.ndarray:
        """Apparent radius (pixels) of a ball centred at ``xy_mm``: f * R / distance."""
        xy = np.atleast_2d(np.asarray(xy_mm, float))
        P = np.c_[xy, np.full(len(xy), radius_mm)] - self.c_t
        return self.K[0, 0] * radius_mm / np.linalg.norm(P, axis=1)


def on_table(xy_mm: np.ndarray, geometry: TableGeometry, margin_mm: float = 0.0) -> np.ndarray:
    """[N] bool: the ball centre lies within the cushion lines (grown by ``margin_mm``)."""
    xy = np.atleast_2d(np.asarray(xy_mm, float))
    return ((np.abs(xy[:, 0]) <= geometry.half_length_mm - geometry.ball_radius_mm + margin_mm)
            & (np.abs(xy[:, 1]) <= geometry.half_width_mm - geometry.ball_radius_mm + margin_mm))


def nearest_pocket(xy_mm: np.ndarray, geometry: TableGeometry) -> tuple[str, float]:
    """(name, distance in mm) of the pocket whose opening is nearest to ``xy_mm``."""
    names = list(geometry.pockets)
    centres = np.array([geometry.pockets[n] for n in names], float)
    d = np.linalg.norm(centres - np.asarray(xy_mm, float)[:2], axis=1)
    k = int(np.argmin(d))
    return names[k], float(d[k])
