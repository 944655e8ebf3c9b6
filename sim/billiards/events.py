"""Shot events: strike, ball-ball, cushion, pot and off-table, one event per touch.

Strikes come from MuJoCo's ``data.contact`` every physics step; ball-ball and ball-cushion
collisions are not MuJoCo contacts (``collide.py``) and arrive as the step's collisions. A
soft contact can flicker (touching, not touching, touching again within a few steps of one
collision), so a pair only produces a new event after it has been apart for ``debounce``
seconds: one touch = one event.

A pot is a ball whose centre drops below the cloth inside the rails: the only way there is
through a pocket opening, and the pocket is the one whose opening is nearest. A ball whose
centre gets over the rails (or beyond), or rides up over a cushion, has left the table: that is
an "off_table" event, never a pot. Balls out of play produce no further events.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.billiards import table

EVENT_KINDS = ("strike", "ball_ball", "cushion", "pot", "off_table")


@dataclass(frozen=True)
class Event:
    """``kind`` happened at time ``t`` (s, from the start of the shot) between ``a`` and ``b``.

    strike: a="cue_stick", b="cue"; ball_ball: a, b = the two balls (in table order);
    cushion: a=ball, b=cushion name; pot: a=ball, b=pocket name; off_table: a=ball, b=None.
    """

    t: float
    kind: str
    a: str
    b: str | None = None

    def to_dict(self) -> dict:
        return {"t": self.t, "kind": self.kind, "a": self.a, "b": self.b}

    @staticmethod
    def from_dict(d: dict) -> "Event":
        return Event(float(d["t"]), str(d["kind"]), str(d["a"]), None if d["b"] is None else str(d["b"]))


class EventDetector:
    """Watches one world's contacts step by step and collects ``Event``s."""

    def __init__(self, model: mujoco.MjModel, ball_names: tuple[str, ...], debounce: float = 0.05,
                 t0: float = 0.0) -> None:
        self.ball_names = ball_names
        self.debounce = debounce
        self.t0 = t0  # data.time at the start of the shot: event times are relative to it
        self._role: dict[int, tuple[str, str]] = {}  # geom id -> (role, name)
        for g in range(model.ngeom):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
            if name in ball_names:
                self._role[g] = ("ball", name)
            elif name.startswith("cushion_"):
                self._role[g] = ("cushion", name)
            elif name == "cue_tip":
                self._role[g] = ("tip", "cue_stick")
        self._order = {n: i for i, n in enumerate(ball_names)}
        self._pos3 = np.array([model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)]
                               + np.arange(3) for n in ball_names])
        # Geoms whose MuJoCo contacts can be events (balls and the tip): a ball's contact with the
        # cloth is not, and a contact needs two such geoms to be classified.
        self._has_role = np.zeros(model.ngeom, dtype=bool)
        self._has_role[list(self._role)] = True
        self._nose_lines = np.array([table.HALF_LENGTH, table.HALF_WIDTH])
        self._left = np.zeros(len(ball_names), dtype=bool)  # off the table (when no array is passed)
        self._last_seen: dict[tuple[str, str], float] = {}
        self.events: list[Event] = []

    def update(self, data: mujoco.MjData, potted: np.ndarray,
               ball_pairs: list[tuple[int, int]] | tuple = (),
               off_table: np.ndarray | None = None,
               cushion_hits: list[tuple[int, str]] | tuple = ()) -> list[Event]:
        """Look at the current step; returns (and keeps) the new events.

        ``ball_pairs``: index pairs of the balls that collided in this step; ``cushion_hits``:
        (ball index, cushion name) of the balls that met a cushion. Marks pots in
        ``potted`` and balls that left the table in ``off_table`` (when given).
        """
        t = float(data.time) - self.t0
        if off_table is None:
            off_table = self._left
        out = potted | off_table
        new: list[Event] = []
        found = []
        if data.ncon:
            geoms = data.contact.geom[: data.ncon]
            roles = self._has_role[geoms]
            keep = roles[:, 0] & roles[:, 1]
            if keep.any():
                found = [self._classify(t, self._role[g1], self._role[g2], out)
                         for g1, g2 in geoms[keep].tolist()]
        found += [self._classify(t, ("ball", self.ball_names[i]), ("ball", self.ball_names[j]), out)
                  for i, j in ball_pairs]
        found += [self._classify(t, ("ball", self.ball_names[i]), ("cushion", name), out)
                  for i, name in cushion_hits]
        for event in found:
            if event is None:
                continue
            key = (event.kind, event.a + "|" + str(event.b))
            last = self._last_seen.get(key)
            self._last_seen[key] = t
            if last is None or t - last > self.debounce:
                new.append(event)
        p = data.qpos[self._pos3]
        # Only a ball beyond a cushion line or below the cloth can have been potted or left.
        beyond = (np.abs(p[:, :2]) > self._nose_lines).any(axis=1)
        suspect = (beyond | (p[:, 2] < table.BED_Z - 0.5 * table.BALL_RADIUS)) & ~out
        if suspect.any():
            x, y, z = p[:, 0], p[:, 1], p[:, 2]
            over_rail = ((np.abs(x) > table.HALF_LENGTH + table.CUSHION_WIDTH)
                         | (np.abs(y) > table.HALF_WIDTH + table.CUSHION_WIDTH))
            above_cushion = beyond & (z > table.BED_Z + 2 * table.BALL_RADIUS)
            fallen = (z < table.BED_Z - 0.5 * table.BALL_RADIUS) & ~over_rail & suspect
            left = (over_rail | above_cushion) & suspect & ~fallen
            for i in np.flatnonzero(fallen):
                potted[i] = True
                new.append(Event(t, "pot", self.ball_names[i], table.pocket_of(p[i, :2])))
            for i in np.flatnonzero(left):
                off_table[i] = True
                new.append(Event(t, "off_table", self.ball_names[i]))
        self.events.extend(new)
        return new

    def _classify(self, t: float, r1: tuple[str, str] | None, r2: tuple[str, str] | None,
                  out: np.ndarray) -> Event | None:
        if r1 is None or r2 is None:
            return None
        roles = {r1[0], r2[0]}
        balls = [r[1] for r in (r1, r2) if r[0] == "ball"]
        if any(out[self._order[b]] for b in balls):
            return None  # potted balls in the catch tray and balls off the table are out of play
        if roles == {"ball"}:
            a, b = sorted(balls, key=self._order.__getitem__)
            return Event(t, "ball_ball", a, b)
        if roles == {"ball", "cushion"}:
            cushion = r1[1] if r1[0] == "cushion" else r2[1]
            return Event(t, "cushion", balls[0], cushion)
        if roles == {"ball", "tip"} and balls[0] == "cue":
            return Event(t, "strike", "cue_stick", "cue")
        return None
