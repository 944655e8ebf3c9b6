"""Where the policy node gets its actions: a model in this process, or an inference server."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class ActionBackend(Protocol):
    def predict(self, obs: dict[str, np.ndarray], instruction: str) -> np.ndarray:
        """One 7-D action for the current observation (camera images, and "state" when known)."""
        ...

    def reset(self) -> None:
        """A new episode starts: forget action chunks and history."""
        ...


class RemoteBackend:
    """Actions from `embodied serve` over ZeroMQ; a timeout raises, and the node stops the robot.

    The server answers with a whole action chunk; it is executed open-loop from a local queue,
    exactly as a local ``Policy`` does, so remote and local runs take the same actions.
    """

    def __init__(self, endpoint: str, timeout_ms: float) -> None:
        from collections import deque

        from ros_nodes.zmq_client import InferenceClient

        self.client = InferenceClient(endpoint, timeout_ms=timeout_ms)
        self._queue: deque[np.ndarray] = deque()

    def predict(self, obs: dict[str, np.ndarray], instruction: str) -> np.ndarray:
        if not self._queue:
            images = {k: v for k, v in obs.items() if k != "state"}
            chunk = self.client.predict(images, instruction, state=obs.get("state"))
            self._queue.extend(chunk if chunk.ndim == 2 else chunk[None])
        return self._queue.popleft()

    def reset(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        self.client.close()


class LocalBackend:
    """A checkpoint loaded in this process (the policy package's ``load_policy``)."""

    def __init__(self, checkpoint: str) -> None:
        from policy.predict import Policy

        self.policy = Policy.from_pretrained(checkpoint)

    def predict(self, obs: dict[str, np.ndarray], instruction: str) -> np.ndarray:
        return np.asarray(self.policy.predict(obs, instruction), dtype=np.float32)

    def reset(self) -> None:
        self.policy.reset()

    def close(self) -> None:
        pass


def make_backend(checkpoint: str = "", server: str = "", timeout_ms: float = 150.0) -> ActionBackend:
    if bool(checkpoint) == bool(server):
        raise ValueError("give exactly one of a checkpoint directory or a server endpoint")
    return LocalBackend(checkpoint) if checkpoint else RemoteBackend(server, timeout_ms)
