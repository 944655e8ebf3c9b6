"""Reading a video's camera sidecar (``<video stem>.calib.json``) and its optional depth file.

The format is defined where shots are recorded (``sim/billiards/sidecar.py``, version
``embodied-billiards-camera/1``); perception reads it without the simulator. Every mistake in
the file is one ``PerceptionError`` line naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception.billiards.types import TableGeometry
from perception.errors import PerceptionError

FORMAT = "embodied-billiards-camera/1"
SUFFIX = ".calib.json"


@dataclass(frozen=True)
class CameraSidecar:
    """A calibrated camera over a known table; ``aimed_ball`` when the player's intent is known."""

    K: np.ndarray  # 3x3, OpenCV pixel convention
    cam_to_world: np.ndarray  # 4x4, OpenCV axes, metres
    geometry: TableGeometry
    fps: float | None
    aimed_ball: str | None
    camera: str | None = None


def sidecar_path(video: str | Path) -> Path:
    video = Path(video)
    return video.with_name(video.stem + SUFFIX)


def _matrix(meta: dict, key: str, shape: tuple[int, int], path: Path) -> np.ndarray:
    try:
        m = np.asarray(meta[key], float)
    except KeyError:
        raise PerceptionError(f"{path}: missing {key!r}") from None
    except (TypeError, ValueError):
        raise PerceptionError(f"{path}: {key!r} is not a numeric matrix") from None
    if m.shape != shape or not np.isfinite(m).all():
        raise PerceptionError(f"{path}: {key!r} must be a finite {shape[0]}x{shape[1]} matrix, got shape {m.shape}")
    return m


def table_geometry(t: Any, path: str | Path = "the sidecar") -> TableGeometry:
    """The sidecar's ``table`` object as a ``TableGeometry`` (``path`` names it in errors)."""
    if not isinstance(t, dict):
        raise PerceptionError(f"{path}: 'table' must be an object")
    try:
        return TableGeometry(
            half_length_mm=float(t["half_length_mm"]), half_width_mm=float(t["half_width_mm"]),
            ball_radius_mm=float(t["ball_radius_mm"]),
            pockets={str(k): (float(v[0]), float(v[1])) for k, v in t["pockets"].items()},
            ball_colours={str(k): (float(v[0]), float(v[1]), float(v[2])) for k, v in t["ball_colours"].items()},
            cloth_colour=tuple(float(c) for c in t["cloth_colour"][:3]),
            table_to_world=_matrix(t, "table_to_world", (4, 4), path) if "table_to_world" in t else np.eye(4),
            cue_ball=str(t.get("cue_ball", "cue")),
        )
    except KeyError as exc:
        raise PerceptionError(f"{path}: 'table' is missing {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        raise PerceptionError(f"{path}: malformed 'table' ({exc})") from None


def load_sidecar(path: str | Path) -> CameraSidecar:
    """Parse a sidecar; a missing or malformed file is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise PerceptionError(f"no camera sidecar at {path} (the coach needs the camera's K, pose and the "
                              f"table; `embodied coach --record-demo DIR` writes an example)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PerceptionError(f"cannot read the sidecar {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PerceptionError(f"{path} is not a camera sidecar (expected \"format\": \"{FORMAT}\")")
    geometry = table_geometry(meta.get("table"), path)
    K = _matrix(meta, "K", (3, 3), path)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise PerceptionError(f"{path}: 'K' needs positive focal lengths")
    aimed = meta.get("aimed_ball")
    if aimed is not None and aimed not in geometry.ball_colours:
        raise PerceptionError(f"{path}: aimed_ball {aimed!r} is not one of the table's balls "
                              f"({', '.join(geometry.ball_colours)})")
    fps = meta.get("fps")
    return CameraSidecar(K=K, cam_to_world=_matrix(meta, "camera_pose", (4, 4), path), geometry=geometry,
                         fps=None if fps is None else float(fps), aimed_ball=aimed,
                         camera=meta.get("camera"))


def load_depth(path: str | Path, n_frames: int, size: tuple[int, int]) -> np.ndarray:
    """Depth frames (float32 [T, H, W], metres) from .npy, or .npz (key ``depth`` or its only array).

    ``n_frames`` and ``size`` (H, W) are the video's: the depth must match them frame for frame.
    """
    path = Path(path)
    if not path.is_file():
        raise PerceptionError(f"no depth file at {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.files)
                key = "depth" if "depth" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise PerceptionError(f"{path}: expected an array named 'depth' (found {', '.join(keys)})")
                depth = npz[key]
        else:
            depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PerceptionError(f"cannot read depth from {path}: {exc}") from None
    if depth.ndim != 3 or depth.shape[0] != n_frames or depth.shape[1:] != tuple(size):
        raise PerceptionError(f"{path}: depth must be [{n_frames}, {size[0]}, {size[1]}] to match the video, "
                              f"got {list(depth.shape)}")
    return depth.astype(np.float32, copy=False)
