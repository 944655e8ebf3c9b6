"""Detections of several cameras -> one list in the base frame.

Detections whose centres lie within ``SAME_OBJECT`` across the table are one object, whatever
colour each called it, from one camera or two: close to the wrist camera an orange cube is
over-exposed into yellow's colour (all of it, or its top face only, which one view then reports
as a second, yellow, object), and two objects cannot stand closer than their width. Of one
colour, up to ``SAME_COLOR_OBJECT`` apart: a view that sees a sliver of the object between the
fingers puts its centre a few centimetres off. The
object's colour is the one with the most votes (pixels weighted by how clearly, and how
unclipped, they show it); its position is the average of the cameras' weighted by how much of it
each saw, with a view that cuts the object at its border counting a tenth: its points are one
side only. A cut-off detection that no other camera confirms and that shows less than most
of an object's height is dropped (a sliver of an object at the wrist camera's edge gives a wrong
height and centre).
"""

from __future__ import annotations

import numpy as np

from perception.scene.types import Detection, Receptacle

SAME_OBJECT = 0.025  # m, across the table (a view cut by its border misjudges the height)
SAME_COLOR_OBJECT = 0.045  # m: same colour, this close: one object partly hidden in one view
TRUNCATED_HEIGHT = 0.75  # share of the smallest object height a cut-off view must show alone


def _weight(d: Detection) -> float:
    return d.pixels * (0.1 if d.truncated else 1.0)


def fuse(detections: list[Detection], min_height: float) -> list[list[Detection]]:
    """Group detections that are one object; each group best view first. ``min_height``: the
    smallest object's height (a cut-off view showing less than most of it is no object alone)."""
    groups: list[list[Detection]] = []
    for d in sorted(detections, key=_weight, reverse=True):
        for g in groups:
            gap = float(np.linalg.norm(g[0].position[:2] - d.position[:2]))
            other_view = all(m.camera != d.camera for m in g)
            if gap < SAME_OBJECT or (other_view and gap < SAME_COLOR_OBJECT and g[0].color == d.color):
                g.append(d)
                break
        else:
            if not d.truncated or d.size[2] >= TRUNCATED_HEIGHT * min_height:
                groups.append([d])
    return groups


def fused_color(group: list[Detection]) -> tuple[str, float]:
    """The colour with the most votes over the group's views, and its share of all votes."""
    votes: dict[str, float] = {}
    for d in group:
        votes[d.color] = votes.get(d.color, 0.0) + d.color_votes
    total = sum(votes.values())
    colour = max(votes, key=votes.get)
    share = votes[colour] / total if total > 0 else 0.0
    best = max((d for d in group if d.color == colour), key=_weight)
    return colour, float(share * best.color_confidence)


def fused_position(group: list[Detection]) -> np.ndarray:
    w = np.array([_weight(d) for d in group])
    return (np.stack([d.position for d in group]) * w[:, None]).sum(0) / w.sum()


def fused_score(group: list[Detection]) -> float:
    """Cube-vs-cylinder evidence of a group: the pixel-weighted mean of the views' scores."""
    w = np.array([_weight(d) for d in group])
    return float((np.array([d.cube_score for d in group]) * w).sum() / w.sum())


def fuse_receptacles(recs: list[Receptacle]) -> list[Receptacle]:
    """One receptacle per kind: the view that saw the most of it (the widest fit)."""
    best: dict[str, Receptacle] = {}
    for r in recs:
        if r.kind not in best or r.radius > best[r.kind].radius:
            best[r.kind] = r
    return list(best.values())
