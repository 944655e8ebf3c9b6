"""Shot events from MuJoCo contacts: strike, ball-ball, cushion and pot, one event per touch.

Contacts come from ``data.contact`` every physics step. A soft contact can flicker (touching,
not touching, touching again within a few steps of one collision), so a pair only produces a new
event after it has been apart for ``debounce`` seconds: one touch = one event. A pot is a ball
whose centre drops below the cloth (it fell through a pocket opening); the pocket is the one
whose opening is nearest. Potted balls produce no further events.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.billiards import table

EVENT_KINDS = ("strike", "ball_ball", "cushion", "pot")


@dataclass(frozen=True)
class Event:
    """``kind`` happened at time ``t`` (s, from the start of the shot) between ``a`` and ``b``.

    strike: a="cue_stick", b="cue"; ball_ball: a, b = the two balls (in table order);
    cushion: a=ball, b=cushion name; pot: a=ball, b=pocket name.
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
        self._qpos = [int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n)])
                      for n in ball_names]
        self._z = np.array(self._qpos) + 2  # qpos index of each ball's height
        self._last_seen: dict[tuple[str, str], float] = {}
        self.events: list[Event] = []

    def update(self, data: mujoco.MjData, potted: np.ndarray) -> list[Event]:
        """Look at the current step; returns (and keeps) the new events. Marks pots in ``potted``."""
        t = float(data.time) - self.t0
        new: list[Event] = []
        for g1, g2 in data.contact.geom[: data.ncon].tolist():
            r1, r2 = self._role.get(g1), self._role.get(g2)
            if r1 is None or r2 is None:
                continue
            event = self._classify(t, r1, r2, potted)
            if event is None:
                continue
            key = (event.kind, event.a + "|" + str(event.b))
            last = self._last_seen.get(key)
            self._last_seen[key] = t
            if last is None or t - last > self.debounce:
                new.append(event)
        fallen = (data.qpos[self._z] < table.BED_Z - 0.5 * table.BALL_RADIUS) & ~potted
        for i in np.flatnonzero(fallen):
            potted[i] = True
            xy = data.qpos[self._qpos[i]:self._qpos[i] + 2]
            new.append(Event(t, "pot", self.ball_names[i], table.pocket_of(xy)))
        self.events.extend(new)
        return new

    def _classify(self, t: float, r1: tuple[str, str], r2: tuple[str, str],
                  potted: np.ndarray) -> Event | None:
        roles = {r1[0], r2[0]}
        balls = [r[1] for r in (r1, r2) if r[0] == "ball"]
        if any(potted[self._order[b]] for b in balls):
            return None  # balls rolling around the catch tray are out of play
        if roles == {"ball"}:
            a, b = sorted(balls, key=self._order.__getitem__)
            return Event(t, "ball_ball", a, b)
        if roles == {"ball", "cushion"}:
            cushion = r1[1] if r1[0] == "cushion" else r2[1]
            return Event(t, "cushion", balls[0], cushion)
        if roles == {"ball", "tip"} and balls[0] == "cue":
            return Event(t, "strike", "cue_stick", "cue")
        return None
