"""A scripted player: ghost-ball aiming of an object ball at a pocket, with power from distances.

For each object ball O and pocket aim point P, the cue ball must arrive at the "ghost ball"
G = O - 2R * (P - O)/|P - O| (touching O on the far side from the pocket). A pot is feasible
when the cut angle between the cue ball's path C->G and the object ball's path O->P is below
``max_cut``, both paths are clear of other balls, G lies on the cloth, and a middle pocket is
approached steeply enough to drop. The easiest feasible pot (small cut, short distances) wins.
Power comes from a simple energy budget with the table's rolling deceleration, so the
object ball reaches the pocket with some pace. When nothing is pottable the player plays a
plain shot at a random ball (target None). A little Gaussian noise on aim and power makes the
shots varied; set ``aim_noise_deg=0`` for a perfect player. ``explore`` is the chance of a
random shot (any aim, any power) instead, for varied training videos.
"""

from __future__ import annotations

import numpy as np

from sim.billiards import table
from sim.billiards.stroke import SPEED_MAX, SPEED_MIN
from sim.billiards.world import TableState

ROLL_DECEL = table.ROLL_DECEL  # m/s^2, the cloth's own rolling resistance (one number, in table.py)
STRIKE_GAIN = 1.35  # cue-ball speed / cue speed at the strike (0.54 kg cue, 0.17 kg ball)


def _clear(a: np.ndarray, b: np.ndarray, others: list[np.ndarray], clearance: float) -> bool:
    """True when no point of ``others`` is within ``clearance`` of the segment a-b."""
    ab = b - a
    L2 = float(ab @ ab)
    for p in others:
        s = 0.0 if L2 == 0 else float(np.clip((p - a) @ ab / L2, 0.0, 1.0))
        if np.linalg.norm(a + s * ab - p) < clearance:
            return False
    return True


class ScriptedPlayer:
    """``plan(state) -> (aim, power, target | None)``; randomness only from ``rng``."""

    def __init__(self, rng: np.random.Generator, aim_noise_deg: float = 0.15,
                 power_noise: float = 0.05, max_cut_deg: float = 60.0, explore: float = 0.0) -> None:
        self.rng = rng
        self.explore = explore
        self.aim_noise = np.deg2rad(aim_noise_deg)
        self.power_noise = power_noise
        self.max_cut = np.deg2rad(max_cut_deg)

    def candidates(self, state: TableState) -> list[tuple[float, float, float, str, str]]:
        """Feasible pots as ``(difficulty, aim, power, ball, pocket)``, easiest first."""
        R = table.BALL_RADIUS
        out = state.out_of_play()
        pos = {n: state.positions[i, :2] for i, n in enumerate(state.ball_names) if not out[i]}
        if "cue" not in pos:
            return []
        c = pos["cue"]
        out = []
        for ball, o in pos.items():
            if ball == "cue":
                continue
            others = [p for n, p in pos.items() if n not in ("cue", ball)]
            for pocket, (_, aim_point) in table.POCKETS.items():
                p = np.array(aim_point)
                u = (p - o) / np.linalg.norm(p - o)
                if "middle" in pocket and abs(u[1]) < np.cos(np.deg2rad(45.0)):
                    continue  # too shallow to drop into a middle pocket
                g = o - 2 * R * u
                if np.any(np.abs(g) > [table.HALF_LENGTH - R, table.HALF_WIDTH - R]):
                    continue  # the cue ball cannot get there
                d_cg, d_op = np.linalg.norm(g - c), np.linalg.norm(p - o)
                if d_cg < 1e-3:
                    continue
                d = (g - c) / d_cg
                cut = float(np.arccos(np.clip(d @ u, -1.0, 1.0)))
                if cut > self.max_cut:
                    continue
                if not (_clear(c, g, others, 2 * R + 0.005) and _clear(o, p, others, 2 * R + 0.005)):
                    continue
                difficulty = np.rad2deg(cut) + 20.0 * (d_cg + d_op)
                aim = float(np.arctan2(d[1], d[0]))
                out.append((difficulty, aim, self._power(d_cg, d_op, cut), ball, pocket))
        out.sort()
        return out

    def _power(self, d_cg: float, d_op: float, cut: float) -> float:
        """Cue power so the object ball still rolls ~0.4 m past the pocket mouth."""
        # The object ball leaves sliding without spin and keeps 5/7 of its speed once it rolls.
        v_obj = np.sqrt(2 * ROLL_DECEL * (d_op + 0.4)) * 7.0 / 5.0
        v_hit = v_obj / (0.96 * max(np.cos(cut), 0.3))  # near-elastic transfer of the normal part
        v_roll = np.sqrt(v_hit**2 + 2 * ROLL_DECEL * d_cg)
        v_ball = v_roll * 7.0 / 5.0  # a struck ball loses 2/7 of its speed before rolling
        v_cue = v_ball / STRIKE_GAIN
        return float(np.clip((v_cue - SPEED_MIN) / (SPEED_MAX - SPEED_MIN), 0.05, 1.0))

    def plan(self, state: TableState) -> tuple[float, float, str | None]:
        """``(aim, power, target)``: the easiest pot, or a plain shot (target None)."""
        if self.explore > 0 and self.rng.random() < self.explore:
            return float(self.rng.uniform(-np.pi, np.pi)), float(self.rng.uniform(0.1, 0.9)), None
        options = self.candidates(state)
        if options:
            _, aim, power, ball, _ = options[0]
            target: str | None = ball
        else:  # nothing pottable: hit a random object ball full, medium pace
            balls = [n for n in state.in_play() if n != "cue"]
            if not balls:
                return float(self.rng.uniform(-np.pi, np.pi)), 0.3, None
            o = state.position(str(self.rng.choice(balls)))[:2]
            c = state.position("cue")[:2]
            aim = float(np.arctan2(o[1] - c[1], o[0] - c[0]))
            power, target = float(self.rng.uniform(0.3, 0.7)), None
        aim += float(self.rng.normal(0.0, self.aim_noise))
        power = float(np.clip(power * (1.0 + self.rng.normal(0.0, self.power_noise)), 0.0, 1.0))
        return float(np.angle(np.exp(1j * aim))), power, target
