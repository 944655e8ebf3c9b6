"""``TabletopEnv``: language-conditioned manipulation with end-effector delta actions.

Action (float32[7], OpenVLA's layout): ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``. The first
three are metres per control step and the next three radians per step about the *world* axes;
they move a commanded TCP pose, which damped least-squares IK turns into joint targets for the
position servos (the commanded position stays inside ``WORKSPACE``). ``gripper`` is 0 = open ..
1 = closed (continuous: the finger targets interpolate). Values outside ``action_space`` are
clipped; ``info["clipped_actions"]`` counts the steps of this episode that needed clipping. NaN or
inf raise ``SimError``.

Observation (dict):
    "<camera>"        uint8[H, W, 3] RGB for each camera in ``cameras`` (default agentview, wrist)
    "<camera>_depth"  float32[H, W] metres, when ``depth=True``
    "state"           float32[15]: TCP position (3, m, world), TCP orientation quaternion
                      (4, w x y z), gripper opening (1, m between the fingers), arm joints (7, rad)

``info``: "instruction", "task", "success", "clipped_actions", "step". The episode terminates on
success and is truncated at ``max_steps``. ``ground_truth()`` gives a JSON-able snapshot of the
world for perception and video-QA supervision; ``set_goal()`` gives the current scene a new
goal (the agent's operator commands).

Vectorising: ``gymnasium.vector.AsyncVectorEnv`` works; if the parent process has already
rendered with EGL, pass ``context="spawn"`` (or "forkserver"), as forked workers inherit a GL
state that Mesa's EGL cannot reuse.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from sim import render
from sim.errors import SimError
from sim.tabletop import scene, tasks
from sim.tabletop.arm import FINGER_RANGE, HOME_QPOS, JOINT_LIMITS
from sim.tabletop.ik import DampedLeastSquaresIK

MAX_DPOS = 0.05  # m per step: 0.5 m/s at 10 Hz, brisk but safe for grasps
MAX_DROT = 0.25  # rad per step
CONTROL_HZ = 10  # OpenVLA-style datasets are recorded at 5-15 Hz
# The commanded TCP stays in this box (m): above the table, within the arm's comfortable reach.
WORKSPACE = np.array([[0.25, 0.8], [-0.4, 0.4], [0.012, 0.45]])
LEASH = 0.015  # m: how far the commanded TCP may lead the measured one at the start of a step
ACTION_LOW = np.array([-MAX_DPOS] * 3 + [-MAX_DROT] * 3 + [0.0], dtype=np.float32)
ACTION_HIGH = np.array([MAX_DPOS] * 3 + [MAX_DROT] * 3 + [1.0], dtype=np.float32)
STATE_DIM = 15
# Bounds of "state": TCP position (well beyond the reach), unit quaternion, opening, joint limits.
# MuJoCo's joint limits are soft constraints that a pushing controller overshoots slightly (a
# policy drove the opening to 0.0800177 of 0.08), so opening and joints get a small margin.
_LIMIT_MARGIN = np.float32(0.05)  # rad for the arm; 5 mm for the opening
STATE_LOW = np.concatenate([[-2.0] * 3, [-1.0] * 4, [-0.005],
                            JOINT_LIMITS[:, 0] - _LIMIT_MARGIN]).astype(np.float32)
STATE_HIGH = np.concatenate([[2.0] * 3, [1.0] * 4, [2 * FINGER_RANGE + 0.005],
                             JOINT_LIMITS[:, 1] + _LIMIT_MARGIN]).astype(np.float32)
DEFAULT_CAMERAS = ("agentview", "wrist")


def _rotvec_to_mat(v: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_axisAngle2Quat(quat, v / (np.linalg.norm(v) or 1.0), float(np.linalg.norm(v)))
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)


class TabletopEnv(gym.Env):
    """One task family over randomised scenes.

    Args:
        task: "reach" | "pick_up" | "push" | "put_in".
        render_mode: None or "rgb_array" (``render()`` returns the agentview image).
        cameras: names rendered into the observation; ``()`` renders nothing (fast expert runs).
        image_size: (width, height) of every camera image.
        depth: also return "<camera>_depth" images in metres.
        max_steps: truncation limit; None uses the family's default (``tasks.MAX_STEPS``).
        instruction_split: "train" | "heldout" | "all" paraphrase templates, or "extended" (train +
            more training-only wording and shape synonyms, for pretrained-language policies).
        object_split: "all" | "train" (``tasks.HELDOUT_COMBOS`` never placed) | "heldout" (the
            target is one of them).
        colors: allowed colours of the *target* (None: all); distractors may use any colour.
        max_distractors: 0..3 other objects per scene (the number is drawn uniformly).

    Reward is sparse: 1.0 on the step that succeeds, else 0.0.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, task: str = "pick_up", render_mode: str | None = None,
                 cameras: tuple[str, ...] = DEFAULT_CAMERAS, image_size: tuple[int, int] = (128, 128),
                 depth: bool = False, max_steps: int | None = None, instruction_split: str = "train",
                 colors: tuple[str, ...] | None = None, max_distractors: int = 3,
                 object_split: str = "all") -> None:
        self.task = self._family = tasks.check_family(task)
        self.instruction_split = tasks.check_split(instruction_split)
        self.object_split = tasks.check_object_split(object_split)
        self.target_colors = tasks.check_colors(colors)
        if render_mode not in (None, "rgb_array"):
            raise SimError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 0 <= max_distractors <= scene.SLOTS_PER_SHAPE - 1:
            raise SimError(f"max_distractors must be in 0..{scene.SLOTS_PER_SHAPE - 1}")
        if len(image_size) != 2 or min(int(v) for v in image_size) < 1:
            raise SimError(f"image_size must be (width, height) of positive ints, got {image_size!r}")
        self.render_mode = render_mode
        self._max_steps_given = max_steps is not None
        self.max_steps = int(max_steps or tasks.MAX_STEPS[self.task])
        self.max_distractors = max_distractors
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.n_substeps = int(round(1.0 / (CONTROL_HZ * scene.TIMESTEP)))

        self.model, self.ids = scene.build_model()
        self.data = mujoco.MjData(self.model)
        self.ik = DampedLeastSquaresIK(self.model, self.ids.tcp_site, self.ids.arm_qpos, self.ids.arm_dof)
        w, h = self.image_size
        self.cameras = render.Cameras(self.model, tuple(cameras), w, h, depth=depth) if cameras else None
        self._render_cams: render.Cameras | None = None

        obs = {}
        far = 1.01 * float(self.model.stat.extent * self.model.vis.map.zfar)  # background depth
        for name in tuple(cameras):
            obs[name] = spaces.Box(0, 255, (h, w, 3), np.uint8)
            if depth:
                obs[name + "_depth"] = spaces.Box(0.0, far, (h, w), np.float32)
        obs["state"] = spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32)

        self.episode: tasks.EpisodeSpec | None = None
        self.instruction = ""
        self._target_pos = np.zeros(3)
        self._target_mat = np.eye(3)
        self._q_cmd = HOME_QPOS.copy()
        self._start_pos = np.zeros(3)
        self._clipped = 0
        self._steps = 0
        self._success = False
        self._last_obs: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        m, d, ids = self.model, self.data, self.ids
        mujoco.mj_resetData(m, d)  # no warm-start state leaks from the previous episode
        self.task = self._family  # set_goal() may have changed it for the last episode
        if not self._max_steps_given:
            self.max_steps = tasks.MAX_STEPS[self.task]
        self.episode = tasks.sample_episode(self.np_random, self.task, self.target_colors,
                                            self.instruction_split, self.max_distractors,
                                            self.object_split)
        self.instruction = self.episode.instruction

        d.qpos[ids.arm_qpos] = HOME_QPOS
        d.qpos[ids.finger_qpos] = FINGER_RANGE
        # Everything parked, then the episode's objects placed. A parked object floats without
        # contacts (gravity compensated, collisions off): resting contacts under the table
        # would cost physics time every step for nothing.
        for name in ids.object_names:
            self._set_object(name, scene.parked_pos(name), 0.0)
            self._set_active(name, False)
        for obj in self.episode.objects:
            pos = np.array([obj.xy[0], obj.xy[1], scene.half_height(obj.shape)])
            self._set_object(obj.slot, pos, obj.yaw)
            self._set_active(obj.slot, True)
            self.model.geom_rgba[self._geom(obj.slot)] = (*tasks.COLORS[obj.color], 1.0)
        for rec in scene.RECEPTACLES:
            d.mocap_pos[ids.receptacle_mocap[rec]] = scene.receptacle_parked_pos(rec)
        if self.episode.receptacle is not None:
            x, y = self.episode.receptacle_xy
            d.mocap_pos[ids.receptacle_mocap[self.episode.receptacle]] = (x, y, 0.0)

        self._q_cmd = HOME_QPOS.copy()
        d.ctrl[:7] = self._q_cmd
        d.ctrl[7:9] = FINGER_RANGE
        mujoco.mj_forward(m, d)
        for _ in range(10):  # let objects settle onto the table
            mujoco.mj_step(m, d)
        self._target_pos, self._target_mat = self.ik.site_pose(HOME_QPOS)
        self._start_pos = self.object_pos(self.episode.target.slot)
        self._clipped, self._steps = 0, 0
        self._success = self._check_success()
        return self._obs(), self._info()

    def set_goal(self, family: str, target: str, side: str | None = None,
                 receptacle: str | None = None, instruction: str | None = None) -> None:
        """Give the current scene a new goal without resetting it (the agent's operator commands).

        ``target`` is an object's description ("red cube") or pool id ("cube0"). The step budget
        starts again and the push distance is measured from where the target is now. Raises
        ``SimError`` when the scene cannot host the goal (no such object, no such receptacle).
        """
        ep = self.episode
        if ep is None:
            raise SimError("call reset() before set_goal()")
        family = tasks.check_family(family)
        match = [o for o in ep.objects if target in (o.description, o.slot)]
        if not match:
            seen = ", ".join(o.description for o in ep.objects)
            raise SimError(f"no {target!r} in this scene; it has: {seen}")
        if family == "push" and side not in tasks.SIDES:
            raise SimError(f"push needs a side: {' or '.join(tasks.SIDES)} (got {side!r})")
        if family == "put_in" and (receptacle is None or receptacle != ep.receptacle):
            have = f"a {ep.receptacle}" if ep.receptacle else "no receptacle"
            raise SimError(f"cannot put into {receptacle!r}: this scene has {have}")
        obj = match[0]
        if instruction is None:
            preps = {"bowl": ("in", "into"), "plate": ("on", "onto")}.get(receptacle or "", ("", ""))
            instruction = tasks.TEMPLATES[family]["train"][0].format(
                obj=obj.description, side=side or "", rec=receptacle or "", prep=preps[0], prep2=preps[1])
        objects = (obj,) + tuple(o for o in ep.objects if o is not obj)
        self.episode = dataclasses.replace(
            ep, family=family, objects=objects, instruction=instruction,
            side=side if family == "push" else None)
        self.task, self.instruction = family, instruction
        if not self._max_steps_given:
            self.max_steps = tasks.MAX_STEPS[family]
        self._start_pos = self.object_pos(obj.slot)
        self._steps = 0
        self._success = self._check_success()

    def _geom(self, slot: str) -> int:
        return int(self.ids.object_geoms[self.ids.object_names.index(slot)])

    def _set_active(self, slot: str, active: bool) -> None:
        i = self.ids.object_names.index(slot)
        g, b = self.ids.object_geoms[i], self.ids.object_bodies[i]
        self.model.geom_contype[g] = self.model.geom_conaffinity[g] = int(active)
        self.model.body_gravcomp[b] = 0.0 if active else 1.0

    def _set_object(self, slot: str, pos: np.ndarray, yaw: float) -> None:
        i = self.ids.object_names.index(slot)
        adr, dof = self.ids.object_qpos[i], self.ids.object_dof[i]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.data.qvel[dof:dof + 6] = 0.0

    # ------------------------------------------------------------------ control
    def step(self, action):
        if self.episode is None:
            raise SimError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (7,):
            raise SimError(f"action must have shape (7,), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise SimError(f"action contains NaN or inf: {a.tolist()}")
        clipped = np.clip(a, ACTION_LOW, ACTION_HIGH)
        if np.any(clipped != a):
            self._clipped += 1

        # The commanded TCP stays within LEASH of the measured one before the new delta is
        # added: free motion tracks well within it, but a hand blocked by the table or an object
        # is not wound up step after step into a huge servo force that crushes contacts.
        measured = self.data.site_xpos[self.ids.tcp_site]
        offset = self._target_pos - measured
        dist = float(np.linalg.norm(offset))
        if dist > LEASH:
            self._target_pos = measured + offset * (LEASH / dist)
        self._target_pos = np.clip(self._target_pos + clipped[:3], WORKSPACE[:, 0], WORKSPACE[:, 1])
        if np.any(clipped[3:6]):
            self._target_mat = _rotvec_to_mat(clipped[3:6]) @ self._target_mat
        q_prev = self._q_cmd
        self._q_cmd = self.ik.solve(self._target_pos, self._target_mat, q_prev).qpos
        self.data.ctrl[7:9] = FINGER_RANGE * (1.0 - clipped[6])
        # Ramp the joint targets over the first half of the step: smooth motion keeps grasps.
        ramp = max(1, self.n_substeps // 2)
        for k in range(ramp):
            self.data.ctrl[:7] = q_prev + (k + 1) / ramp * (self._q_cmd - q_prev)
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps - ramp)  # targets reached

        self._steps += 1
        self._success = self._check_success()
        terminated = self._success
        truncated = self._steps >= self.max_steps and not terminated
        return self._obs(), 0.0 + float(self._success), terminated, truncated, self._info()

    # ------------------------------------------------------------------ state
    def object_pos(self, slot: str) -> np.ndarray:
        i = self.ids.object_names.index(slot)
        return self.data.xpos[self.ids.object_bodies[i]].copy()

    def object_quat(self, slot: str) -> np.ndarray:
        i = self.ids.object_names.index(slot)
        return self.data.xquat[self.ids.object_bodies[i]].copy()

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP (position, 3x3 rotation) in the world frame."""
        s = self.ids.tcp_site
        return self.data.site_xpos[s].copy(), self.data.site_xmat[s].reshape(3, 3).copy()

    def commanded_tcp(self) -> tuple[np.ndarray, np.ndarray]:
        """The TCP pose the actions have commanded so far (what the IK is tracking)."""
        return self._target_pos.copy(), self._target_mat.copy()

    def gripper_opening(self) -> float:
        return float(np.sum(self.data.qpos[self.ids.finger_qpos]))

    def receptacle_pos(self) -> np.ndarray | None:
        if self.episode is None or self.episode.receptacle is None:
            return None
        return self.data.mocap_pos[self.ids.receptacle_mocap[self.episode.receptacle]].copy()

    def finger_contacts(self, slot: str) -> tuple[bool, bool]:
        """(left pad touches ``slot``, right pad touches ``slot``)."""
        g = self._geom(slot)
        left, right = self.ids.finger_geoms
        touch = [False, False]
        for c in self.data.contact[: self.data.ncon]:
            pair = (c.geom1, c.geom2)
            if g in pair:
                touch[0] |= left in pair
                touch[1] |= right in pair
        return touch[0], touch[1]

    def task_state(self) -> tasks.TaskState:
        ep = self.episode
        target = ep.target
        left, right = self.finger_contacts(target.slot)
        return tasks.TaskState(
            tcp_pos=self.tcp_pose()[0], target_pos=self.object_pos(target.slot),
            target_start=self._start_pos, target_half_height=scene.half_height(target.shape),
            left_touch=left, right_touch=right, side=ep.side, receptacle=ep.receptacle,
            receptacle_pos=self.receptacle_pos())

    def _check_success(self) -> bool:
        return tasks.PREDICATES[self.task](self.task_state())

    def _state_vector(self) -> np.ndarray:
        pos, mat = self.tcp_pose()
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, mat.reshape(-1))
        return np.concatenate([pos, quat, [self.gripper_opening()],
                               self.data.qpos[self.ids.arm_qpos]]).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        obs = self.cameras.render(self.data) if self.cameras is not None else {}
        obs["state"] = self._state_vector()
        self._last_obs = obs
        return obs

    def _info(self) -> dict[str, Any]:
        return {"instruction": self.instruction, "task": self.task, "success": bool(self._success),
                "clipped_actions": self._clipped, "step": self._steps}

    def ground_truth(self) -> dict[str, Any]:
        """JSON-able snapshot: objects (colour, shape, pose), receptacle, target, TCP, success."""
        ep = self.episode
        if ep is None:
            raise SimError("call reset() before ground_truth()")
        objects = []
        for i, obj in enumerate(ep.objects):
            objects.append({
                "id": obj.slot, "name": obj.description, "color": obj.color,
                "rgb": list(tasks.COLORS[obj.color]), "shape": obj.shape, "is_target": i == 0,
                "position": self.object_pos(obj.slot).tolist(),
                "quaternion": self.object_quat(obj.slot).tolist(),
            })
        rec = None
        if ep.receptacle is not None:
            rec = {"kind": ep.receptacle, "position": self.receptacle_pos().tolist()}
        pos, _ = self.tcp_pose()
        return {
            "task": self.task, "instruction": self.instruction, "target": ep.target.slot,
            "side": ep.side, "receptacle": rec, "objects": objects,
            "tcp": {"position": pos.tolist(), "quaternion": self._state_vector()[3:7].tolist()},
            "gripper_opening": self.gripper_opening(), "success": bool(self._success),
            "step": self._steps, "time": float(self.data.time),
        }

    # ------------------------------------------------------------------ cameras
    def camera_intrinsics(self, name: str) -> np.ndarray:
        w, h = self.image_size
        return render.intrinsics(self.model, name, w, h)

    def camera_pose(self, name: str) -> np.ndarray:
        """4x4 camera -> world (OpenCV convention: x right, y down, z forward)."""
        return render.camera_pose(self.model, self.data, name)

    def render(self):
        """The agentview image now (re-uses the observation's when agentview is a camera)."""
        if self.render_mode != "rgb_array":
            return None
        if self._last_obs is not None and "agentview" in self._last_obs:
            return self._last_obs["agentview"]
        if self._render_cams is None:
            w, h = self.image_size
            self._render_cams = render.Cameras(self.model, ("agentview",), w, h)
        return self._render_cams.render(self.data)["agentview"]

    def close(self) -> None:
        for cams in (self.cameras, self._render_cams):
            if cams is not None:
                cams.close()
