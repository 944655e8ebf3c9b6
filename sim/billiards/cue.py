"""The cue stick's geometry: one source of truth for the simulator and for perception's model.

The cue is a tapered cylinder, 1.45 m long, 6.5 mm radius at the tip and 14.5 mm at the butt.

Cue frame (what ``ShotRecord.cue_pose`` maps to the world):
    origin at the centre of the tip face, +z along the axis from the tip toward the butt;
    x and y are perpendicular to the axis (the cue is a solid of revolution, so their roll about
    z is arbitrary for perception; the simulator keeps x horizontal).
So the tip is ``pose @ [0, 0, 0, 1]`` and the butt is ``pose @ [0, 0, CUE_LENGTH, 1]``.

MuJoCo has no cone primitive, so the simulator draws the taper as ``N_SEGMENTS`` stacked
cylinders of equal length whose radius is the true radius at each segment's middle
(``segments()``); the largest radial error is half a segment's radius step (0.8 mm). Perception
may use the exact cone (``radius_at``) or the same segments. Colours: a white band (the first
``TIP_LENGTH``, 3% wider than the first segment), a light maple shaft, and a dark butt (the last
two segments).
"""

from __future__ import annotations

import numpy as np

CUE_LENGTH = 1.45  # m, a standard 58-inch cue
TIP_RADIUS = 0.0065  # m, a 13 mm tip
BUTT_RADIUS = 0.0145  # m, a 29 mm butt
CUE_MASS = 0.54  # kg, a 19 oz cue
BALANCE_POINT = 1.0  # m from the tip: cues balance about 45 cm from the butt
N_SEGMENTS = 5  # stacked cylinders approximating the taper (MuJoCo has no cone)
TIP_LENGTH = 0.02  # m, a white ferrule band drawn over the first segment at the tip end
SHAFT_RGBA = (0.86, 0.72, 0.48, 1.0)  # light maple shaft
BUTT_RGBA = (0.25, 0.12, 0.05, 1.0)  # dark wrapped butt (the last two segments)
TIP_RGBA = (0.95, 0.95, 0.92, 1.0)  # white ferrule


def radius_at(z: float | np.ndarray) -> float | np.ndarray:
    """Exact radius of the cone at distance ``z`` (m) from the tip along the axis."""
    s = np.clip(np.asarray(z, dtype=float) / CUE_LENGTH, 0.0, 1.0)
    r = TIP_RADIUS + (BUTT_RADIUS - TIP_RADIUS) * s
    return float(r) if np.ndim(r) == 0 else r


def segments() -> list[tuple[float, float, float]]:
    """``(z_start, z_end, radius)`` of each stacked cylinder in the cue frame, tip first."""
    step = CUE_LENGTH / N_SEGMENTS
    out = []
    for k in range(N_SEGMENTS):
        z0, z1 = k * step, (k + 1) * step
        out.append((z0, z1, float(radius_at(0.5 * (z0 + z1)))))
    return out


def axis_points(pose: np.ndarray, n: int = 20) -> np.ndarray:
    """``n`` world points along the cue's axis from tip to butt, given a 4x4 cue->world pose."""
    z = np.linspace(0.0, CUE_LENGTH, n)
    local = np.stack([np.zeros(n), np.zeros(n), z, np.ones(n)], axis=1)
    return (pose @ local.T).T[:, :3]
