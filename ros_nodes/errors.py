"""Mistakes a user can fix in the ROS nodes and the inference server: one line, exit status 2.

``embodied`` prints any ``UserError`` as one line; ``ros_nodes.runtime.run_node`` does the same for
a node that cannot start as configured, however it was launched (``embodied ros node``, a graph).
"""

from common.errors import UserError


class NodeParameterError(UserError):
    """A node parameter with a bad value: a missing file, an unknown mode, a wrong type."""


class ServeError(UserError):
    """The inference server cannot start as configured: a bad or busy endpoint, a bad setting."""
