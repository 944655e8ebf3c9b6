"""Cameras for every world: RGB and depth images, intrinsics and extrinsics in the OpenCV convention.

Images come out upright (row 0 is the top of the picture, as OpenCV and PIL expect; robosuite's
default is upside-down, which we avoid). Poses use the OpenCV camera frame: x right, y down,
z forward; MuJoCo cameras look down their -z with y up, so the two differ by a 180° turn about x.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from sim.errors import SimError

# MuJoCo camera frame -> OpenCV camera frame.
_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])


def gl_hint(exc: BaseException) -> SimError:
    backend = os.environ.get("MUJOCO_GL", "(unset)")
    return SimError(
        f"cannot create an OpenGL context for rendering with MUJOCO_GL={backend} ({exc}); "
        "set MUJOCO_GL=egl (or MUJOCO_GL=osmesa) and make sure Mesa's libEGL/libOSMesa is installed"
    )


def intrinsics(model: mujoco.MjModel, camera: str, width: int, height: int) -> np.ndarray:
    """The 3x3 pinhole matrix K of ``camera`` rendered at ``width`` x ``height`` (square pixels).

    The principal point is ((W-1)/2, (H-1)/2): OpenCV puts pixel centres at integers, while
    MuJoCo's image centre W/2 is in continuous coordinates (half a pixel off, which measurably
    hurts silhouette alignment in render-and-compare pose refinement).
    """
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cam_id < 0:
        raise SimError(f"unknown camera {camera!r}")
    fovy = np.deg2rad(model.cam_fovy[cam_id])
    f = 0.5 * height / np.tan(0.5 * fovy)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def camera_pose(model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> np.ndarray:
    """4x4 camera -> world transform in the OpenCV camera convention (after ``mj_forward``)."""
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cam_id < 0:
        raise SimError(f"unknown camera {camera!r}")
    T = np.eye(4)
    T[:3, :3] = data.cam_xmat[cam_id].reshape(3, 3) @ _MJ_TO_CV
    T[:3, 3] = data.cam_xpos[cam_id]
    return T


def world_to_camera(model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> np.ndarray:
    """4x4 world -> camera transform (OpenCV convention): what maps object poses into the image."""
    T = camera_pose(model, data, camera)
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


class Cameras:
    """Renders a fixed set of named cameras at one size; depth (metres) on request.

    One ``mujoco.Renderer`` is shared by all cameras of a world: contexts are expensive and
    a robot has few cameras of one size.
    """

    def __init__(self, model: mujoco.MjModel, names: tuple[str, ...], width: int, height: int,
                 depth: bool = False) -> None:
        self.model = model
        self.names = tuple(names)
        self.width, self.height, self.depth = int(width), int(height), bool(depth)
        for name in self.names:
            intrinsics(model, name, width, height)  # validates the name
        self._renderer: mujoco.Renderer | None = None

    def _get(self) -> mujoco.Renderer:
        if self._renderer is None:
            # The offscreen buffer must hold the requested size.
            self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, self.width)
            self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, self.height)
            try:
                self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            except Exception as exc:  # noqa: BLE001 - any GL failure gets the same hint
                raise gl_hint(exc) from exc
        return self._renderer

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """``{name: uint8[H, W, 3]}`` plus ``{name + "_depth": float32[H, W]}`` when depth is on."""
        renderer = self._get()
        out: dict[str, np.ndarray] = {}
        for name in self.names:
            renderer.update_scene(data, camera=name)
            out[name] = renderer.render().copy()
            if self.depth:
                renderer.enable_depth_rendering()
                renderer.update_scene(data, camera=name)
                out[name + "_depth"] = renderer.render().astype(np.float32, copy=True)
                renderer.disable_depth_rendering()
        return out

    def K(self, name: str) -> np.ndarray:
        return intrinsics(self.model, name, self.width, self.height)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
