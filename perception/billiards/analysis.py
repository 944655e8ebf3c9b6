"""A coach's facts about one shot, from what the tracker perceived (``ShotPerception``).

Everything here is arithmetic on the perceived tracks and events; nothing looks at pixels or at
the simulator. Directions are degrees in the table frame, counter-clockwise from +x (along the
table's length), in (-180, 180]; speeds are m/s.

- Cue-ball speed and direction at the strike: a constant-deceleration (quadratic) fit of the
  cue ball's positions over the first ``launch_window_s`` after the strike, differentiated at the
  strike. A struck ball slides and the cloth slows it at about mu*g (2 m/s^2), so a straight-line
  fit over a few frames would read the speed 5-10 % low.
- Cut angle: the angle between the cue ball's path into the first contact and the object ball's
  path out of it (straight-line fits just before and just after the contact). That is the cut the
  player actually played, throw included; when the object ball is seen too briefly to fit its
  path, the line of centres at the contact stands in.
- Whether the aimed ball went in: only when the aimed ball is known (a sidecar says so); else
  "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from perception.billiards.types import BallTrack, PerceivedEvent, ShotPerception

LAUNCH_WINDOW_S = 0.15  # s after the strike used for the cue ball's launch velocity
APPROACH_WINDOW_S = 0.2  # s before a contact used for the incoming path
DEPART_WINDOW_S = 0.2  # s after a contact used for the outgoing path
MOVE_MM = 3.0  # a ball that moved less than this is at rest (tracker noise is ~1 mm)


@dataclass(frozen=True)
class CueReading:
    """The cue at the strike, from the cue tracker: where it pointed and how steeply.

    ``direction_deg``: the stroke's direction on the table (butt -> tip), table frame.
    ``elevation_deg``: the butt's rise above horizontal; None when it cannot be trusted (RGB only:
    from one view the cue's tilt is nearly unobservable). ``source``: "rgb-d" or "rgb".
    """

    t: float
    direction_deg: float
    elevation_deg: float | None
    tip_mm: tuple[float, float, float]
    source: str
    frames: int  # frames whose poses were combined

    def to_dict(self) -> dict:
        return {"t": self.t, "direction_deg": self.direction_deg, "elevation_deg": self.elevation_deg,
                "tip_mm": list(self.tip_mm), "source": self.source, "frames": self.frames}


@dataclass(frozen=True)
class ShotReport:
    """The facts of one shot. ``aimed_ball_potted`` is None when no aimed ball is known."""

    strike_t: float | None
    cue: CueReading | None
    cue_ball_speed_mps: float | None
    cue_ball_direction_deg: float | None
    first_hit: str | None
    first_hit_t: float | None
    cut_angle_deg: float | None
    object_ball_direction_deg: float | None
    events: tuple[PerceivedEvent, ...]
    pots: tuple[PerceivedEvent, ...]
    aimed_ball: str | None
    aimed_ball_potted: bool | None
    cue_ball_potted: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the aimed ball's outcome is true, false or "unknown"."""
        return {
            "strike_t": self.strike_t,
            "cue": None if self.cue is None else self.cue.to_dict(),
            "cue_ball_speed_mps": self.cue_ball_speed_mps,
            "cue_ball_direction_deg": self.cue_ball_direction_deg,
            "first_hit": self.first_hit,
            "first_hit_t": self.first_hit_t,
            "cut_angle_deg": self.cut_angle_deg,
            "object_ball_direction_deg": self.object_ball_direction_deg,
            "events": [e.to_dict() for e in self.events],
            "pots": [{"ball": e.a, "pocket": e.b, "t": e.t} for e in self.pots],
            "aimed_ball": self.aimed_ball,
            "aimed_ball_potted": "unknown" if self.aimed_ball_potted is None else self.aimed_ball_potted,
            "cue_ball_potted": self.cue_ball_potted,
        }


def layout(shot: ShotPerception, K: np.ndarray, cam_to_world: np.ndarray) -> list[str]:
    """Ball names from left to right as the camera (``K``, ``cam_to_world``) shows them, each
    where it was first seen; a ball never seen is left out. What "was X left of Y" asks about."""
    from perception.billiards.geometry import TableCamera

    cam = TableCamera.build(K, cam_to_world, shot.geometry)
    columns: dict[str, float] = {}
    for name, track in shot.tracks.items():
        seen = np.flatnonzero(np.asarray(track.visible, bool))
        if len(seen):
            columns[name] = float(cam.to_pixels(track.xy_mm[seen[0]], shot.geometry.ball_radius_mm)[0, 0])
    return sorted(columns, key=columns.get)


def direction_deg(v: np.ndarray) -> float:
    """Table-frame direction of the 2-D vector ``v`` (degrees, counter-clockwise from +x)."""
    return float(np.degrees(np.arctan2(v[1], v[0])))


def angle_between_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Unsigned angle between two 2-D vectors, degrees in [0, 180]."""
    c = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _samples(track: BallTrack, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Visible (t, xy) of ``track`` with t0 < t <= t1."""
    keep = track.visible & (track.t > t0) & (track.t <= t1)
    return track.t[keep], track.xy_mm[keep]


def velocity_at(track: BallTrack, t0: float, t1: float, at: float, quadratic: bool = False
                ) -> np.ndarray | None:
    """Velocity (mm/s, [2]) at time ``at`` of a polynomial fit to the samples in (t0, t1].

    ``quadratic`` fits constant acceleration (needs three samples, else falls back to a line);
    None when fewer than two samples are visible.
    """
    t, xy = _samples(track, t0, t1)
    if len(t) < 2:
        return None
    deg = 2 if quadratic and len(t) >= 3 else 1
    coeffs = np.polyfit(t - at, xy, deg)  # [deg+1, 2], highest power first
    return coeffs[-2]  # the derivative at t = at


def position_at(track: BallTrack, t: float) -> np.ndarray | None:
    """The track's position at ``t``, linearly interpolated between visible samples."""
    vis = track.visible
    if not vis.any():
        return None
    ts, xy = track.t[vis], track.xy_mm[vis]
    return np.array([np.interp(t, ts, xy[:, 0]), np.interp(t, ts, xy[:, 1])])


def strike_time(shot: ShotPerception) -> float | None:
    """The strike event's time; without one, the last frame before the cue ball first moved."""
    for e in shot.events:
        if e.kind == "strike":
            return e.t
    track = shot.tracks.get(shot.geometry.cue_ball)
    if track is None or not track.visible.any():
        return None
    vis = np.flatnonzero(track.visible)
    start = track.xy_mm[vis[0]]
    moved = np.linalg.norm(track.xy_mm[vis] - start, axis=1) > MOVE_MM
    if not moved.any():
        return None
    k = int(np.argmax(moved))
    return float(track.t[vis[max(k - 1, 0)]])


def _next_event_t(shot: ShotPerception, ball: str, after: float) -> float:
    """Time of the first contact/cushion/pot of ``ball`` after ``after`` (inf when none)."""
    times = [e.t for e in shot.events if e.t > after + 1e-9 and e.kind != "strike"
             and ball in (e.a, e.b)]
    return min(times, default=float("inf"))


def _first_contact(shot: ShotPerception) -> PerceivedEvent | None:
    cue = shot.geometry.cue_ball
    return next((e for e in shot.events if e.kind == "ball_ball" and cue in (e.a, e.b)), None)


def analyse_shot(shot: ShotPerception, cue: CueReading | None = None,
                 aimed_ball: str | None = None) -> ShotReport:
    """The coach's facts of ``shot``; ``cue`` from ``cue_at_strike``, ``aimed_ball`` when known."""
    cue_name = shot.geometry.cue_ball
    track = shot.tracks.get(cue_name)
    t_strike = strike_time(shot)
    speed = heading = None
    if track is not None and t_strike is not None:
        end = min(t_strike + LAUNCH_WINDOW_S, _next_event_t(shot, cue_name, t_strike))
        v = velocity_at(track, t_strike, end, t_strike, quadratic=True)
        if v is not None and np.linalg.norm(v) > 0:
            speed, heading = float(np.linalg.norm(v)) / 1000.0, direction_deg(v)

    contact = _first_contact(shot)
    first_hit = shot.first_hit()
    cut = obj_heading = None
    if contact is not None and first_hit is not None and track is not None:
        cut, obj_heading = _cut(shot, track, shot.tracks.get(first_hit), contact.t)

    pots = tuple(shot.pots())
    potted = {e.a for e in pots}
    return ShotReport(
        strike_t=t_strike, cue=cue, cue_ball_speed_mps=speed, cue_ball_direction_deg=heading,
        first_hit=first_hit, first_hit_t=None if contact is None else contact.t,
        cut_angle_deg=cut, object_ball_direction_deg=obj_heading, events=tuple(shot.events),
        pots=pots, aimed_ball=aimed_ball,
        aimed_ball_potted=None if aimed_ball is None else aimed_ball in potted,
        cue_ball_potted=cue_name in potted,
    )


def _cut(shot: ShotPerception, cue: BallTrack, obj: BallTrack | None, t_hit: float
         ) -> tuple[float | None, float | None]:
    """(cut angle, object ball's departure direction) at the contact at ``t_hit``."""
    prev = max([e.t for e in shot.events if e.t < t_hit - 1e-9 and cue.name in (e.a, e.b)
                and e.kind != "strike"], default=-np.inf)
    v_in = velocity_at(cue, max(t_hit - APPROACH_WINDOW_S, prev), t_hit, t_hit)
    if v_in is None or np.linalg.norm(v_in) == 0:
        return None, None
    if obj is None:
        return None, None
    end = min(t_hit + DEPART_WINDOW_S, _next_event_t(shot, obj.name, t_hit))
    v_out = velocity_at(obj, t_hit, end, t_hit)
    if v_out is None or np.linalg.norm(v_out) == 0:
        # Seen too briefly (potted at once, occluded): the line of centres at the contact.
        c, o = position_at(cue, t_hit), position_at(obj, t_hit - 1e-3)
        if c is None or o is None or np.linalg.norm(o - c) == 0:
            return None, None
        v_out = o - c
    return angle_between_deg(v_in, v_out), direction_deg(v_out)
