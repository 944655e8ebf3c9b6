"""The camera sidecar of a recorded shot: what a coach may know about a video besides its pixels.

A real installation measures its camera once (intrinsics, pose over the table) and its table
(size, pockets, ball colours); a simulated shot knows them exactly. Either way they travel as one
small JSON file beside the video, ``<video stem>.calib.json`` (``embodied coach`` finds it
there), so the coach never needs the simulator or its ground truth. Format (version 1)::

    {"format": "embodied-billiards-camera/1",
     "camera": "overhead",                 # a name, for people
     "fps": 30.0,
     "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],   # OpenCV pixel convention (centres at integers)
     "camera_pose": 4x4,                   # camera -> world, OpenCV axes, metres
     "depth_units": "metres",              # of the optional --depth file
     "aimed_ball": "red" | null,           # what the player meant to pot, when known
     "table": {"half_length_mm", "half_width_mm", "ball_radius_mm",
               "pockets": {name: [x_mm, y_mm]},           # opening centres, table frame
               "ball_colours": {name: [r, g, b]},         # in [0, 1]
               "cloth_colour": [r, g, b],
               "table_to_world": 4x4,                     # table frame (mm -> m) to world
               "cue_ball": "cue"}}

The table frame is the tracker's (``perception.billiards.types``): millimetres, origin at the
centre of the playing area, x along the length, the cloth at z = 0. Nothing in the file comes
from the shot's outcome: no event, no ball position.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.atomic import write_text
from sim.billiards import table
from sim.billiards.shot import ShotRecord
from sim.errors import SimError

FORMAT = "embodied-billiards-camera/1"
SUFFIX = ".calib.json"


def sidecar_path(video: str | Path) -> Path:
    """Where the sidecar of ``video`` lives: ``overhead.mp4`` -> ``overhead.calib.json``."""
    video = Path(video)
    return video.with_name(video.stem + SUFFIX)


def opencv_intrinsics(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """MuJoCo puts the principal point at the image centre in continuous coordinates (W/2); in
    OpenCV's convention (pixel centres at integers) that is (W-1)/2. Shift it when needed."""
    K = np.array(K, float)
    if abs(K[0, 2] - width / 2) < 1e-9 and abs(K[1, 2] - height / 2) < 1e-9:
        K[0, 2] -= 0.5
        K[1, 2] -= 0.5
    return K


def table_dict() -> dict:
    """The simulator's table in the sidecar's ``table`` layout (millimetres, table frame)."""
    to_world = np.eye(4)
    to_world[2, 3] = table.BED_Z
    return {
        "half_length_mm": table.HALF_LENGTH * 1000.0,
        "half_width_mm": table.HALF_WIDTH * 1000.0,
        "ball_radius_mm": table.BALL_RADIUS * 1000.0,
        "pockets": {name: [centre[0] * 1000.0, centre[1] * 1000.0]
                    for name, (centre, _) in table.POCKETS.items()},
        "ball_colours": {name: list(rgb) for name, rgb in table.BALLS},
        "cloth_colour": list(table.CLOTH_RGBA[:3]),
        "table_to_world": to_world.tolist(),
        "cue_ball": "cue",
    }


def sidecar_dict(record: ShotRecord, camera: str, width: int, height: int,
                 aimed_ball: str | None = None) -> dict:
    """The sidecar of ``camera``'s video of ``record`` (``aimed_ball`` defaults to its target)."""
    if camera not in record.K or camera not in record.camera_pose:
        raise SimError(f"the shot has no camera {camera!r}; it has: {', '.join(sorted(record.K)) or 'none'}")
    return {
        "format": FORMAT,
        "camera": camera,
        "fps": record.fps,
        "K": opencv_intrinsics(record.K[camera], width, height).tolist(),
        "camera_pose": np.asarray(record.camera_pose[camera], float).tolist(),
        "depth_units": "metres",
        "aimed_ball": aimed_ball if aimed_ball is not None else record.target,
        "table": table_dict(),
    }


def write_sidecar(record: ShotRecord, video: str | Path, camera: str, width: int, height: int,
                  aimed_ball: str | None = None) -> Path:
    """Write ``video``'s sidecar (see the module docstring); returns its path."""
    path = sidecar_path(video)
    write_text(path, json.dumps(sidecar_dict(record, camera, width, height, aimed_ball), indent=1))
    return path
