"""Published billiards physics as closed forms: what the physics checks compare the table against.

Written here from the models' equations (our derivations and code):

- ``cushion_rebound``: the rigid-impulse cushion model of Han (2005, "Dynamics in carom and three
  cushion billiards", J. Mech. Sci. Tech. 19(4)). The cushion touches the ball at the nose height
  h above the cloth, i.e. at angle theta = asin(h/R - 1) above the equator; one impulse there,
  with restitution e on the normal part and Coulomb friction mu on the slip (sticking when the
  friction needed to end the slip is available). The table keeps the ball on the cloth (its
  vertical velocity stays zero); the spin changes by the impulse's moment.
- ``throw_angle``: cut-induced throw of a stun shot (Alciatore, TP A-14), with his measured
  ball-ball friction ``mu(v)`` (``collide.ball_friction``).
- ``cue_ball_after_hit``: the state just after a ball-ball hit, Alciatore's rigid-impulse model
  with his measured friction (the same physics as ``throw_angle``, for any spin).
- ``final_roll_velocity``: a sliding ball on cloth ends rolling at 5/7 of its velocity plus 2/7
  of the velocity its spin alone would roll at (angular momentum about the contact point).
  With the state after a full or cut hit this gives stun, follow and draw
  (``full_hit_cue_final``), the 90-degree rule (``stun_separation_deg``) and the 30-degree
  rule (``cut_cue_deflection``); each also has its ideal frictionless form (``friction=False``).
- ``rollout_distance``: a rolling ball at speed v stops after v^2 / (2 mu_roll g).
"""

from __future__ import annotations

import numpy as np

from sim.billiards import table
from sim.billiards.collide import RESTITUTION, ball_friction


def cushion_rebound(speed: float, incidence_deg: float, topspin: float = 0.0,
                    e: float = 0.85, mu: float = 0.2, h: float = table.NOSE_HEIGHT,
                    R: float = table.BALL_RADIUS) -> dict[str, float]:
    """Han (2005): rebound of a ball meeting a straight cushion.

    ``incidence_deg`` is measured from the cushion's normal; ``topspin`` is the spin about the
    axis perpendicular to the travel direction in units of rolling (1 = rolling, 0 = stun, -1 =
    draw as fast as rolling). Returns the rebound angle (deg, from the normal, positive on the
    side the ball was travelling along the cushion) and the speed after impact.
    """
    m = 1.0  # the angles do not depend on the mass
    inertia = 0.4 * m * R * R
    theta = np.arcsin(h / R - 1.0)
    a = np.deg2rad(incidence_deg)
    # Frame: x toward the cushion, y along it, z up.
    v = speed * np.array([np.cos(a), np.sin(a), 0.0])
    w = topspin * np.cross([0.0, 0.0, 1.0], v) / R
    n = np.array([np.cos(theta), 0.0, np.sin(theta)])  # ball centre -> contact point
    r = R * n
    u = v + np.cross(w, r)  # contact point velocity
    approach = float(u @ n)
    p_n = (1.0 + e) * m * approach
    slip = u - approach * n
    s = float(np.linalg.norm(slip))
    stick = 2.0 / 7.0 * m * s
    p_t = -slip * (min(stick, mu * p_n) / s) if s > 1e-12 else np.zeros(3)
    impulse = -p_n * n + p_t
    v_out = v + impulse / m
    v_out[2] = 0.0  # the cloth holds the ball down
    angle = float(np.degrees(np.arctan2(v_out[1], -v_out[0])))
    return {"angle_deg": angle, "speed": float(np.hypot(v_out[0], v_out[1]))}


def throw_angle(speed: float, cut_deg: float, e: float = RESTITUTION) -> float:
    """Cut-induced throw (deg, positive = thick: toward the cue ball's path) of a stun shot."""
    phi = np.deg2rad(cut_deg)
    slip = speed * np.sin(phi)  # contact-point slip speed of a stun ball at this cut
    normal = (1.0 + e) / 2.0 * speed * np.cos(phi)  # object ball's speed along the centres
    tangential = min(float(ball_friction(slip)) * normal, slip / 7.0)
    return float(np.degrees(np.arctan2(tangential, normal)))


def final_roll_velocity(velocity: np.ndarray, spin: np.ndarray, R: float = table.BALL_RADIUS
                        ) -> np.ndarray:
    """Velocity (horizontal, m/s) a ball with ``velocity`` and ``spin`` (world) ends rolling at."""
    v = np.asarray(velocity, float)[:2]
    roll = np.cross(np.asarray(spin, float), [0.0, 0.0, R])[:2]  # what the spin alone rolls at
    return 5.0 / 7.0 * v + 2.0 / 7.0 * roll


def cue_ball_after_hit(speed: float, spin_ratio: float, cut_deg: float, e: float = RESTITUTION,
                       friction: bool = True, R: float = table.BALL_RADIUS
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cue ball (velocity, spin) and object ball velocity just after a hit, in the shot's frame.

    The cue ball travels along +x at ``speed`` with topspin ``spin_ratio`` (units of rolling:
    1 follow, 0 stun, -1 draw) and meets a ball at rest with the line of centres ``cut_deg``
    from its path (positive: towards +y). Alciatore's rigid-impulse model (TP A-14): the normal
    impulse with restitution ``e``; the friction impulse, with his measured ``mu(v)`` of the
    contact points' slip speed, against the slip and capped at what ends it (m/7 for two equal
    spheres). A spinning ball's contact point slips vertically too, so the friction also takes
    some of a follow or draw ball's spin (about 7 % at 1.5 m/s) and throws a cut. The cloth
    takes the impulse's vertical part (the balls stay on it). ``friction=False``: the ideal
    frictionless rules. Velocities are horizontal [2]; the spin is [3] (world, rad/s).
    """
    c = np.deg2rad(cut_deg)
    n = np.array([np.cos(c), np.sin(c), 0.0])
    v = np.array([speed, 0.0, 0.0])
    w = spin_ratio * np.array([0.0, speed / R, 0.0])
    jn = (1.0 + e) / 2.0 * float(v @ n)  # per unit mass
    rel = v + np.cross(w, R * n)  # cue ball's contact point; the object ball's is at rest
    slip = rel - float(rel @ n) * n
    s = float(np.linalg.norm(slip))
    jt = np.zeros(3)
    if friction and s > 1e-12:
        jt = -slip / s * min(float(ball_friction(s)) * jn, s / 7.0)
    cue_v = v - jn * n + jt
    obj_v = jn * n - jt
    cue_w = w + np.cross(R * n, jt) / (0.4 * R * R)
    return cue_v[:2], cue_w, obj_v[:2]


def full_hit_cue_final(speed: float, spin_ratio: float, e: float = RESTITUTION,
                       friction: bool = True) -> float:
    """Cue ball's speed along its path once it rolls after a full hit (negative: it comes back).

    ``spin_ratio``: spin at impact in units of rolling (1 follow, 0 stun, < 0 draw). Without
    friction this is 5/7 (1-e)/2 v + 2/7 spin_ratio v: stun stops, follow and draw run on or
    come back at about 2/7 of the speed.
    """
    v, w, _ = cue_ball_after_hit(speed, spin_ratio, 0.0, e, friction)
    return float(final_roll_velocity(v, w)[0])


def stun_separation_deg(cut_deg: float, speed: float = 1.0, e: float = RESTITUTION,
                        friction: bool = True) -> float:
    """Angle between the cue and object balls' paths just after a stun cut (the 90-degree rule).

    Exactly 90 for e = 1 without friction; restitution below 1 and the throw (the object ball
    thrown thick, the cue ball's tangential speed cut) make it a few degrees less.
    """
    v, _, o = cue_ball_after_hit(speed, 0.0, cut_deg, e, friction)
    return float(np.degrees(np.arccos(v @ o / np.linalg.norm(v) / np.linalg.norm(o))))


def cut_cue_deflection(cut_deg: float, speed: float = 1.0, e: float = RESTITUTION,
                       friction: bool = True) -> float:
    """Rolling cue ball's final deflection (deg) from its path after a cut (the 30-degree rule)."""
    v, w, _ = cue_ball_after_hit(speed, 1.0, cut_deg, e, friction)
    final = final_roll_velocity(v, w)
    return float(np.degrees(np.arctan2(abs(final[1]), final[0])))


def rollout_distance(speed: float, mu_roll: float = table.MU_ROLL) -> float:
    return speed * speed / (2.0 * mu_roll * table.GRAVITY)
