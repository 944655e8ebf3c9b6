"""The policy node: camera images + instruction in, a 7-D action out as TwistStamped + gripper.

Two modes:
- ``observation`` (lock-step with a simulator): every complete set of camera images (one per camera,
  same stamp) gets exactly one action, stamped with the images' stamp. The sim does not move
  between actions, so this mode is as deterministic as in-process evaluation.
- ``timer`` (a real robot): actions at ``rate_hz`` from the latest images. A watchdog sends a stop
  (zero twist, gripper held) whenever the images or the model are older than ``deadline_ms``, and
  the node resumes by itself when both are healthy again (e.g. a restarted inference server).

Deadlines (timer mode): the model runs on a worker thread, so a call that hangs cannot hold a stop
back. Every action's age is the time since its chunk was requested; the node stops the robot once
that age would pass ``HORIZON`` (60 %) of the deadline, the rest being a margin for a loaded
machine (with 3/4, 40 server kills stopped the robot 12-175 ms after the kill, deadline 200 ms),
and the executor drops queued actions before they get that old. So a dead server or model stops
the robot within the deadline of its last answer, queued actions or not. Playing more of each
chunk needs a longer deadline (or a faster rate): actions are played while their chunk is younger
than ``HORIZON * deadline_ms`` minus one period.

Async execution (``execution:=async``, timer mode): the executor computes the next chunk while the
current one plays (``policy.executor``, async mode), so a model or server whose replies take longer
than a period no longer stalls the commands at every chunk boundary. The deadline still applies to
every action's chunk: with a model of latency L, ``deadline_ms`` must exceed (L + the steps a
chunk is played after it arrives) / ``HORIZON``, or every chunk is too old on arrival. With one
call at a time (a remote server) the next chunk is asked when one arrives, so each is played for
about another L rounded up to ticks: ``deadline_ms`` > (2 L + 2 periods) / ``HORIZON``, or the
robot stalls (a stop) whenever a reply is slower than that allows. ``blend`` is how a new chunk
joins the one playing: ``guided`` (default; the policy, local or remote, sends the distribution
behind each chunk and the robot plays its mean under a prior of continuing motion, the smoothest
measured) or ``prefix`` (for a policy without one, an l1 head, or a server that sends none).

Untrusted inputs never move the robot: a NaN state (refused by the executor or the policy) is a stop
with the reason logged. Memory is bounded whatever arrives: incomplete observation sets (a camera
died, junk on a topic) expire after ``PENDING_MAX_AGE_S`` and at most ``PENDING_MAX`` are kept;
stamps from the future (a wrong clock) are dropped with a log line.

The gripper command travels as a ``sensor_msgs/JointState`` (joint ``gripper``, position 0 = open,
1 = closed) because it needs a stamp to pair with the twist; std_msgs/Float32 has none.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Bool, String

from perception.image import resize_images
from policy.base import BasePolicy
from policy.errors import PolicyError
from policy.executor import BLENDS, EXECUTIONS, ChunkExecutor
from ros_nodes.convert import action_to_twist
from ros_nodes.errors import NodeParameterError
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, declare, receive_image
from ros_nodes.watchdog import Watchdog


HORIZON = 0.6  # stop once an action's chunk is this fraction of the deadline old
PENDING_MAX = 8  # incomplete observation sets kept (8 x 2 cameras x 640x480 RGB < 15 MB)
PENDING_MAX_AGE_S = 2.0  # an incomplete set older than this never completes (a lock-step sim re-sends)
FUTURE_TOLERANCE_S = 1.0  # clock skew accepted between a camera's stamps and ours


def _stamp_key(stamp) -> tuple[int, int]:
    return int(stamp.sec), int(stamp.nanosec)


def stop_reason(exc: BaseException) -> str:
    """One line for the log and policy/status: a refused input or an unavailable model."""
    if isinstance(exc, PolicyError):
        return f"refused the observation: {exc}"
    return f"model unavailable: {type(exc).__name__}: {exc}"


def load_policy(checkpoint: str = "", server: str = "", timeout_ms: float = 150.0,
                backend: str = "torch", distribution: bool = False) -> BasePolicy:
    """A checkpoint in this process (``backend`` torch, or onnx: an export, or a checkpoint
    exported once into the cache), or a policy served by `embodied serve` at ``server``
    (``distribution``: ask it for the distribution behind each chunk, the ``guided`` blend's)."""
    if bool(checkpoint) == bool(server):
        raise NodeParameterError("give exactly one of the parameters checkpoint (a directory) or server "
                                 "(an `embodied serve` endpoint)")
    if checkpoint:
        from policy.backends import BACKENDS, load_policy as load_local

        if backend not in BACKENDS:
            raise NodeParameterError(f"parameter backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        return load_local(checkpoint, backend=backend)
    from ros_nodes.zmq_client import InferenceClient, RemotePolicy

    return RemotePolicy(InferenceClient(server, timeout_ms=timeout_ms), distribution=distribution)


class PolicyNode(Node):
    def __init__(self, policy: BasePolicy | None = None, **node_kwargs) -> None:
        super().__init__("policy", **node_kwargs)
        self.cameras = list(declare(self, "cameras", ["agentview", "wrist"]))
        self.mode = declare(self, "mode", "observation")
        rate_hz = float(declare(self, "rate_hz", 10.0))
        deadline_ms = float(declare(self, "deadline_ms", 200.0))
        checkpoint = declare(self, "checkpoint", "")
        server = declare(self, "server", "")
        backend = declare(self, "backend", "torch")  # torch | onnx, for a local checkpoint
        timeout_ms = float(declare(self, "server_timeout_ms", min(150.0, deadline_ms * 0.75)))
        self.instruction = declare(self, "instruction", "")
        # Proprioception from robot/joint_states (positions, in order) joins each observation when
        # the checkpoint uses it; lock-step waits for the state with the images' stamp.
        self.use_state = bool(declare(self, "use_state", False))
        # How chunks are played: open_loop (the checkpoint's replan, a blocking call per chunk) or,
        # timer mode only, async (the next chunk computed while this one plays: no stall at chunk
        # boundaries; see policy.executor). open_loop stays the default, as evaluated; async with
        # the prefix blend matched its sim success at 200 ms (`embodied bench realtime`, results.md).
        execution = declare(self, "execution", "open_loop")
        # async only: how a new chunk joins the one playing (policy.executor's ``blend``); guided
        # and prefix suit the twists this node sends (velocities, not absolute targets).
        blend = declare(self, "blend", "guided")
        if self.mode not in ("observation", "timer"):
            raise NodeParameterError(f"parameter mode must be 'observation' or 'timer', not {self.mode!r}")
        if execution not in EXECUTIONS:
            raise NodeParameterError(f"parameter execution must be one of {', '.join(EXECUTIONS)}, not {execution!r}")
        if blend not in BLENDS:
            raise NodeParameterError(f"parameter blend must be one of {', '.join(BLENDS)}, not {blend!r}")
        if execution == "async" and self.mode != "timer":
            raise NodeParameterError("parameter execution=async needs mode=timer (lock-step has no time to overlap)")
        if not all(0 < x < float("inf") for x in (rate_hz, deadline_ms, timeout_ms)):  # NaN fails too
            raise NodeParameterError(f"parameters rate_hz, deadline_ms and server_timeout_ms must be positive, "
                                     f"got {rate_hz}, {deadline_ms}, {timeout_ms}")
        self.policy = policy if policy is not None else load_policy(checkpoint, server, timeout_ms, backend,
                                                                    distribution=execution == "async" and blend == "guided")
        # One camera stream may feed several models (the perception node wants 128 px RGB-D), so
        # images arrive at the camera's size and are resampled here to the policy's input size with
        # the resampling every encoder shares, as the in-process agent does.
        size = self.policy.describe().get("image_size")
        self._image_size = int(size) if size else None
        self.period_s = 1.0 / rate_hz
        self.horizon_s = HORIZON * deadline_ms / 1000.0
        # One robot: the executor plays each chunk (the checkpoint's replan) exactly as eval does;
        # on a real robot (timer mode) never from a chunk so old that the stop would come late.
        # (Not `self.executor`: rclpy.Node already has one, the ROS executor that spins it.)
        max_age = max(self.horizon_s - self.period_s, 1e-3) if self.mode == "timer" else None
        self.chunks = ChunkExecutor(self.policy, execution=execution, max_age_s=max_age,
                                    period_s=self.period_s if execution == "async" else None, blend=blend)
        self._worker = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="policy-model")
                        if self.mode == "timer" else None)
        self._call: tuple[concurrent.futures.Future, int] | None = None  # the model call in flight
        self._generation = 0  # bumped by every reset; answers to older generations are dropped
        self._reset_requested = False  # timer mode: the worker resets the executor before its next call
        self._fresh = 0.0  # monotonic time the chunk of the last published action was requested
        # The watchdog guards the inputs; the model is guarded by its own timeout (shorter than the
        # deadline) and stops the robot on any failure, yet is retried every tick so it can recover.
        self.watchdog = Watchdog(deadline_ms / 1000.0, ("images",))
        # stamp -> (arrival time, parts): observation sets waiting for their other parts
        self._pending: dict[tuple[int, int], tuple[float, dict[str, np.ndarray]]] = {}
        self.expired = 0  # incomplete sets dropped by age or count
        self.future_stamps = 0  # parts dropped for a stamp ahead of our clock
        self._latest: dict[str, np.ndarray] = {}
        self._gripper = 0.0
        self._stopped = True
        self._acted: tuple[tuple[int, int] | None, np.ndarray | None] = (None, None)
        self._floor: tuple[int, int] = (0, 0)  # observations older than the episode's first are late copies
        self._episode: tuple | None = None  # (episode, seed) of the last reset event handled
        self.dropped = 0
        self.twist_pub = self.create_publisher(TwistStamped, "robot/cmd_twist", RELIABLE_QOS)
        self.gripper_pub = self.create_publisher(JointState, "robot/cmd_gripper", RELIABLE_QOS)
        self.status_pub = self.create_publisher(String, "policy/status", RELIABLE_QOS)
        for cam in self.cameras:
            self.create_subscription(Image, f"camera/{cam}/image_raw",
                                     lambda msg, cam=cam: self._on_image(cam, msg), SENSOR_QOS)
        self.create_subscription(String, "robot/instruction", self._on_instruction, LATCHED_QOS)
        if self.use_state:
            self.create_subscription(JointState, "robot/joint_states", self._on_state, SENSOR_QOS)
        self.create_subscription(String, "sim/episode", self._on_episode, LATCHED_QOS)
        self.create_subscription(Bool, "robot/stop", self._on_stop, RELIABLE_QOS)
        self.halted = False  # an operator's stop: no actions until robot/stop is false again
        if self.mode == "timer":
            self.create_timer(1.0 / rate_hz, self._on_tick)
        self.get_logger().info(f"policy node up: mode={self.mode}, cameras={self.cameras}")

    # -- inputs --------------------------------------------------------------------------------
    def _on_instruction(self, msg: String) -> None:
        if msg.data != self.instruction:
            self.instruction = msg.data
            self._reset_chunks()

    def _on_episode(self, msg: String) -> None:
        try:
            event = json.loads(msg.data)
        except json.JSONDecodeError:
            return
        if event.get("event") == "reset":
            episode = (event.get("episode"), event.get("seed"))
            if episode != self._episode:  # a re-sent reset (its ack was lost) must not clear a chunk
                self._episode = episode
                self._begin_episode(event)
            # The acknowledgement a lock-step sim (``handshake``) waits for before the first images.
            self.status_pub.publish(String(data=json.dumps({"state": "reset", "episode": event.get("episode"),
                                                            "t": time.time()})))

    def _reset_chunks(self) -> None:
        """A new task or episode: forget queued actions (in timer mode the worker does it, since
        it may be inside the executor right now) and ignore answers to earlier requests."""
        self._generation += 1
        if self._worker is None:
            self.chunks.reset()
        else:
            self._reset_requested = True

    def _begin_episode(self, event: dict) -> None:
        self._reset_chunks()
        self._pending.clear()
        self._acted = (None, None)
        if isinstance(event.get("stamp"), list) and len(event["stamp"]) == 2:
            self._floor = (int(event["stamp"][0]), int(event["stamp"][1]))
        if event.get("instruction"):  # the instruction topic may lag behind this event
            self.instruction = event["instruction"]

    def _on_stop(self, msg: Bool) -> None:
        self.halted = bool(msg.data)
        if self.halted:
            self._stop("operator stop")

    def _on_state(self, msg: JointState) -> None:
        state = np.asarray(msg.position, dtype=np.float32)
        self._latest["state"] = state
        if self.mode == "observation":
            self._add(_stamp_key(msg.header.stamp), "state", state, msg.header.stamp)

    def _complete(self, frames: dict) -> bool:
        return len(frames) == len(self.cameras) + int(self.use_state)

    def _add(self, key: tuple[int, int], part: str, value: np.ndarray, stamp) -> None:
        if key == self._acted[0] or key < self._floor:
            return
        now_ns = self.get_clock().now().nanoseconds
        if key[0] * 1_000_000_000 + key[1] > now_ns + FUTURE_TOLERANCE_S * 1e9:
            self.future_stamps += 1
            self.get_logger().warning(
                f"dropped {part} stamped {key[0]}.{key[1]:09d}, ahead of this node's clock by more than "
                f"{FUTURE_TOLERANCE_S:.0f} s ({self.future_stamps} so far): is the sender's clock wrong?",
                throttle_duration_sec=5.0)
            return
        self._expire_pending(key)
        frames = self._pending.setdefault(key, (time.monotonic(), {}))[1]
        frames[part] = value
        if self._complete(frames):
            del self._pending[key]
            for old in [k for k in self._pending if k < key]:  # older incomplete sets never finish
                del self._pending[old]
            action = self._act(frames, stamp)
            if action is not None:  # after a stop (no instruction, model down) the re-sent copy retries
                self._acted = (key, action)

    def _expire_pending(self, key: tuple[int, int]) -> None:
        """Bound what incomplete sets hold: drop those older than PENDING_MAX_AGE_S, and the
        oldest arrivals while a new stamp would make more than PENDING_MAX."""
        now = time.monotonic()
        drop = [k for k, (t, _) in self._pending.items() if now - t > PENDING_MAX_AGE_S]
        excess = len(self._pending) - len(drop) - (PENDING_MAX - 1)
        if key not in self._pending and excess > 0:
            drop += [k for k in self._pending if k not in drop][:excess]  # dicts keep arrival order
        for k in drop:
            del self._pending[k]
        if drop:
            self.expired += len(drop)
            self.get_logger().warning(
                f"dropped {self.expired} incomplete observation set(s) so far: waiting for "
                f"{', '.join(self.cameras + ['state'] * self.use_state)}; is a camera down?",
                throttle_duration_sec=5.0)

    def _on_image(self, cam: str, msg: Image) -> None:
        image = receive_image(self, msg, where=f"camera/{cam}")
        if image is None:
            return
        if self._image_size and image.shape[:2] != (self._image_size, self._image_size):
            image = resize_images(image, self._image_size)
        self._latest[cam] = image
        if all(c in self._latest for c in self.cameras):
            self.watchdog.feed("images")
        if self.mode != "observation":
            return
        key = _stamp_key(msg.header.stamp)
        if key == self._acted[0]:  # the sim re-sent an observation we already answered
            if cam == self.cameras[0] and self._acted[1] is not None:
                self._publish(self._acted[1], msg.header.stamp)
            return
        self._add(key, cam, image, msg.header.stamp)

    # -- outputs -------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        stale = self.watchdog.stale()
        if self.use_state and "state" not in self._latest:
            stale.append("state")
        if stale:
            self._stop(f"stale: {', '.join(stale)}")
            return
        if self.halted:
            self._stop("operator stop")
            return
        if not self.instruction:
            self._stop("no instruction yet")
            return
        if self._call is None:
            self._call = (self._worker.submit(self._predict, dict(self._latest), self.instruction),
                          self._generation)
        future, generation = self._call
        # Running: wait for the answer until the robot's current action grows too old. Stopped
        # already: wait a little, then let ROS spin (the next tick looks again).
        now = time.monotonic()
        budget = self.period_s / 2 if self._stopped else self._fresh + self.horizon_s - now
        concurrent.futures.wait([future], timeout=max(0.0, budget))
        if not future.done():
            self._stop(f"model unavailable: no answer within {self.horizon_s * 1000:.0f} ms of "
                       "the last one")
            return
        self._call = None
        if generation != self._generation:
            return  # asked before the instruction or episode changed: the next tick asks again
        try:
            action, requested = future.result()
        except Exception as exc:  # noqa: BLE001 - any model/server failure means: stop the robot
            self._stop(stop_reason(exc))
            return
        if time.monotonic() - requested > self.horizon_s:
            self._stop(f"model unavailable: its answer came {(time.monotonic() - requested) * 1000:.0f} ms "
                       "after the request, too late to act on")
            return
        if self._send(action, self.get_clock().now().to_msg()) is not None:
            self._fresh = requested

    def _predict(self, observation: dict[str, np.ndarray], instruction: str) -> tuple[np.ndarray, float]:
        """Worker thread (timer mode): the next action and when its chunk was requested."""
        if self._reset_requested:
            self._reset_requested = False
            self.chunks.reset()
        action = self.chunks.act([observation], [instruction])[0]
        return action, self.chunks.chunk_time(0)

    def _act(self, images: dict[str, np.ndarray], stamp) -> np.ndarray | None:
        """Predict and publish; returns the action sent, or None when it stopped instead."""
        if self.halted:
            self._stop("operator stop")
            return None
        if not self.instruction:
            self._stop("no instruction yet")
            return None
        try:
            action = self.chunks.act([images], [self.instruction])[0]
        except Exception as exc:  # noqa: BLE001 - any model/server failure means: stop the robot
            self._stop(stop_reason(exc))
            return None
        return self._send(action, stamp)

    def _send(self, action: np.ndarray, stamp) -> np.ndarray | None:
        """Publish a model's action, or stop when it is not a finite 7-vector."""
        if action.shape != (7,) or not np.all(np.isfinite(action)):
            self._stop(f"model returned an invalid action {action.tolist()}")
            return None
        self._gripper = float(action[6])
        self._publish(action, stamp)
        if self._stopped:
            self._stopped = False
            self._status("running", "")
        return action

    def _stop(self, reason: str) -> None:
        stop = np.zeros(7, dtype=np.float32)
        stop[6] = self._gripper  # hold the gripper: stopping must not drop what it carries
        self._publish(stop, self.get_clock().now().to_msg())
        if not self._stopped:
            self._stopped = True
            self.get_logger().warning(f"stopping the robot: {reason}")
        self._status("stopped", reason)

    def _publish(self, action: np.ndarray, stamp) -> None:
        self.twist_pub.publish(action_to_twist(action, stamp))
        grip = JointState()
        grip.header.stamp = stamp
        grip.name = ["gripper"]
        grip.position = [float(action[6])]
        self.gripper_pub.publish(grip)

    def _status(self, state: str, reason: str) -> None:
        self.status_pub.publish(String(data=json.dumps({"state": state, "reason": reason,
                                                        "t": time.time(), "dropped": self.dropped})))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
        self.chunks.close()
        close = getattr(self.policy, "close", None)
        if callable(close):
            close()


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(PolicyNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
