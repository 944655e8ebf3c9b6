"""The pool table as MJCF built in code: bed with six pocket holes, cushions, rails, balls, cue, cameras.

Dimensions are a regulation 9-ft table (playing area 2.54 x 1.27 m inside the cushion noses) and
regulation balls (57.15 mm, 170 g). World frame: z up, the floor at z = 0, the cloth at
``BED_Z``; x along the table's length, y across it, the table centred on the origin. Seen from the
overhead camera, +x is image right and +y image up, which names the pockets.

Pockets are real holes: the bed is a few boxes that leave square openings at the four corners and
the two middles of the long rails, and the cushions stop short of them. A ball whose centre passes
over an opening loses its support and falls onto a catch tray under the bed, hidden by the bed and
the apron (as balls in a real table's return). That is robust (no meshes, no special cases) and
potting needs nothing but gravity.

Contact tuning (one geom class per material; ``priority`` makes the cloth, cushion and tip
parameters win over the ball's in mixed contacts, so each pair's behaviour is set in one place):
- ball-ball: not a MuJoCo contact at all (a ball's conaffinity leaves out other balls): the
  collisions are instantaneous impulses in ``collide.py``, because a soft contact a 1 ms step can
  integrate lasts ~10 ms, throws cut shots thin and gains energy in clusters;
- ball-cloth: MuJoCo gives the support only (frictionless, so a sliding ball does not lift off
  as MuJoCo's convex friction makes it); sliding friction ``CLOTH_SLIDE``, rolling resistance
  ``ROLL_DECEL`` (mu_roll 0.01, typical cloth) and spin decay are applied by ``cloth.py``;
- ball-cushion: the cushion's nose, not a vertical face. A real nose sits above the ball's
  equator (``NOSE_HEIGHT``, 0.635 of the diameter, the WPA range and Han 2005's model), so it
  presses the ball into the cloth and takes its topspin. The nose is a capsule along the cushion
  (``cushion_noses``) whose axis a resting ball touches at that height; a box shows the rubber.
  The collision is an instantaneous impulse in ``collide.py`` (Han's model: restitution
  ``CUSHION_RESTITUTION``, Coulomb friction ``CUSHION_FRICTION``), not a MuJoCo contact: MuJoCo's
  soft friction acts against the accelerations the cloth's reaction causes rather than against
  the slip, so it spun a sliding ball the wrong way and left a rolling ball's topspin in place
  (rebounds 3-5 deg wide). The capsules stay in the model, hidden and not colliding, as a record
  of the geometry.
"""

from __future__ import annotations

import numpy as np

from sim.billiards import cue as cue_geom

# Table (metres).
HALF_LENGTH = 1.27  # playing area half-length (2.54 m inside the cushions)
HALF_WIDTH = 0.635  # playing area half-width (1.27 m)
BED_Z = 0.79  # height of the cloth above the floor
BED_THICKNESS = 0.03
CUSHION_WIDTH = 0.05  # from the cushion nose to the rail
CUSHION_HEIGHT = 0.04  # visible rubber above the cloth (the collision is the nose capsule below)
RAIL_WIDTH = 0.10
RAIL_HEIGHT = 0.045
CORNER_HOLE = 0.07  # how far a corner opening reaches into the playing area along x and y
MIDDLE_HOLE_HALF = 0.065  # half-width (along x) of the middle openings
MIDDLE_HOLE_DEPTH = 0.04  # how far a middle opening reaches into the playing area along y
CORNER_GAP = 0.085  # where cushions stop, measured from the corner along the rail (pocket jaw)
MIDDLE_GAP = 0.07  # cushion ends either side of a middle pocket, measured from x = 0
TRAY_DROP = 0.25  # catch tray top, below the cloth

# Balls.
BALL_RADIUS = 0.028575  # 57.15 mm diameter
BALL_MASS = 0.17
BALLS: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("cue", (0.95, 0.95, 0.92)),
    ("yellow", (0.95, 0.80, 0.05)),
    ("blue", (0.05, 0.20, 0.80)),
    ("red", (0.85, 0.05, 0.05)),
    ("purple", (0.45, 0.10, 0.60)),
    ("orange", (1.00, 0.45, 0.00)),
    ("green", (0.00, 0.45, 0.15)),
    ("maroon", (0.45, 0.05, 0.08)),
    ("black", (0.03, 0.03, 0.03)),
)
BALL_NAMES: tuple[str, ...] = tuple(name for name, _ in BALLS)

# The cushion nose: contact height above the cloth and the collision capsule that makes it.
NOSE_HEIGHT = 0.635 * 2 * BALL_RADIUS  # 36.3 mm; WPA cushions 62.5-64.5 % of the ball diameter
NOSE_ANGLE = float(np.arcsin(NOSE_HEIGHT / BALL_RADIUS - 1.0))  # contact normal above horizontal
NOSE_RADIUS = 0.02  # capsule radius: large, so a hard hit's few mm of overlap keep the normal

# Cloth (applied by cloth.py): typical cloth rolling resistance mu_roll ~ 0.01, i.e. a rolling
# ball slows by mu_roll * g.
GRAVITY = 9.81
MU_ROLL = 0.01
ROLL_DECEL = MU_ROLL * GRAVITY  # m/s^2: a ball rolling at 1 m/s stops after ~5 m
CLOTH_SLIDE = 0.2  # sliding friction: a struck ball slides 12 v^2 / (49 mu g) before rolling
CLOTH_RGBA = (0.05, 0.45, 0.25, 1.0)

# Pockets: name -> (centre of the opening on the bed, the point a shot aims at to pot a ball).
# Aim points sit just inside each opening so ghost-ball aiming sends balls to the middle of it.
_A, _B = HALF_LENGTH, HALF_WIDTH
POCKETS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "top_left": ((-_A - 0.01, _B + 0.01), (-_A + 0.015, _B - 0.015)),
    "top_middle": ((0.0, _B + 0.01), (0.0, _B + 0.005)),
    "top_right": ((_A + 0.01, _B + 0.01), (_A - 0.015, _B - 0.015)),
    "bottom_left": ((-_A - 0.01, -_B - 0.01), (-_A + 0.015, -_B + 0.015)),
    "bottom_middle": ((0.0, -_B - 0.01), (0.0, -_B - 0.005)),
    "bottom_right": ((_A + 0.01, -_B - 0.01), (_A - 0.015, -_B + 0.015)),
}

CAMERAS = ("overhead", "player")
TIMESTEP = 0.001  # s; a 4 m/s tip moves 4 mm a step, and bouncy contacts last several steps

# Bouncy contacts use MuJoCo's direct solref (-stiffness, -damping) as a damped spring: with the
# positive (timeconst, dampratio) form a small damping ratio raises the stiffness and explodes.
# Restitution ~ exp(-zeta*pi/sqrt(1-zeta^2)). (Ball-ball restitution lives in collide.py.)
CONTACT_STEPS = 10  # the tip's bounce lasts about this many timesteps
TIP_ZETA = 0.07  # leather tip
CUSHION_FRICTION = 0.2  # ball-cushion (collide.py), as in Han 2005 and pooltool's defaults
CUSHION_RESTITUTION = 0.85
CLOTH_SOLREF = "0.004 1"  # timeconst, dampratio


def _bounce(zeta: float) -> str:
    wn = np.pi / (CONTACT_STEPS * TIMESTEP)
    return _fmt(-wn * wn, -2.0 * zeta * wn)


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _box(name: str, cls: str, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float,
         rgba: tuple[float, ...] | None = None) -> str:
    """A box geom spanning [x0,x1] x [y0,y1] x [z0,z1] (world coordinates)."""
    pos = _fmt((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2)
    size = _fmt((x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2)
    color = f' rgba="{_fmt(*rgba)}"' if rgba else ""
    return f'<geom name="{name}" class="{cls}" type="box" pos="{pos}" size="{size}"{color}/>'


def _capsule(name: str, p0: tuple[float, float, float], p1: tuple[float, float, float]) -> str:
    """A cushion-nose capsule from ``p0`` to ``p1`` (hidden: geom group 3 is not rendered)."""
    return (f'<geom name="{name}" class="cushion" type="capsule" fromto="{_fmt(*p0, *p1)}" '
            f'size="{NOSE_RADIUS}"/>')


def _bed() -> list[str]:
    """Cloth boxes covering the bed except the six pocket openings."""
    A, B, cw = HALF_LENGTH, HALF_WIDTH, CUSHION_WIDTH
    m, h, d = CORNER_HOLE, MIDDLE_HOLE_HALF, MIDDLE_HOLE_DEPTH
    z0, z1 = BED_Z - BED_THICKNESS, BED_Z
    out = [_box("bed_centre", "cloth", -A - cw, A + cw, -(B - m), B - m, z0, z1)]
    for side, s in (("top", 1.0), ("bottom", -1.0)):
        ya, yb = sorted((s * (B - m), s * (B + cw)))
        out.append(_box(f"bed_{side}_left", "cloth", -(A - m), -h, ya, yb, z0, z1))
        out.append(_box(f"bed_{side}_right", "cloth", h, A - m, ya, yb, z0, z1))
        yc, yd = sorted((s * (B - m), s * (B - d)))
        out.append(_box(f"bed_{side}_middle", "cloth", -h, h, yc, yd, z0, z1))
    return out


def cushion_noses() -> list[tuple[str, tuple[float, float, float], tuple[float, float, float]]]:
    """The six cushion noses as capsule axes ``(name, p0, p1)`` of radius ``NOSE_RADIUS``.

    Each axis sits out and up from the nose line so that a ball touching it does so at
    ``NOSE_HEIGHT``; the capsules' rounded ends are the pocket jaws.
    """
    A, B = HALF_LENGTH, HALF_WIDTH
    g, mg, r = CORNER_GAP, MIDDLE_GAP, NOSE_RADIUS
    out_off, z = r * np.cos(NOSE_ANGLE), BED_Z + NOSE_HEIGHT + r * np.sin(NOSE_ANGLE)
    out = []
    for side, s in (("top", 1.0), ("bottom", -1.0)):
        y = s * (B + out_off)
        for part, x0, x1 in (("left", -A + g, -mg), ("right", mg, A - g)):
            out.append((f"cushion_{side}_{part}", (x0 + r, y, z), (x1 - r, y, z)))
    for side, s in (("left", -1.0), ("right", 1.0)):
        x = s * (A + out_off)
        out.append((f"cushion_{side}", (x, -B + g + r, z), (x, B - g - r, z)))
    return out


def _cushions_and_rails() -> list[str]:
    A, B, cw = HALF_LENGTH, HALF_WIDTH, CUSHION_WIDTH
    g, mg = CORNER_GAP, MIDDLE_GAP
    z0, z1 = BED_Z, BED_Z + CUSHION_HEIGHT
    out = []
    # Each cushion: the rubber as a box you see, and the nose capsule (hidden, not colliding).
    for side, s in (("top", 1.0), ("bottom", -1.0)):
        ya, yb = sorted((s * B, s * (B + cw)))
        for part, x0, x1 in (("left", -A + g, -mg), ("right", mg, A - g)):
            out.append(_box(f"rubber_{side}_{part}", "cushion_visual", x0, x1, ya, yb, z0, z1))
    for side, s in (("left", -1.0), ("right", 1.0)):
        xa, xb = sorted((s * A, s * (A + cw)))
        out.append(_box(f"rubber_{side}", "cushion_visual", xa, xb, -B + g, B - g, z0, z1))
    out += [_capsule(name, p0, p1) for name, p0, p1 in cushion_noses()]
    # Wooden rails around everything, from the tray up to just above the cushions, so balls that
    # drop through an opening stay inside the table.
    ox, oy = A + cw + RAIL_WIDTH, B + cw + RAIL_WIDTH
    rz0, rz1 = BED_Z - TRAY_DROP - 0.05, BED_Z + RAIL_HEIGHT
    wood = (0.35, 0.18, 0.07, 1.0)
    out.append(_box("rail_top", "rail", -ox, ox, B + cw, oy, rz0, rz1, wood))
    out.append(_box("rail_bottom", "rail", -ox, ox, -oy, -B - cw, rz0, rz1, wood))
    out.append(_box("rail_left", "rail", -ox, -A - cw, -B - cw, B + cw, rz0, rz1, wood))
    out.append(_box("rail_right", "rail", A + cw, ox, -B - cw, B + cw, rz0, rz1, wood))
    # Catch tray under the bed and four legs (legs are only for the player's view).
    tz = BED_Z - TRAY_DROP
    out.append(_box("tray", "rail", -A - cw, A + cw, -B - cw, B + cw, tz - 0.02, tz, wood))
    for i, (sx, sy) in enumerate(((-1, -1), (-1, 1), (1, -1), (1, 1))):
        x, y = sx * (A - 0.1), sy * (B - 0.1)
        out.append(_box(f"leg_{i}", "rail", x - 0.06, x + 0.06, y - 0.06, y + 0.06, 0.0, tz - 0.02,
                        wood))
    return out


def _balls() -> list[str]:
    out = []
    for i, (name, rgb) in enumerate(BALLS):
        # Parked in a row above the table until a layout is applied (reset sets qpos).
        x = -0.5 + 0.1 * i
        # Balls never meet each other in MuJoCo (collide.py does that); the cue ball meets the tip.
        affinity = "2" if name == "cue" else "0"
        out.append(
            f'<body name="{name}" pos="{_fmt(x, 0.0, BED_Z + BALL_RADIUS)}">'
            f'<freejoint name="{name}"/>'
            f'<geom name="{name}" class="ball" rgba="{_fmt(*rgb, 1.0)}" conaffinity="{affinity}"/>'
            "</body>"
        )
    return out


def _cue() -> str:
    """The cue: a free body (frame: origin at the tip, +z toward the butt), gravity compensated.

    Only the small tip sphere collides (contype bit 2, met by the cue ball alone); the shaft
    segments are visual, so the scripted stroke never snags on other balls or the rails.
    """
    geoms = []
    for k, (z0, z1, r) in enumerate(cue_geom.segments()):
        rgba = cue_geom.BUTT_RGBA if k >= cue_geom.N_SEGMENTS - 2 else cue_geom.SHAFT_RGBA
        geoms.append(f'<geom name="cue_seg{k}" class="cue_visual" type="cylinder" '
                     f'fromto="0 0 {z0:.6g} 0 0 {z1:.6g}" size="{r:.6g}" rgba="{_fmt(*rgba)}"/>')
    r_tip = cue_geom.TIP_RADIUS
    # A white band over the first segment (just proud of it, so it shows) marks the tip end.
    r_band = cue_geom.segments()[0][2] * 1.03
    geoms.append(f'<geom name="cue_ferrule" class="cue_visual" type="cylinder" '
                 f'fromto="0 0 -0.0005 0 0 {cue_geom.TIP_LENGTH}" size="{r_band:.6g}" '
                 f'rgba="{_fmt(*cue_geom.TIP_RGBA)}"/>')
    # Collision sphere whose front touches the tip face's centre.
    geoms.append(f'<geom name="cue_tip" class="cue_tip" pos="0 0 {r_tip:.6g}" size="{r_tip:.6g}"/>')
    bp = cue_geom.BALANCE_POINT
    m, L = cue_geom.CUE_MASS, cue_geom.CUE_LENGTH
    ixx = m * L**2 / 12.0
    izz = 0.5 * m * (0.5 * (cue_geom.TIP_RADIUS + cue_geom.BUTT_RADIUS)) ** 2
    return (f'<body name="cue_stick" pos="0 0 {BED_Z + 0.5:.6g}" gravcomp="1">'
            f'<freejoint name="cue_stick"/>'
            f'<inertial pos="0 0 {bp}" mass="{m}" diaginertia="{_fmt(ixx, ixx, izz)}"/>'
            + "".join(geoms) + "</body>")


def _look_at(pos: np.ndarray, target: np.ndarray) -> str:
    """MuJoCo ``xyaxes`` for a camera at ``pos`` looking at ``target`` with world z up in the image."""
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return _fmt(*right, *up)


def _cameras() -> list[str]:
    # Overhead: sees the whole table (3 m x 1.6 m with rails) in a 4:3 picture, +x to the right.
    over = f'<camera name="overhead" pos="0 0 {BED_Z + 2.75:.6g}" xyaxes="1 0 0 0 1 0" fovy="45"/>'
    # Player: standing behind the left (foot) end, eyes at 1.5 m, looking down the table.
    eye = np.array([-HALF_LENGTH - 1.0, -0.35, BED_Z + 0.75])
    target = np.array([0.2, 0.0, BED_Z])
    player = f'<camera name="player" pos="{_fmt(*eye)}" xyaxes="{_look_at(eye, target)}" fovy="55"/>'
    return [over, player]


def build_xml() -> str:
    """The complete MJCF of the billiards world."""
    R = BALL_RADIUS
    body = "\n    ".join(_bed() + _cushions_and_rails() + _balls() + [_cue()] + _cameras())
    return f"""<mujoco model="billiards">
  <compiler angle="radian"/>
  <option timestep="{TIMESTEP}" cone="elliptic" integrator="implicitfast"/>
  <visual>
    <global offwidth="1280" offheight="960"/>
    <quality shadowsize="1024"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.35 0.35 0.35" specular="0.1 0.1 0.1"/>
  </visual>
  <default>
    <default class="ball">
      <geom type="sphere" size="{R}" mass="{BALL_MASS}" condim="6" priority="0" contype="1"
            friction="0.06 0.0003 0.0006" solimp="0.95 0.99 0.001"/>
    </default>
    <default class="cloth">
      <geom condim="1" priority="1" contype="1" conaffinity="1" rgba="{_fmt(*CLOTH_RGBA)}"
            solref="{CLOTH_SOLREF}" solimp="0.95 0.99 0.001"/>
    </default>
    <default class="cushion">
      <geom contype="0" conaffinity="0" group="3"/>
    </default>
    <default class="cushion_visual">
      <geom contype="0" conaffinity="0" rgba="0.04 0.38 0.2 1"/>
    </default>
    <default class="rail">
      <geom condim="3" priority="1" contype="1" conaffinity="1" friction="0.3"
            solref="0.004 0.5" solimp="0.95 0.99 0.001"/>
    </default>
    <default class="cue_visual">
      <geom contype="0" conaffinity="0" mass="0"/>
    </default>
    <default class="cue_tip">
      <geom type="sphere" contype="2" conaffinity="0" priority="1" condim="3" friction="0.6"
            solref="{_bounce(TIP_ZETA)}" solimp="0.95 0.99 0.001" mass="0" rgba="0.95 0.95 0.92 1"/>
    </default>
  </default>
  <worldbody>
    <light name="top_left" pos="-0.8 0 {BED_Z + 2.0:.6g}" dir="0 0 -1" diffuse="0.3 0.3 0.3" specular="0.1 0.1 0.1"/>
    <light name="top_right" pos="0.8 0 {BED_Z + 2.0:.6g}" dir="0 0 -1" diffuse="0.3 0.3 0.3" specular="0.1 0.1 0.1"
           castshadow="false"/>
    <geom name="floor" type="plane" size="6 6 0.1" rgba="0.55 0.5 0.45 1" contype="1" conaffinity="1"/>
    {body}
  </worldbody>
</mujoco>
"""


def pocket_of(xy: np.ndarray) -> str:
    """Name of the pocket whose opening is nearest to the point ``xy``."""
    names = list(POCKETS)
    centres = np.array([POCKETS[n][0] for n in names])
    return names[int(np.argmin(np.linalg.norm(centres - np.asarray(xy)[:2], axis=1)))]


def in_pocket_opening(xy: np.ndarray, margin: float = 0.0) -> bool:
    """True when ``xy`` lies over one of the six openings in the bed (``margin`` widens them)."""
    x, y = abs(float(xy[0])), abs(float(xy[1]))
    inside_rails = x <= HALF_LENGTH + CUSHION_WIDTH + margin and y <= HALF_WIDTH + CUSHION_WIDTH + margin
    corner = x >= HALF_LENGTH - CORNER_HOLE - margin and y >= HALF_WIDTH - CORNER_HOLE - margin
    middle = x <= MIDDLE_HOLE_HALF + margin and y >= HALF_WIDTH - MIDDLE_HOLE_DEPTH - margin
    return inside_rails and (corner or middle)
