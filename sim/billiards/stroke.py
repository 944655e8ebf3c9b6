"""How the cue moves during one shot: address, backswing, stroke, follow-through, withdraw.

The cue is a free rigid body (gravity compensated). Before and after the strike it is moved
kinematically (pose and matching velocity written each step); for the stroke itself it is
released at the stroke speed and flies freely, so the strike is a genuine collision between a
0.54 kg cue and a 0.17 kg ball (ball speed ~1.35x the cue speed). Timeline (seconds):

    0 .. ADDRESS            tip still, GAP_ADDRESS behind the cue ball (perception sees it)
    .. + BACKSWING          tip eases back to GAP_BACK
    stroke                  free flight at the stroke speed until the tip meets the ball
    strike .. + FOLLOW      free (follow-through), then the tip stops colliding
    .. + WITHDRAW           cue eases back and up, then stays there
"""

from __future__ import annotations

import math

import numpy as np

from sim.billiards import table
from sim.billiards.world import BilliardsWorld, cue_rotation

ADDRESS = 0.5  # s the cue rests at the ball before the backswing
BACKSWING = 0.35  # s
FOLLOW = 0.06  # s of free follow-through after the strike
WITHDRAW = 0.8  # s
GAP_ADDRESS = 0.05  # m between tip and ball while addressing
GAP_BACK = 0.22  # m at the end of the backswing
ELEVATION = np.deg2rad(6.0)  # cue raised toward the butt, clearing the rails
WITHDRAW_BACK = 0.30  # m the cue moves back while withdrawing
WITHDRAW_UP = 0.15  # m it rises
SPEED_MIN = 0.4  # m/s cue speed at power 0 (a gentle touch)
SPEED_MAX = 4.0  # m/s at power 1 (a firm shot; the cue ball leaves at ~5.4 m/s)


def cue_speed(power: float) -> float:
    return SPEED_MIN + float(np.clip(power, 0.0, 1.0)) * (SPEED_MAX - SPEED_MIN)


def _ease(s: float) -> float:
    """Smooth 0 -> 1 (zero velocity at both ends)."""
    s = min(max(s, 0.0), 1.0)
    return 0.5 - 0.5 * math.cos(math.pi * s)


class Stroke:
    """Drives the cue of ``world`` for one shot along world yaw ``aim`` with ``power`` in [0, 1]."""

    def __init__(self, world: BilliardsWorld, aim: float, power: float) -> None:
        self.world = world
        self.dir = np.array([np.cos(aim), np.sin(aim), 0.0])
        self.R = cue_rotation(aim, ELEVATION)
        self.speed = cue_speed(power)
        ball = world.state().position("cue")
        # Tip positions are on the line through the cue ball's centre, at the centre's height.
        self.contact = ball - self.dir * table.BALL_RADIUS
        self.stroke_start = ADDRESS + BACKSWING
        self.strike_time: float | None = None
        self.launched = False
        self._parked = False
        self.release: tuple[float, np.ndarray] | None = None  # (time, tip) when withdrawal began
        self.miss_time = self.stroke_start + GAP_BACK / self.speed + 0.3  # no strike by then: withdraw
        world.enable_tip(True)
        world.set_cue(self._tip_at_gap(GAP_ADDRESS), self.R)

    def _tip_at_gap(self, gap: float) -> np.ndarray:
        return self.contact - self.dir * gap

    def _kinematic(self, tip: np.ndarray, velocity: np.ndarray) -> None:
        self.world.set_cue(tip, self.R, velocity)

    def before_step(self, t: float) -> None:
        """Command the cue for the physics step starting at shot time ``t``."""
        dt = self.world.model.opt.timestep
        if t < ADDRESS:
            self._kinematic(self._tip_at_gap(GAP_ADDRESS), np.zeros(3))
        elif t < self.stroke_start:
            s = (t - ADDRESS) / BACKSWING
            gap = GAP_ADDRESS + (GAP_BACK - GAP_ADDRESS) * _ease(s)
            gap_next = GAP_ADDRESS + (GAP_BACK - GAP_ADDRESS) * _ease(s + dt / BACKSWING)
            self._kinematic(self._tip_at_gap(gap), -self.dir * (gap_next - gap) / dt)
        elif self.release is None:
            if not self.launched:  # launch once; then the cue flies freely
                self._kinematic(self._tip_at_gap(GAP_BACK), self.dir * self.speed)
                self.launched = True
            done = self.strike_time is not None and t >= self.strike_time + FOLLOW
            if done or t >= self.miss_time:
                self.release = (t, self.world.cue_pose()[:3, 3].copy())
                self.world.enable_tip(False)
        if self.release is not None and not self._parked:
            t0, tip0 = self.release
            self._parked = t >= t0 + WITHDRAW + dt  # past the end the cue rests where it stopped
            offset = -self.dir * WITHDRAW_BACK + np.array([0.0, 0.0, WITHDRAW_UP])
            s = (t - t0) / WITHDRAW
            vel = offset * (_ease(s + dt / WITHDRAW) - _ease(s)) / dt
            self._kinematic(tip0 + offset * _ease(s), vel)

    def after_step(self, t: float, struck: bool) -> None:
        if struck and self.strike_time is None:
            self.strike_time = t

    def finished(self, t: float) -> bool:
        return self.release is not None and t >= self.release[0] + WITHDRAW
