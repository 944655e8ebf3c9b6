"""Identities over frames: each object keeps its id while it moves, is carried or is briefly hidden.

Tracks and this frame's objects are paired by the minimum-cost assignment, where the cost is the
3-D distance, pairs of different colours are not allowed and pairs farther apart than ``GATE``
are not allowed either (a carried object moves at most ~5 cm per 0.1 s control step). Scenes hold
a handful of objects, so the assignment is solved exactly by dynamic programming over subsets of
this frame's objects (the Hungarian method's answer, without a dependency for a 4x4 problem).
A track not seen for ``memory_s`` is dropped; until then it is listed as not visible at its last
position, with the stamp of when it was last seen. A track born from a weak observation (only a
small view saw it; the caller marks observations ``strong``) is listed once it is seen again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GATE = 0.15  # m


def assign(cost: np.ndarray, gate: float = GATE) -> list[tuple[int, int]]:
    """Row/column pairs minimising the total cost; a row may stay unpaired at cost ``gate``."""
    n_rows, n_cols = cost.shape
    if n_rows == 0 or n_cols == 0:
        return []
    if n_cols > 12:  # far beyond a tabletop scene: greedy is good enough there
        pairs, used_r, used_c = [], set(), set()
        for flat in np.argsort(cost, axis=None):
            r, c = divmod(int(flat), n_cols)
            if cost[r, c] >= gate or r in used_r or c in used_c:
                continue
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
        return pairs
    # best[mask] = least cost of the rows done so far using exactly the columns in mask
    best = {0: (0.0, ())}
    for r in range(n_rows):
        nxt: dict[int, tuple[float, tuple]] = {}
        for mask, (total, pairs) in best.items():
            options = [(mask, total + gate, pairs)]
            for c in range(n_cols):
                if not mask >> c & 1 and cost[r, c] < gate:
                    options.append((mask | 1 << c, total + cost[r, c], pairs + ((r, c),)))
            for m, t, p in options:
                if m not in nxt or t < nxt[m][0]:
                    nxt[m] = (t, p)
        best = nxt
    return list(min(best.values(), key=lambda tp: tp[0])[1])


@dataclass
class Track:
    id: int
    color: str
    position: np.ndarray
    last_seen: float
    cube_evidence: float = 0.0  # sum of the positive (cube) scores seen
    cyl_evidence: float = 0.0  # sum of the negative (cylinder) scores seen, as a positive number
    extra: dict = field(default_factory=dict)  # the latest measurement's other fields
    hits: int = 1  # frames it was seen in

    @property
    def shape(self) -> str:
        return "cube" if self.cube_evidence >= self.cyl_evidence else "cylinder"

    @property
    def shape_confidence(self) -> float:
        total = self.cube_evidence + self.cyl_evidence
        return max(self.cube_evidence, self.cyl_evidence) / total if total > 0 else 0.5

    def add_evidence(self, score: float) -> None:
        self.cube_evidence += max(score, 0.0)
        self.cyl_evidence += max(-score, 0.0)


class Tracker:
    def __init__(self, memory_s: float = 1.0) -> None:
        self.memory_s = float(memory_s)
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks, self._next_id = [], 1

    def update(self, stamp: float, observations: list[dict]) -> list[tuple[Track, bool]]:
        """Pair ``observations`` (dicts with color, position, cube_score and the rest) with the
        tracks; return every live track and whether it was seen now."""
        self.tracks = [t for t in self.tracks if stamp - t.last_seen <= self.memory_s]
        cost = np.full((len(self.tracks), len(observations)), np.inf)
        for i, t in enumerate(self.tracks):
            for j, o in enumerate(observations):
                if o["color"] == t.color:
                    cost[i, j] = float(np.linalg.norm(t.position - o["position"]))
        seen = set()
        matched_obs = set()
        for i, j in assign(cost):
            t, o = self.tracks[i], observations[j]
            t.position, t.last_seen = np.asarray(o["position"], float), stamp
            t.add_evidence(o["cube_score"])
            if o.get("yaw") is None and t.extra.get("yaw") is not None:
                o = {**o, "yaw": t.extra["yaw"]}  # a cube seen without its top keeps its yaw
            t.extra = o
            t.hits += 1
            seen.add(t.id)
            matched_obs.add(j)
        for j, o in enumerate(observations):
            if j in matched_obs:
                continue
            t = Track(self._next_id, o["color"], np.asarray(o["position"], float), stamp, extra=o)
            t.add_evidence(o["cube_score"])
            self._next_id += 1
            self.tracks.append(t)
            seen.add(t.id)
        # A track seen once, from a small view, is listed only when seen again: a sliver of an
        # object at a wrong place must not become a remembered object for ``memory_s``.
        def confirmed(t: Track) -> bool:
            return t.hits > 1 or t.extra.get("strong", True)

        self.tracks = [t for t in self.tracks if t.id in seen or confirmed(t)]
        return [(t, t.id in seen) for t in self.tracks if confirmed(t)]
