"""Starting and stopping a node the same way everywhere: init, spin, clean shutdown on SIGINT/SIGTERM.

Clean means: destroy the node, shut the executor down, then the context, in that order, and never
leave a spinning thread behind. Doing it in any other order is what prints ``terminate called
without an active exception`` at exit.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from common.errors import is_user_error
from ros_nodes.errors import NodeParameterError
from ros_nodes.launch import READY_FILE_ENV
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# Fast DDS sends a 640x480 image (921 kB) as many UDP fragments by default, and best-effort sensor
# QoS then loses whole frames when one fragment drops (we measured 20-40% at 30 Hz on loopback).
# Its LARGE_DATA builtin transports (shared memory + TCP) lost none (`embodied bench ros`). Set
# before rclpy.init in every process that imports this module; a user's own choice wins, and ROS
# distributions whose Fast DDS predates the variable simply ignore it.
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")



def discovery_warning(env: dict[str, str] | None = None) -> str | None:
    """Why the discovery setting in force will not deliver large images, or None when it will.

    Measured with Fast DDS 3.2 (docs/ros.md): with ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``,
    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` delivered 0 to 116 of 150 640x480 images (also
    when ``ROS_LOCALHOST_ONLY=1`` is set beside it), where ``ROS_LOCALHOST_ONLY=1`` alone delivered
    every one. Other RMW implementations do not read the Fast DDS variable: no warning for them.
    """
    env = os.environ if env is None else env
    rmw = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") or "rmw_fastrtps_cpp"
    if "fastrtps" not in rmw and "fastdds" not in rmw:
        return None
    if env.get("FASTDDS_BUILTIN_TRANSPORTS", "").upper() != "LARGE_DATA":
        return None
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() != "LOCALHOST":
        return None
    return ("ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST with FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA loses "
            "large images (0-116 of 150 640x480 frames delivered, measured); unset "
            "ROS_AUTOMATIC_DISCOVERY_RANGE and use ROS_LOCALHOST_ONLY=1 (150 of 150), see docs/ros.md")


SENSOR_QOS = qos_profile_sensor_data  # best effort, shallow: a late camera frame is worthless
# Reliable, kept (last 100) for late joiners: instructions and episode results.
LATCHED_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node with ``factory`` and spin until SIGINT/SIGTERM or the node asks to stop.

    A node that cannot start as configured (a user error: a bad parameter, a missing file) prints
    one line to stderr and the process exits with status 2, however it was launched.
    """
    rclpy.init(args=args)
    stop = threading.Event()
    return_code = 0

    def on_signal(signum, frame):
        # SIGINT (Ctrl-C, a launcher) and SIGTERM (`embodied ros up`, systemd) end the spin the
        # same way. Handling SIGINT here rather than through Python's KeyboardInterrupt matters:
        # rclpy shuts the context down on SIGINT, so a spin in progress fails with RCLError, and a
        # KeyboardInterrupt still pending would then land in the middle of the clean-up below.
        stop.set()
        rclpy.try_shutdown()

    previous_term = signal.signal(signal.SIGTERM, on_signal)
    previous_int = signal.signal(signal.SIGINT, on_signal)
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = factory()
        warning = discovery_warning()
        if warning:
            node.get_logger().warning(warning)
        executor.add_node(node)
        ready = os.environ.get(READY_FILE_ENV)
        if ready:
            with open(ready, "w") as fh:
                fh.write(str(os.getpid()))
        while rclpy.ok() and not stop.is_set() and not getattr(node, "done", False):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - user errors become one line, bugs re-raise
        raced_shutdown = stop.is_set() and not rclpy.ok()  # the spin met the context a signal closed
        if not raced_shutdown:
            if node is not None or not is_user_error(exc):
                raise
            print(f"{getattr(factory, '__name__', 'node')}: error: {exc}", file=sys.stderr, flush=True)
            return_code = 2
    finally:
        # A launcher's signal may land while a node that finished by itself is closing; the
        # clean-up is short, so let it finish instead of being interrupted mid-way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    return return_code or int(getattr(node, "exit_code", 0) or 0)


def declare(node: Node, name: str, default):
    """Declare a typed parameter (the type follows the default) and return its value; a value of
    another type (``-p rate_hz:=fast``) is a ``NodeParameterError``.

    An integer where a number is declared (``-p rate_hz:=10``) is that number: ROS types ``10`` as
    INTEGER and would refuse it for a DOUBLE parameter, which no user expects.
    """
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            list: "a list"}.get(type(default), type(default).__name__)
    try:
        return node.declare_parameter(name, default).value
    except InvalidParameterTypeException:
        if type(default) is not float:
            raise NodeParameterError(f"parameter {name} must be {kind} (default {default!r})") from None
    # The refused declaration left nothing behind: declare it again, accepting any type, and
    # keep the value only when it is a plain integer (bool is an int in Python, but not a number).
    value = node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
    if isinstance(value, bool) or not isinstance(value, int):
        node.undeclare_parameter(name)
        raise NodeParameterError(f"parameter {name} must be {kind} (default {default!r})")
    node.set_parameters([Parameter(name, value=float(value))])
    return float(value)


def receive_image(node: Node, msg, colour: bool = True, where: str = ""):
    """The image in ``msg`` as a numpy array, or None after logging it and counting it in
    ``node.dropped``: a malformed message (wrong step, encoding or size) never stops a node."""
    from ros_nodes.convert import BadMessage, msg_to_image

    try:
        image = msg_to_image(msg)
        if colour and (image.ndim != 3 or image.shape[2] != 3):
            raise BadMessage(f"expected a colour image, got shape {image.shape}")
    except BadMessage as exc:
        node.dropped = getattr(node, "dropped", 0) + 1
        node.get_logger().warning(f"dropped a malformed image{' on ' + where if where else ''}: {exc}")
        return None
    return image
