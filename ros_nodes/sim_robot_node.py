"""The sim-robot node: a MuJoCo world behind ROS 2 topics, as a real robot driver would be.

Publishes, per camera, ``camera/<cam>/image_raw`` (sensor-data QoS), ``camera/<cam>/camera_info``,
``camera/<cam>/depth`` (32FC1 metres, aligned to the image, same stamp; ``depth``) and
``camera/<cam>/pose`` (``PoseStamped``: the camera's optical frame in the robot base frame, what a
calibrated robot's TF would give); ``robot/joint_states``; ``robot/instruction`` (latched);
``sim/episode`` (JSON events: ``reset`` and ``end`` with success); and, only with ``ground_truth``
(for scoring tools, never the live path), ``sim/ground_truth`` (JSON). Subscribes to
``robot/cmd_twist`` + ``robot/cmd_gripper`` (paired by stamp).

``perception_size``: the scene perceiver's accuracy was measured at 128 px, while the shipped
policy reads 64 px. With a ``perception_size`` other than ``image_size`` the cameras are also
rendered at that size with depth and published under ``camera/<cam>/rgbd/`` (``image_raw``,
``depth``, ``camera_info``, ``pose``), the RGB-D stream the perception node reads; the policy
keeps ``camera/<cam>/image_raw`` (as ``agent.world.SimWorld`` gives its perceiver its own frames).

``await_command`` (the operator's graph): a scene waits for an operator's command instead of
running its own sampled task. Until ``agent/command`` (JSON from the agent node: family, target,
side, receptacle, text) arrives, the robot holds still, ``robot/instruction`` is empty and each
re-sent observation gets a fresh stamp (a still scene is still being watched, so the perceived
list stays current). The command becomes the episode's goal (success is scored against it), and
the episode starts with a ``reset`` event carrying it, so the policy starts a fresh chunk on the
first observation of the command (through the handshake when ``handshake`` is on).

``lockstep`` (default, for evaluation): the world advances one control step per command stamped
with the current observation, so a run through ROS equals an in-process run with the same seeds.
Until that command comes, the current observation is re-sent every ``resend_s`` (late subscribers
miss volatile messages). Otherwise the world runs at ``rate_hz`` and, like a real driver, holds
still when no fresh command arrived within ``deadline_ms``.

``handshake`` (lock-step only): DDS gives no ordering across topics, and an executor serves ready
subscriptions in its own order, so a policy could see a new episode's images before its ``reset``
event (and act with the last episode's leftover action chunk or instruction). With a handshake the
first observation of an episode waits until ``policy/status`` acknowledges that episode's reset
(``{"state": "reset", "episode": N}``), or ``handshake_timeout_s`` passes (then with a warning).
Until the acknowledgement comes, the reset event is re-sent every ``resend_s``: an acknowledgement
published before discovery has matched ``policy/status`` is lost (volatile), and waiting out the
timeout for it would stall a loaded machine for half a minute per episode.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String

from geometry_msgs.msg import PoseStamped

from ros_nodes.convert import camera_info, image_to_msg, pose_to_msg, twist_to_action
from ros_nodes.errors import NodeParameterError
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, declare


def _key(stamp) -> tuple[int, int]:
    return int(stamp.sec), int(stamp.nanosec)


class SimRobotNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("sim_robot", **node_kwargs)
        import sim

        self.task = declare(self, "task", "PickUp")
        self.seed = int(declare(self, "seed", 100000))
        self.episodes = int(declare(self, "episodes", 0))  # 0 = run until stopped
        self.cameras = list(declare(self, "cameras", ["agentview", "wrist"]))
        size = int(declare(self, "image_size", 128))
        self.lockstep = bool(declare(self, "lockstep", True))
        rate_hz = float(declare(self, "rate_hz", 10.0))
        self.deadline_s = float(declare(self, "deadline_ms", 200.0)) / 1000.0
        self.exit_when_done = bool(declare(self, "exit_when_done", True))
        instruction_split = declare(self, "instruction_split", "train")
        max_steps = int(declare(self, "max_steps", 0))  # 0 = the task's own limit
        self.handshake = bool(declare(self, "handshake", False)) and self.lockstep
        self.handshake_timeout_s = float(declare(self, "handshake_timeout_s", 30.0))
        resend_s = float(declare(self, "resend_s", 0.2))
        self.depth = bool(declare(self, "depth", True))  # camera/<cam>/depth beside each image
        perception_size = int(declare(self, "perception_size", 0))  # 0: the perceiver reads image_size
        self.publish_gt = bool(declare(self, "ground_truth", False))  # sim/ground_truth, scoring only
        self.await_command = bool(declare(self, "await_command", False))
        positive = (rate_hz, self.deadline_s, resend_s, self.handshake_timeout_s)
        if size < 1 or not all(0 < x < float("inf") for x in positive):  # NaN fails too
            raise NodeParameterError(f"parameters image_size, rate_hz, deadline_ms, resend_s and handshake_timeout_s "
                                     f"must be positive, got {size}, {rate_hz}, {self.deadline_s * 1000:g}, "
                                     f"{resend_s}, {self.handshake_timeout_s}")
        if self.episodes < 0 or max_steps < 0:
            raise NodeParameterError(f"parameters episodes and max_steps must be 0 (no limit) or more, got "
                                     f"{self.episodes}, {max_steps}")
        if perception_size < 0:
            raise NodeParameterError(f"parameter perception_size must be 0 (the image size) or more, got "
                                     f"{perception_size}")
        self._awaiting: tuple[int, float] | None = None  # (episode, since) until the policy acks
        separate = self.depth and perception_size not in (0, size)
        self.env = sim.make(self.task, cameras=tuple(self.cameras), image_size=(size, size),
                            instruction_split=instruction_split, max_steps=max_steps or None,
                            depth=self.depth and not separate)
        self.size = size
        self._rgbd = None  # the perceiver's own RGB-D cameras, when its size differs
        self._rgbd_frame: tuple[tuple[int, int], dict] | None = None  # (stamp, its rendering)
        if separate:
            from sim import render

            self._rgbd = render.Cameras(self.env.unwrapped.model, tuple(self.cameras), perception_size,
                                        perception_size, depth=True)
        self.perception_size = perception_size if separate else size
        # Per camera, per stream ("" = camera/<cam>/, "rgbd" = camera/<cam>/rgbd/): its publishers.
        streams = ["", "rgbd"] if separate else [""]
        self.pubs: dict[tuple[str, str], dict[str, Any]] = {}
        for c in self.cameras:
            for stream in streams:
                ns = f"camera/{c}/{stream + '/' if stream else ''}"
                pubs = {"image": self.create_publisher(Image, ns + "image_raw", SENSOR_QOS),
                        "info": self.create_publisher(CameraInfo, ns + "camera_info", SENSOR_QOS),
                        "pose": self.create_publisher(PoseStamped, ns + "pose", SENSOR_QOS)}
                if self.depth and (stream or not separate):
                    pubs["depth"] = self.create_publisher(Image, ns + "depth", SENSOR_QOS)
                self.pubs[(c, stream)] = pubs
        self.joint_pub = self.create_publisher(JointState, "robot/joint_states", SENSOR_QOS)
        self.instruction_pub = self.create_publisher(String, "robot/instruction", LATCHED_QOS)
        self.gt_pub = (self.create_publisher(String, "sim/ground_truth", RELIABLE_QOS)
                       if self.publish_gt else None)
        self.episode_pub = self.create_publisher(String, "sim/episode", LATCHED_QOS)
        self.goal: dict[str, Any] | None = None  # await_command: the operator's command being run
        if self.await_command:
            self.create_subscription(String, "agent/command", self._on_command, RELIABLE_QOS)
        self.create_subscription(TwistStamped, "robot/cmd_twist", self._on_twist, RELIABLE_QOS)
        self.create_subscription(JointState, "robot/cmd_gripper", self._on_gripper, RELIABLE_QOS)
        if self.handshake:
            self.create_subscription(String, "policy/status", self._on_policy_status, RELIABLE_QOS)
        self._twists: dict[tuple[int, int], TwistStamped] = {}
        self._grips: dict[tuple[int, int], float] = {}
        self._last_cmd: tuple[float, np.ndarray] | None = None  # (receipt time, action) in real time
        self._gripper = 0.0
        self.episode = 0
        self.results: list[dict] = []
        self.done = False
        self._reset()
        if self.lockstep:
            self.create_timer(resend_s, self._publish_obs)
        else:
            self.create_timer(1.0 / rate_hz, self._on_tick)

    # -- episodes ------------------------------------------------------------------------------
    def _reset(self) -> None:
        seed = self.seed + self.episode
        self.obs, info = self.env.reset(seed=seed)
        self.steps = 0
        self.instruction = info["instruction"]
        self._new_stamp()
        if self.await_command:  # no task until the operator gives one; the scene is watched meanwhile
            self.goal = None
            self.instruction_pub.publish(String(data=""))
            self.get_logger().info(f"episode {self.episode} (seed {seed}): waiting for a command")
            return
        self._start_episode(seed)

    def _start_episode(self, seed: int, command_id: Any = None) -> None:
        if self.handshake:
            self._awaiting = (self.episode, time.monotonic())
        self.instruction_pub.publish(String(data=self.instruction))
        self._reset_event = json.dumps({
            "event": "reset", "episode": self.episode, "seed": seed, "instruction": self.instruction,
            "stamp": list(_key(self.stamp)), **({"command_id": command_id} if command_id is not None else {})})
        self.episode_pub.publish(String(data=self._reset_event))
        self.get_logger().info(f"episode {self.episode} (seed {seed}) reset: {self.instruction!r}")
        if not self.lockstep:
            self._publish_obs()
        # In lock-step the first observation goes out with the resend timer (or on the handshake).

    def _on_policy_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except json.JSONDecodeError:
            return
        if (self._awaiting is not None and status.get("state") == "reset"
                and status.get("episode") == self._awaiting[0]):
            waited = time.monotonic() - self._awaiting[1]
            self.get_logger().info(f"policy acknowledged episode {self._awaiting[0]} after {waited:.2f} s")
            self._awaiting = None
            self._publish_obs()

    def _on_command(self, msg: String) -> None:
        """await_command: the operator's command becomes this scene's goal and its episode starts."""
        try:
            cmd = json.loads(msg.data)
            family, target, text = str(cmd["family"]), str(cmd["target"]), str(cmd["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            self.get_logger().warning("dropped a command that is not JSON {family, target, text, ...}")
            return
        if self.goal is not None or self.done:
            self.get_logger().warning(f"dropped the command {text!r}: the robot is busy with {self.goal['text']!r}"
                                      if self.goal else f"dropped the command {text!r}: no more episodes")
            return
        seed = self.seed + self.episode
        try:
            self.env.unwrapped.set_goal(family, target, side=cmd.get("side") or None,
                                        receptacle=cmd.get("receptacle") or None, instruction=text)
        except ValueError as exc:  # SimError: this scene cannot host that goal
            self.get_logger().warning(f"cannot run {text!r} here: {exc}")
            self.episode_pub.publish(String(data=json.dumps({
                "event": "end", "episode": self.episode, "seed": seed, "success": False, "steps": 0,
                "instruction": text, "command_id": cmd.get("id"), "error": str(exc)})))
            return
        self.goal = cmd
        self.instruction = self.env.unwrapped.instruction
        self._new_stamp()
        self._start_episode(seed, cmd.get("id"))

    def _new_stamp(self) -> None:
        self.stamp = self.get_clock().now().to_msg()

    def _publish_obs(self) -> None:
        if self.done:
            return
        if self.await_command and self.goal is None:
            self._new_stamp()  # a still scene, watched now: the images are current, not old
        if self._awaiting is not None:
            episode, since = self._awaiting
            if time.monotonic() - since < self.handshake_timeout_s:
                self.episode_pub.publish(String(data=self._reset_event))  # its ack may have been lost
                return
            self.get_logger().warning(f"no reset acknowledgement for episode {episode} from the "
                                      f"policy within {self.handshake_timeout_s:.0f} s; going on")
            self._awaiting = None
        self._publish_cameras()
        joints = JointState()
        joints.header.stamp = self.stamp
        state = np.asarray(self.obs.get("state", []), dtype=np.float64)
        joints.name = [f"state_{i}" for i in range(len(state))]
        joints.position = [float(v) for v in state]
        self.joint_pub.publish(joints)
        gt = getattr(self.env.unwrapped, "ground_truth", None)
        if self.gt_pub is not None and callable(gt):
            self.gt_pub.publish(String(data=json.dumps(gt(), default=float)))

    def _publish_cameras(self) -> None:
        from sim import render

        env = self.env.unwrapped
        rgbd = None
        if self._rgbd is not None:  # rendered once per stamp: lock-step re-sends repeat a stamp
            if self._rgbd_frame is None or self._rgbd_frame[0] != _key(self.stamp):
                self._rgbd_frame = (_key(self.stamp), self._rgbd.render(env.data))
            rgbd = self._rgbd_frame[1]
        for (cam, stream), pubs in self.pubs.items():
            frame = cam
            if stream:  # the perceiver's own RGB-D frame
                image, depth, size = rgbd[cam], rgbd[cam + "_depth"], self.perception_size
                K = render.intrinsics(env.model, cam, size, size)
            else:
                image, depth, size = self.obs[cam], self.obs.get(cam + "_depth"), self.size
                K = env.camera_intrinsics(cam)
            pubs["image"].publish(image_to_msg(image, self.stamp, frame_id=frame))
            pubs["info"].publish(camera_info(K, size, size, self.stamp, frame_id=frame))
            pubs["pose"].publish(pose_to_msg(env.camera_pose(cam), self.stamp, frame_id="base"))
            if "depth" in pubs and depth is not None:
                pubs["depth"].publish(image_to_msg(np.asarray(depth, np.float32), self.stamp, frame_id=frame))

    def _step(self, action: np.ndarray) -> None:
        self.obs, _, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if terminated or truncated:
            result = {"event": "end", "episode": self.episode, "seed": self.seed + self.episode,
                      "success": bool(info.get("success", False)), "steps": self.steps,
                      "instruction": self.instruction,
                      "final_tcp": [float(v) for v in self.obs["state"][:3]]}
            if self.goal is not None:
                result["command_id"] = self.goal.get("id")
            self.results.append(result)
            self.episode_pub.publish(String(data=json.dumps(result)))
            self.episode += 1
            if self.episodes and self.episode >= self.episodes:
                self.done = self.exit_when_done
                if self.done:
                    return
            self._reset()
            return
        self._new_stamp()
        self._publish_obs()

    # -- commands ------------------------------------------------------------------------------
    def _on_twist(self, msg: TwistStamped) -> None:
        self._twists[_key(msg.header.stamp)] = msg
        self._try_pair(_key(msg.header.stamp))

    def _on_gripper(self, msg: JointState) -> None:
        if list(msg.name) != ["gripper"] or len(msg.position) != 1:
            self.get_logger().warning("dropped a gripper command that is not one 'gripper' joint")
            return
        self._grips[_key(msg.header.stamp)] = float(msg.position[0])
        self._try_pair(_key(msg.header.stamp))

    def _try_pair(self, key: tuple[int, int]) -> None:
        if key not in self._twists or key not in self._grips:
            return
        action = twist_to_action(self._twists.pop(key), self._grips.pop(key))
        for stale in [k for k in self._twists if k < key]:
            del self._twists[stale]
        for stale in [k for k in self._grips if k < key]:
            del self._grips[stale]
        if not np.all(np.isfinite(action)):
            self.get_logger().warning("dropped a command with NaN/inf")
            return
        if self.await_command and self.goal is None:
            return  # no command yet: the robot holds still
        if self.lockstep:
            if key == _key(self.stamp) and not self.done:
                self._step(action)
        else:
            self._last_cmd = (self.get_clock().now().nanoseconds / 1e9, action)

    def _on_tick(self) -> None:
        if self.await_command and self.goal is None:
            self._publish_obs()  # no command yet: the world waits, the cameras keep watching
            return
        now = self.get_clock().now().nanoseconds / 1e9
        if self._last_cmd is not None and now - self._last_cmd[0] <= self.deadline_s:
            action = self._last_cmd[1]
            self._gripper = float(action[6])
        else:  # no fresh command: hold still, keep the grip
            action = np.zeros(7, dtype=np.float32)
            action[6] = self._gripper
        self._step(action)

    def close(self) -> None:
        if self._rgbd is not None:
            self._rgbd.close()
        self.env.close()


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(SimRobotNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
