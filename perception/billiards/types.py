"""What the billiards tracker hands on: table geometry in, ball tracks and events out.

Units are millimetres in the table frame: origin at the centre of the playing area, x along the
table's length (toward the "right" end seen from the overhead camera), y across it, the cloth at
z = 0. Times are seconds from the start of the clip. Small frozen dataclasses and numpy arrays,
as everywhere in the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EVENT_KINDS = ("strike", "ball_ball", "cushion", "pot")


@dataclass(frozen=True)
class TableGeometry:
    """The table as the tracker needs it.

    ``table_to_world`` maps table-frame millimetres to the world frame in which the camera
    extrinsics are given (metres): a 4x4 transform whose translation is in metres, applied to
    points converted to metres. ``pockets`` names each pocket and gives its opening's centre.
    ``ball_colours`` is RGB in [0, 1] per ball name, as rendered or measured under the table's light.
    """

    half_length_mm: float
    half_width_mm: float
    ball_radius_mm: float
    pockets: dict[str, tuple[float, float]]
    ball_colours: dict[str, tuple[float, float, float]]
    cloth_colour: tuple[float, float, float]
    table_to_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    cue_ball: str = "cue"


@dataclass(frozen=True)
class BallTrack:
    """One ball through the clip: ``xy_mm[k]`` at ``t[k]``; NaN where it was not seen
    (occluded, potted, out of view). ``visible[k]`` is False exactly where ``xy_mm[k]`` is NaN."""

    name: str
    t: np.ndarray  # [T] s
    xy_mm: np.ndarray  # [T, 2] table frame, mm
    visible: np.ndarray  # [T] bool
    # Added by the tracker (optional for other producers): its best estimate in every frame the
    # ball is in play -- measured where visible, held or predicted where hidden (the cue over it);
    # NaN before it was first seen and from its pot on. ``pocket``/``potted_t``: where and when
    # it went down, None if it did not.
    xy_est_mm: np.ndarray | None = None  # [T, 2]
    potted_t: float | None = None
    pocket: str | None = None


@dataclass(frozen=True)
class PerceivedEvent:
    """``kind`` at time ``t`` between ``a`` and ``b``.

    strike: a="cue_stick", b=cue ball; ball_ball: a, b = the two balls (a is the moving one
    that hit, when known); cushion: a=ball, b=cushion/rail name or None; pot: a=ball, b=pocket name.
    """

    t: float
    kind: str
    a: str
    b: str | None = None

    def to_dict(self) -> dict:
        return {"t": self.t, "kind": self.kind, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class ShotPerception:
    """Everything perceived about one shot: per-ball tracks and the inferred event timeline."""

    fps: float
    tracks: dict[str, BallTrack]
    events: tuple[PerceivedEvent, ...]
    geometry: TableGeometry

    def first_hit(self) -> str | None:
        """The first ball the cue ball touched, or None."""
        cue = self.geometry.cue_ball
        for e in self.events:
            if e.kind == "ball_ball" and cue in (e.a, e.b):
                return e.b if e.a == cue else e.a
        return None

    def pots(self) -> list[PerceivedEvent]:
        return [e for e in self.events if e.kind == "pot"]
