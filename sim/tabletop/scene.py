"""The tabletop world as MJCF built in code: table, arm, a pool of objects, two receptacles, cameras.

The model is compiled once per env and never rebuilt: every episode re-uses a fixed pool of
objects (``SLOTS_PER_SHAPE`` cubes and as many cylinders). Objects an episode does not use are
parked on the floor under the table, out of every camera's view; colours are set through
``model.geom_rgba``. Re-using one model keeps reset cheap and one renderer alive per env.

Frames: the world origin is the arm's base on the table top (z = 0 is the table surface);
+x points away from the robot, +y to the robot's left.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim.tabletop.arm import arm_xml

SHAPES = ("cube", "cylinder")
SLOTS_PER_SHAPE = 4  # enough for a target plus three distractors of one shape
CUBE_HALF = 0.02  # 4 cm cubes: fit the 8 cm gripper with room to spare
CYL_RADIUS, CYL_HALF_HEIGHT = 0.02, 0.025
OBJECT_MASS = 0.05
RECEPTACLES = ("bowl", "plate")
BOWL_RADIUS, BOWL_WALL_HEIGHT = 0.08, 0.035  # inner radius about 7.4 cm
PLATE_RADIUS, PLATE_HALF_THICK = 0.085, 0.005
FLOOR_Z = -0.75
# Agentview: in front of the table facing the robot, high enough to see over the objects.
AGENT_POS = np.array([1.05, 0.0, 0.7])
AGENT_LOOK_AT = np.array([0.47, 0.0, 0.0])
AGENT_FOVY = 45.0  # every object position of every family stays in view at any size
TIMESTEP = 0.002  # 2 ms: small enough for stiff finger contacts with elliptic cones


def half_height(shape: str) -> float:
    """Distance from an object's centre to the table when it stands upright."""
    return CUBE_HALF if shape == "cube" else CYL_HALF_HEIGHT


def _look_at(pos: np.ndarray, target: np.ndarray) -> str:
    """MJCF ``xyaxes`` for a camera at ``pos`` looking at ``target`` with world z up."""
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.5f}" for v in (*right, *up))


def _object_xml(shape: str, slot: int) -> str:
    name = f"{shape}{slot}"
    park = _parked_pos(shape, slot)
    if shape == "cube":
        geom = f'type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}"'
    else:
        geom = f'type="cylinder" size="{CYL_RADIUS} {CYL_HALF_HEIGHT}"'
    return (f'<body name="{name}" pos="{park[0]} {park[1]} {park[2]}">'
            f'<freejoint name="{name}"/>'
            f'<geom name="{name}" {geom} mass="{OBJECT_MASS}" condim="4" '
            f'friction="1.0 0.02 0.002" rgba="0.5 0.5 0.5 1"/></body>')


def _parked_pos(shape: str, slot: int) -> np.ndarray:
    """Where an unused object waits: on the floor under the table, spaced apart."""
    x = 0.1 + 0.12 * slot
    y = -0.3 if shape == "cube" else 0.3
    return np.array([x, y, FLOOR_Z + half_height(shape)])


def _bowl_xml() -> str:
    parts = ['<body name="bowl" mocap="true" pos="0.3 -0.5 -0.74">',
             f'<geom name="bowl_floor" type="cylinder" size="{BOWL_RADIUS} 0.004" pos="0 0 0.004" '
             'rgba="0.45 0.3 0.2 1"/>']
    n = 16
    seg = 2 * np.pi * BOWL_RADIUS / n * 0.55
    for i in range(n):
        a = 2 * np.pi * i / n
        x, y = BOWL_RADIUS * np.cos(a), BOWL_RADIUS * np.sin(a)
        parts.append(f'<geom name="bowl_wall{i}" type="box" size="0.005 {seg:.4f} {BOWL_WALL_HEIGHT / 2}" '
                     f'pos="{x:.4f} {y:.4f} {BOWL_WALL_HEIGHT / 2}" euler="0 0 {a:.4f}" '
                     'rgba="0.45 0.3 0.2 1"/>')
    parts.append("</body>")
    return "".join(parts)


def _plate_xml() -> str:
    return ('<body name="plate" mocap="true" pos="0.6 -0.5 -0.74">'
            f'<geom name="plate" type="cylinder" size="{PLATE_RADIUS} {PLATE_HALF_THICK}" '
            f'pos="0 0 {PLATE_HALF_THICK}" rgba="0.95 0.95 0.92 1"/></body>')


def scene_xml() -> str:
    arm_body, arm_act = arm_xml()
    objects = "\n".join(_object_xml(s, i) for s in SHAPES for i in range(SLOTS_PER_SHAPE))
    agent_pos = AGENT_POS
    agent_axes = _look_at(AGENT_POS, AGENT_LOOK_AT)
    return f"""
<mujoco model="tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <!-- offsamples=0: no multisampling; 2.5x faster rendering on CPU Mesa, barely visible at 128 px -->
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="1024" offsamples="0"/></visual>
  <default>
    <!-- Stiff contacts (time constant 2 timesteps): light objects neither creep out of a grasp
         nor sink into the table when the hand presses on them. -->
    <geom solref="0.004 1" solimp="0.95 0.99 0.001"/>
  </default>
  <worldbody>
    <light pos="0.4 0 2.0" dir="0 0 -1" diffuse="0.7 0.7 0.7" castshadow="false"/>
    <light pos="1.5 0 1.0" dir="-1 0 -0.8" diffuse="0.45 0.45 0.45" castshadow="false"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 {FLOOR_Z}" rgba="0.25 0.27 0.3 1"/>
    <geom name="table" type="box" size="0.65 0.7 0.02" pos="0.4 0 -0.02" rgba="0.6 0.55 0.48 1"/>
    <camera name="agentview" pos="{agent_pos[0]} {agent_pos[1]} {agent_pos[2]}"
            xyaxes="{agent_axes}" fovy="{AGENT_FOVY}"/>
    {arm_body}
    {objects}
    {_bowl_xml()}
    {_plate_xml()}
  </worldbody>
  <contact><exclude body1="left_finger" body2="right_finger"/></contact>
  <actuator>
    {arm_act}
  </actuator>
</mujoco>
"""


@dataclass(frozen=True)
class SceneIds:
    """Indices into the compiled model that the env, the IK and the experts need."""

    tcp_site: int
    arm_qpos: np.ndarray  # qpos addresses of the 7 arm joints
    arm_dof: np.ndarray  # dof addresses of the 7 arm joints
    finger_qpos: np.ndarray  # qpos addresses of the two finger joints
    finger_geoms: tuple[int, int]
    object_names: tuple[str, ...]  # pool order: cube0..cube3, cylinder0..cylinder3
    object_bodies: np.ndarray
    object_geoms: np.ndarray
    object_qpos: np.ndarray  # qpos address of each object's free joint (7 numbers each)
    object_dof: np.ndarray
    receptacle_mocap: dict[str, int]


def build_model() -> tuple[mujoco.MjModel, SceneIds]:
    model = mujoco.MjModel.from_xml_string(scene_xml())

    def jid(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

    def gid(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)

    def bid(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)

    arm_j = [jid(f"joint{i}") for i in range(1, 8)]
    names = tuple(f"{s}{i}" for s in SHAPES for i in range(SLOTS_PER_SHAPE))
    ids = SceneIds(
        tcp_site=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tcp"),
        arm_qpos=np.array([model.jnt_qposadr[j] for j in arm_j]),
        arm_dof=np.array([model.jnt_dofadr[j] for j in arm_j]),
        finger_qpos=np.array([model.jnt_qposadr[jid(n)] for n in ("left_finger", "right_finger")]),
        finger_geoms=(gid("left_pad"), gid("right_pad")),
        object_names=names,
        object_bodies=np.array([bid(n) for n in names]),
        object_geoms=np.array([gid(n) for n in names]),
        object_qpos=np.array([model.jnt_qposadr[jid(n)] for n in names]),
        object_dof=np.array([model.jnt_dofadr[jid(n)] for n in names]),
        receptacle_mocap={r: int(model.body_mocapid[bid(r)]) for r in RECEPTACLES},
    )
    return model, ids


def parked_pos(name: str) -> np.ndarray:
    shape = "cube" if name.startswith("cube") else "cylinder"
    return _parked_pos(shape, int(name[len(shape):]))


def receptacle_parked_pos(name: str) -> np.ndarray:
    return np.array([0.3 if name == "bowl" else 0.65, 0.0, FLOOR_Z])
