"""A 7-DoF arm with the Franka Panda's published kinematics, built from capsules and boxes.

The link frames follow Franka's modified Denavit-Hartenberg table (the same frames as the
panda in mujoco_menagerie, written here from the published parameters, not copied):

    joint   a        d       alpha
    1       0        0.333   0
    2       0        0       -pi/2
    3       0        0.316   +pi/2
    4       0.0825   0       +pi/2
    5      -0.0825   0.384   -pi/2
    6       0        0       +pi/2
    7       0.088    0       +pi/2
    flange  0        0.107   0        (hand turned -45 deg about z)

Every joint turns about its body's z axis. The visual shape is a chain of capsules between
successive joint origins: no meshes to download. Only the hand and fingers collide (with the
table and the objects); the arm links are visual, which keeps contacts few and physics fast.
Control: every arm body has ``gravcomp="1"`` and each joint a position actuator, so joint
targets from IK are tracked without a gravity sag; the fingers are two position-controlled
slide joints.
"""

from __future__ import annotations

import numpy as np

# Franka's published joint limits (rad).
JOINT_LIMITS = np.array([
    [-2.8973, 2.8973],
    [-1.7628, 1.7628],
    [-2.8973, 2.8973],
    [-3.0718, -0.0698],
    [-2.8973, 2.8973],
    [-0.0175, 3.7525],
    [-2.8973, 2.8973],
])
# A comfortable "ready" pose: the hand points straight down in front of the robot.
HOME_QPOS = np.array([0.0, -0.3, 0.0, -2.4, 0.0, 2.1, np.pi / 4])
FINGER_RANGE = 0.04  # each finger slides 0..4 cm: an 8 cm opening, as on the real hand
FLANGE = 0.107
HAND_TO_FINGER = 0.0584  # finger joints sit this far along the hand's z axis
FINGER_LENGTH = 0.05
TCP_OFFSET = HAND_TO_FINGER + FINGER_LENGTH - 0.005  # tool centre point: between the fingertip pads

# (name, pos of body in parent, quat wxyz of body in parent, capsule to next joint, radius)
# quat "1 -1 0 0" is -90 deg about x (alpha=-pi/2), "1 1 0 0" +90 deg (alpha=+pi/2).
_S = "0.70710678"
_LINKS = [
    ("link1", "0 0 0.333", "1 0 0 0", "0 0 -0.2 0 0 0", 0.06),
    ("link2", "0 0 0", f"{_S} -{_S} 0 0", "0 0 0 0 -0.316 0", 0.06),
    ("link3", "0 -0.316 0", f"{_S} {_S} 0 0", "0 0 0 0.0825 0 0", 0.055),
    ("link4", "0.0825 0 0", f"{_S} {_S} 0 0", "0 0 0 -0.0825 0.384 0", 0.055),
    ("link5", "-0.0825 0.384 0", f"{_S} -{_S} 0 0", "0 0 -0.2 0 0 0", 0.05),
    ("link6", "0 0 0", f"{_S} {_S} 0 0", "0 0 0 0.088 0 0", 0.045),
    ("link7", "0.088 0 0", f"{_S} {_S} 0 0", "0 0 0 0 0 0.09", 0.04),
]
# Position-servo stiffness per joint: the big shoulder joints carry more inertia.
_KP = [4000, 4000, 3000, 3000, 1500, 1500, 800]
# Franka's published joint torque limits (Nm): bound what a servo can push into the table.
TORQUE_LIMITS = [87, 87, 87, 87, 12, 12, 12]
_ARM_RGBA = "0.92 0.92 0.94 1"


def arm_xml() -> tuple[str, str]:
    """Return ``(body_xml, actuator_xml)`` for the arm; the base sits at the world origin.

    Sites: ``tcp`` (between the fingertip pads, z pointing out of the hand). Camera: ``wrist``.
    """
    body = ['<body name="link0" pos="0 0 0">',
            '  <geom type="cylinder" size="0.07 0.07" pos="0 0 0.07" rgba="0.3 0.3 0.32 1" '
            'contype="0" conaffinity="0"/>']
    closers = []
    for i, (name, pos, quat, fromto, radius) in enumerate(_LINKS):
        lo, hi = JOINT_LIMITS[i]
        body.append(f'<body name="{name}" pos="{pos}" quat="{quat}" gravcomp="1">')
        body.append(f'  <joint name="joint{i + 1}" axis="0 0 1" range="{lo} {hi}" '
                    'damping="2" armature="0.1"/>')
        body.append(f'  <geom type="capsule" fromto="{fromto}" size="{radius}" rgba="{_ARM_RGBA}" '
                    'contype="0" conaffinity="0" mass="1.5"/>')
        closers.append("</body>")
    # Hand: turned -45 deg about z so the fingers line up with the robot's base frame at q7=pi/4.
    fz = HAND_TO_FINGER
    body.append(f'<body name="hand" pos="0 0 {FLANGE}" quat="0.92387953 0 0 -0.38268343" gravcomp="1">')
    body.append('  <geom name="hand_palm" type="box" size="0.025 0.09 0.025" pos="0 0 0.03" '
                'rgba="0.85 0.85 0.88 1" mass="0.6"/>')
    body.append(f'  <site name="tcp" pos="0 0 {TCP_OFFSET}" size="0.005" rgba="1 0 0 0.4" group="4"/>')
    # Wrist camera: beside the palm, looking along the hand's z (towards the fingertips).
    body.append('  <camera name="wrist" pos="0.07 0 0.02" xyaxes="0 -1 0 -0.97 0 -0.26" fovy="75"/>')
    for side, sign in (("left", 1), ("right", -1)):
        y = 0.008 * sign
        body.append(f'  <body name="{side}_finger" pos="0 0 {fz}" gravcomp="1">')
        body.append(f'    <joint name="{side}_finger" type="slide" axis="0 {sign} 0" '
                    f'range="0 {FINGER_RANGE}" damping="5" armature="0.01"/>')
        body.append(f'    <geom name="{side}_pad" type="box" size="0.011 0.008 {FINGER_LENGTH / 2}" '
                    f'pos="0 {y} {FINGER_LENGTH / 2}" rgba="0.2 0.2 0.22 1" mass="0.05" '
                    'condim="4" friction="1.5 0.02 0.002" priority="1"/>')
        body.append("  </body>")
    body.append("</body>")
    body.extend(reversed(closers))
    body.append("</body>")

    act = []
    for i, (kp, tau) in enumerate(zip(_KP, TORQUE_LIMITS)):
        lo, hi = JOINT_LIMITS[i]
        act.append(f'<position name="act{i + 1}" joint="joint{i + 1}" kp="{kp}" kv="{kp / 25:.0f}" '
                   f'ctrlrange="{lo} {hi}" forcerange="{-tau} {tau}"/>')
    for side in ("left", "right"):
        act.append(f'<position name="{side}_finger" joint="{side}_finger" kp="300" kv="10" '
                   f'ctrlrange="0 {FINGER_RANGE}" forcerange="-20 20"/>')
    return "\n".join(body), "\n".join(act)
