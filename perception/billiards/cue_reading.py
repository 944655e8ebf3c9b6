"""The cue at the strike: the cue tracker (``perception.pose``) run over the frames just before it.

During the stroke the cue moves along its own axis, so its direction and tilt over the last few
frames before the tip meets the ball are the direction and tilt it struck with. Tracking only
those frames (not the whole clip) keeps the cost to a few fits. Each pose is taken to the table
frame; the reading is the median over the frames where the tracker found the cue.

Depth matters: from RGB alone the cue's tilt is almost unobservable (a long thin cylinder seen
from above or obliquely looks the same tilted a few degrees), so without depth the elevation is
reported as unknown and only the direction is given. Measured on the simulator's overhead view at
640x480, frames decoded from the recorded mp4: RGB-D within 0.1 deg in direction and 0.3 deg in
elevation; RGB alone 0.1-0.9 deg in direction but elevation off by up to ~25 deg on other shots.
At 320x240 the shaft is two pixels wide and video compression smears its colour away: the cue
is not found (the reading is None) -- record at 640x480.
"""

from __future__ import annotations

import numpy as np

from perception.billiards.analysis import CueReading, direction_deg
from perception.billiards.types import TableGeometry

WINDOW_FRAMES = 6  # frames before the strike that are tracked


def cue_at_strike(frames: np.ndarray, times: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray,
                  geometry: TableGeometry, strike_t: float, depth: np.ndarray | None = None,
                  window: int = WINDOW_FRAMES) -> CueReading | None:
    """The cue's direction and elevation at ``strike_t``; None when the tracker never found it.

    ``frames`` uint8 [T, H, W, 3] with ``times`` [T] s; ``depth`` float [T, H, W] metres or None;
    ``K`` 3x3 (OpenCV pixel centres), ``cam_to_world`` 4x4 (OpenCV axes, metres).
    """
    from perception.pose.track import CueTracker  # lazy: torch only when the cue is read

    times = np.asarray(times, float)
    end = int(np.searchsorted(times, strike_t, side="right"))  # frames at or before the strike
    start = max(end - window, 0)
    world_to_table = np.linalg.inv(np.asarray(geometry.table_to_world, float))
    cam_to_table = world_to_table @ np.asarray(cam_to_world, float)
    tracker = CueTracker()
    poses = []
    for k in range(start, end):
        pose = tracker.update(frames[k], None if depth is None else depth[k], K)
        # A fit whose silhouette matches poorly is a wrong pose, not a noisy one: drop it.
        if pose is not None and tracker.estimator.last.get("iou", 0.0) >= tracker.min_iou:
            poses.append(cam_to_table @ pose)  # cue -> table (metres)
    if not poses:
        return None
    butt = np.array([T[:3, 2] for T in poses])  # +z: from the tip toward the butt
    headings = np.array([direction_deg(-z[:2]) for z in butt])
    # Median of angles near each other: unwrap around the first one.
    ref = headings[0]
    heading = float((np.median((headings - ref + 180.0) % 360.0 - 180.0) + ref + 180.0) % 360.0 - 180.0)
    elevation = float(np.median(np.degrees(np.arcsin(np.clip(butt[:, 2], -1.0, 1.0)))))
    tip = poses[-1][:3, 3] * 1000.0
    return CueReading(t=float(strike_t), direction_deg=heading,
                      elevation_deg=elevation if depth is not None else None,
                      tip_mm=(float(tip[0]), float(tip[1]), float(tip[2])),
                      source="rgb-d" if depth is not None else "rgb", frames=len(poses))
