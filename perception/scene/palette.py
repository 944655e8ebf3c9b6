"""What the perceiver knows about the world's look: object colours, other surfaces, object sizes.

This is data, not an import: perception may not import ``sim``. The defaults copy the tabletop
world's (``sim/tabletop/tasks.py`` COLORS, ``sim/tabletop/scene.py`` and ``arm.py`` rgba and
sizes); a caller with another world passes its own ``Palette``. The background colours (table,
receptacles, arm, gripper) are what keeps the arm from being read as an object: a pixel is an
object's only when its colour is nearer an object colour than any of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RGB = tuple[float, float, float]

OBJECT_COLORS: dict[str, RGB] = {  # sim/tabletop/tasks.py COLORS
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.65, 0.15),
    "blue": (0.1, 0.25, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.55, 0.15, 0.75),
    "orange": (1.0, 0.5, 0.0),
    "cyan": (0.1, 0.8, 0.85),
    "pink": (1.0, 0.5, 0.75),
}
BACKGROUND_COLORS: dict[str, RGB] = {  # sim/tabletop/scene.py and arm.py rgba
    "table": (0.6, 0.55, 0.48),
    "bowl": (0.45, 0.3, 0.2),
    "plate": (0.95, 0.95, 0.92),
    "arm": (0.92, 0.92, 0.94),
    "hand": (0.85, 0.85, 0.88),
    "finger": (0.2, 0.2, 0.22),
    "base": (0.3, 0.3, 0.32),
    "floor": (0.25, 0.27, 0.3),
}


@dataclass(frozen=True)
class ShapeSize:
    width: float  # footprint edge (cube) or diameter (cylinder), m
    height: float  # m


SHAPE_SIZES: dict[str, ShapeSize] = {  # sim/tabletop/scene.py CUBE_HALF, CYL_RADIUS, CYL_HALF_HEIGHT
    "cube": ShapeSize(0.04, 0.04),
    "cylinder": ShapeSize(0.04, 0.05),
}
RECEPTACLE_RADII: dict[str, float] = {"bowl": 0.085, "plate": 0.085}  # outer, m


@dataclass(frozen=True)
class Palette:
    objects: dict[str, RGB] = field(default_factory=lambda: dict(OBJECT_COLORS))
    background: dict[str, RGB] = field(default_factory=lambda: dict(BACKGROUND_COLORS))
    shapes: dict[str, ShapeSize] = field(default_factory=lambda: dict(SHAPE_SIZES))
    receptacles: dict[str, float] = field(default_factory=lambda: dict(RECEPTACLE_RADII))
