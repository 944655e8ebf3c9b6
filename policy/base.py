"""The one policy interface: a batch of observations and instructions in, a chunk of actions out.

Every backend implements it: the torch VLA in this process (``policy.predict.Policy``), a policy
behind `embodied serve` (``ros_nodes.zmq_client.RemotePolicy``) and any later one (an exported
ONNX graph). How a chunk is played, one action per control step, is not the policy's job but the
executor's (``policy.executor.ChunkExecutor``), so every caller plays chunks the same way.

This module imports numpy only: the robot-side ZeroMQ client implements it and must stay free of
torch and transformers (openpi-client's ``BasePolicy`` is the model).
"""

from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence

import numpy as np

# An observation: camera name -> uint8 RGB image [H, W, 3], plus "state" -> float32 [D] when the
# policy uses proprioception.
Observation = Mapping[str, np.ndarray]


class BasePolicy(abc.ABC):
    """Predicts action chunks; stateless between calls, so one model can serve many robots."""

    @abc.abstractmethod
    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        """One model call for B robots.

        Args:
            observations: B observations (camera images, optionally ``"state"``).
            instructions: B task instructions, one per observation.

        Returns:
            float32 array ``[B, K, 7]``: for each robot, the next K actions (Δx, Δy, Δz, Δroll,
            Δpitch, Δyaw, gripper), the first to be executed now.
        """

    def reset(self) -> None:
        """A new episode starts. Stateless policies (all of ours) have nothing to forget."""

    def describe(self) -> dict[str, Any]:
        """What callers may need to know, JSON-able. Keys a policy may set:

        - ``"replan"``: how many actions of each chunk to play before predicting again (the
          checkpoint's setting); absent means the whole chunk.
        - ``"chunk"``, ``"cameras"``, ``"image_size"``, ``"use_state"``: what it predicts and reads.
        """
        return {}
