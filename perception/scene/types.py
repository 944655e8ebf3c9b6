"""What the scene perceiver takes and gives: camera views in, frozen object lists out.

Frames: positions are metres in the robot's base frame (the frame the extrinsics map into);
camera poses are 4x4 camera -> base transforms in the OpenCV convention (x right, y down,
z forward), the convention of ``sim.render.camera_pose`` and of ROS optical frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OK = "ok"
NOTHING_HERE = "nothing_here"  # no camera showed the table: no list rather than a guess


@dataclass(frozen=True, eq=False)
class CameraView:
    """One RGB-D frame with its calibration. ``depth`` in metres along the optical axis (z);
    ``None`` or non-finite pixels mean no depth. ``T_base_cam``: camera -> base, 4x4."""

    name: str
    image: np.ndarray  # uint8 [H, W, 3] RGB
    depth: np.ndarray | None  # float [H, W] metres
    K: np.ndarray  # 3x3 pinhole intrinsics, pixel centres at integers
    T_base_cam: np.ndarray | None  # None: extrinsics unknown (the view is refused)
    stamp: float  # seconds: when the frame was taken


@dataclass(frozen=True)
class SceneObject:
    """A perceived (or, built from ground truth, a true) object on the table."""

    id: int  # stable over frames while the tracker follows the object
    color: str
    shape: str  # "cube" | "cylinder"
    position: tuple[float, float, float]  # centre, base frame, m
    size: tuple[float, float, float]  # measured footprint width, footprint depth, height (m)
    yaw: float | None = None  # cube: rotation about z, wrapped to [-pi/4, pi/4); None otherwise
    color_confidence: float = 1.0  # 0..1: how much closer the pixels are to this colour than the next
    shape_confidence: float = 1.0  # 0..1: share of the tracked evidence for this shape
    stamp: float = 0.0  # when the object was last seen
    source: tuple[str, ...] = ()  # cameras that saw it at ``stamp``
    visible: bool = True  # seen in the frame this list belongs to (False: remembered, occluded)

    @property
    def description(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Receptacle:
    kind: str  # "bowl" | "plate"
    position: tuple[float, float, float]  # centre of its base on the table, base frame, m
    radius: float  # m, outer
    stamp: float = 0.0
    source: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return self.kind


@dataclass(frozen=True)
class ScenePercept:
    """Everything perceived at ``stamp``. ``status`` is ``OK`` or ``NOTHING_HERE`` (then both lists
    are empty and ``reason`` says why); ``views`` gives each camera's own status."""

    status: str
    stamp: float
    objects: tuple[SceneObject, ...] = ()
    receptacles: tuple[Receptacle, ...] = ()
    sources: tuple[str, ...] = ()  # cameras whose view was used
    views: tuple[tuple[str, str], ...] = ()  # (camera, "ok" | why it was not used)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True, eq=False)
class Detection:
    """One object in one frame, before tracking (internal to the perceiver, kept public for tests)."""

    color: str
    color_confidence: float
    color_votes: float  # confidence-weighted pixels for the colour (clipped pixels count less)
    shape: str
    cube_score: float  # > 0: looks like a cube, < 0: like a cylinder; magnitude = certainty
    position: np.ndarray  # [3] base frame
    size: tuple[float, float, float]
    yaw: float | None
    pixels: int
    truncated: bool  # touches the image border: part of it may be outside the view
    camera: str
    points: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 3)))
