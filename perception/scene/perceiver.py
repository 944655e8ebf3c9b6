"""``ScenePerceiver``: RGB-D views of the tabletop -> the objects and receptacles on it, tracked.

    perceiver = ScenePerceiver()
    percept = perceiver.perceive([CameraView("agentview", rgb, depth, K, T_base_cam, t)])
    if percept.ok:
        for obj in percept.objects: print(obj.id, obj.description, obj.position)

Nothing tells it what to look for: every object-coloured thing standing on the table is found
(``detect``), the cameras' detections are merged in the base frame (``fuse``) and identities
are kept over frames (``track``). When no view shows the table (depth missing, mostly invalid or
the wrong size, extrinsics unknown, the table out of view) the percept is ``NOTHING_HERE`` with
the reason, never a list from an earlier frame. All per-frame work runs on one thread
(``single_threaded``): the cost is small-matrix numpy and OpenCV, where thread pools only spin.
"""

from __future__ import annotations

from typing import Sequence

from perception.threads import single_threaded
from perception.scene.colors import color_table
from perception.scene.detect import detect_view
from perception.scene.fuse import fuse, fuse_receptacles, fused_color, fused_position, fused_score
from perception.scene.palette import Palette
from perception.scene.track import Tracker
from perception.scene.types import (NOTHING_HERE, OK, CameraView, Receptacle, SceneObject,
                                   ScenePercept)

STRONG_PIXELS = 25  # a view this big makes an object at once; smaller ones need 2 frames
MAX_SKEW_S = 0.1  # a view older than the newest by more than this is not fused with it


class ScenePerceiver:
    """Args:
        palette: the world's colours and sizes (default: the tabletop world's, as data).
        memory_s: how long an object that stopped being seen stays listed (as not visible).
        receptacle_memory_s: the same for a bowl or plate (they do not move by themselves).
    """

    def __init__(self, palette: Palette | None = None, memory_s: float = 1.0,
                 receptacle_memory_s: float = 10.0) -> None:
        self.palette = palette or Palette()
        self.table = color_table(self.palette.objects, self.palette.background)
        self.tracker = Tracker(memory_s)
        self.receptacle_memory_s = float(receptacle_memory_s)
        self._receptacles: dict[str, Receptacle] = {}

    def reset(self) -> None:
        """Forget every identity (a new scene)."""
        self.tracker.reset()
        self._receptacles = {}

    def _remember(self, stamp: float, seen: list[Receptacle]) -> tuple[Receptacle, ...]:
        """Receptacles seen now, and those seen within ``receptacle_memory_s`` (with their older
        stamp): a bowl or plate stays put, and the hand hides it whenever it works over it."""
        for r in seen:
            self._receptacles[r.kind] = r
        self._receptacles = {k: r for k, r in self._receptacles.items()
                             if stamp - r.stamp <= self.receptacle_memory_s}
        return tuple(self._receptacles.values())

    @single_threaded
    def perceive(self, views: Sequence[CameraView], stamp: float | None = None) -> ScenePercept:
        if not views:
            return ScenePercept(NOTHING_HERE, 0.0 if stamp is None else float(stamp),
                                reason="no camera views")
        stamp = max(v.stamp for v in views) if stamp is None else float(stamp)
        statuses, dets, recs, used = [], [], [], []
        for v in views:
            if stamp - v.stamp > MAX_SKEW_S:
                statuses.append((v.name, f"stale by {stamp - v.stamp:.2f} s"))
                continue
            status, d, r = detect_view(v, self.table, self.palette)
            statuses.append((v.name, status))
            if status == OK:
                used.append(v.name)
                dets += d
                recs += r
        if not used:
            why = "; ".join(f"{n}: {s}" for n, s in statuses)
            return ScenePercept(NOTHING_HERE, stamp, views=tuple(statuses),
                                reason=f"the table is not visible ({why})")
        observations = []
        for group in fuse(dets, min(s.height for s in self.palette.shapes.values())):
            best = group[0]
            colour, colour_conf = fused_color(group)
            observations.append({
                "color": colour, "position": fused_position(group),
                "cube_score": fused_score(group), "size": best.size, "yaw": best.yaw,
                "color_confidence": colour_conf,
                "source": tuple(sorted({d.camera for d in group})),
                "strong": any(d.pixels >= STRONG_PIXELS for d in group),
            })
        objects = []
        for track, seen in self.tracker.update(stamp, observations):
            o = track.extra
            shape = track.shape
            yaw = o["yaw"] if shape == "cube" else None
            objects.append(SceneObject(
                id=track.id, color=track.color, shape=shape,
                position=tuple(float(x) for x in track.position), size=o["size"], yaw=yaw,
                color_confidence=o["color_confidence"], shape_confidence=track.shape_confidence,
                stamp=track.last_seen, source=o["source"], visible=seen))
        return ScenePercept(OK, stamp, tuple(objects), self._remember(stamp, fuse_receptacles(recs)),
                            tuple(used), tuple(statuses))
