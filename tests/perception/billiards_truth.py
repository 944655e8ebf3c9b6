"""Test helper: a ``ShotPerception`` made from the simulator's ground truth (a perfect tracker).

For tests of what consumes perception (the coach's analysis and drawing) independently of how
well the tracker sees; never used on a live path.
"""

from __future__ import annotations

import numpy as np

from perception.billiards.sidecar import table_geometry
from perception.billiards.types import BallTrack, PerceivedEvent, ShotPerception, TableGeometry


def sim_geometry() -> TableGeometry:
    from sim.billiards.sidecar import table_dict

    return table_geometry(table_dict())


def truth_perception(record, geometry: TableGeometry | None = None) -> ShotPerception:
    """Tracks (table mm, hidden once potted) and events (off-table ones dropped) of ``record``."""
    geometry = geometry or sim_geometry()
    world_to_table = np.linalg.inv(geometry.table_to_world)
    pos = record.ball_pos  # [T, N, 3] world m
    P = np.concatenate([pos, np.ones(pos.shape[:2] + (1,))], axis=2) @ world_to_table.T
    tracks = {}
    for i, name in enumerate(record.ball_names):
        visible = ~record.potted[:, i]
        xy = P[:, i, :2] * 1000.0
        xy[~visible] = np.nan
        tracks[name] = BallTrack(name, np.asarray(record.times, float), xy, visible)
    events = tuple(PerceivedEvent(e.t, e.kind, e.a, e.b) for e in record.events if e.kind != "off_table")
    return ShotPerception(fps=record.fps, tracks=tracks, events=events, geometry=geometry)


def truth_perceive(record):
    """A ``perceive`` for ``agent.coach.coach_shot`` that returns ``record``'s truth."""
    def perceive(frames, times, K, cam_pose, geometry, depth=None) -> ShotPerception:
        assert len(frames) == len(record.times)
        return truth_perception(record, geometry)
    return perceive
