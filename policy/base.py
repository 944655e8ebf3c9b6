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
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

# An observation: camera name -> uint8 RGB image [H, W, 3], plus "state" -> float32 [D] when the
# policy uses proprioception.
Observation = Mapping[str, np.ndarray]

# Real-time chunking: an observation may carry, under this key, float32 ``[n, 7]`` actions already
# committed for the coming steps (the robot plays them while the model thinks). A policy trained
# for it (``describe()["committed_steps"]`` >= n) returns a chunk whose actions after the first n
# continue them (its first n stand for steps the robot plays as committed); one that is not
# refuses the key. Not an observation of the world, so no camera or state check reads it.
COMMITTED = "committed"


@dataclass(frozen=True)
class ChunkDistribution:
    """A chunk with the belief behind it: what a policy that decodes action bins thought of every
    value it could have chosen. The executor's ``guided`` blend reads it to choose, among values
    the model finds nearly as likely, the one that continues the command just played.

    ``actions``: float32 ``[B, K, A]``, exactly ``predict_chunk``'s answer (the most likely bins).
    ``log_probs``: float32 ``[B, K, A, N]``, log-probabilities of each dimension's N bins.
    ``values``: float32 ``[A, N]``, the action each bin stands for (un-normalised, as executed).
    """

    actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray


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

    def predict_chunk_distribution(self, observations: Sequence[Observation],
                                   instructions: Sequence[str]) -> ChunkDistribution:
        """``predict_chunk`` with the distribution it chose from (``ChunkDistribution``), for a
        policy that says ``describe()["distribution"]``; the others refuse."""
        from policy.errors import PolicyError

        raise PolicyError(f"{type(self).__name__} gives its actions without a distribution over them; "
                          "use a blend other than guided")

    def reset(self) -> None:
        """A new episode starts. Stateless policies (all of ours) have nothing to forget."""

    def describe(self) -> dict[str, Any]:
        """What callers may need to know, JSON-able. Keys a policy may set:

        - ``"replan"``: how many actions of each chunk to play before predicting again (the
          checkpoint's setting); absent means the whole chunk.
        - ``"chunk"``, ``"cameras"``, ``"image_size"``, ``"use_state"``: what it predicts and reads.
        - ``"state_dim"``: the length of ``"state"`` it reads, None when it reads none.
        - ``"committed_steps"``: how many committed actions (``COMMITTED``) it can continue from;
          absent or 0 means none.
        - ``"distribution"``: True when ``predict_chunk_distribution`` works (a policy that
          decodes action bins).
        """
        return {}


def check_observations(observations: Sequence[Observation]) -> None:
    """Refuse inputs no policy may act on, whatever the backend: raises ``PolicyError``.

    A state with NaN or infinity (a dead encoder, a driver bug) would otherwise become a confident,
    full-size motion. Cheap, so it runs every control step, queued actions or not. Which keys are
    images, their dtype (uint8 RGB: it cannot hold NaN) and the state's range against a
    checkpoint's statistics are checked by the policy that knows them (``policy.predict``).
    """
    from policy.errors import PolicyError

    for i, obs in enumerate(observations):
        if not isinstance(obs, Mapping):
            raise PolicyError(f"observation {i} must be a dict of camera images (and 'state'), "
                              f"got {type(obs).__name__}")
        if "state" not in obs:
            continue
        try:
            state = np.asarray(obs["state"], dtype=np.float64)
        except (TypeError, ValueError):
            raise PolicyError(f"observation {i}: 'state' is not an array of numbers") from None
        if not np.all(np.isfinite(state)):
            raise PolicyError(f"observation {i}: 'state' contains NaN or infinity at "
                              f"{np.flatnonzero(~np.isfinite(state.reshape(-1))).tolist()}: refusing to act on it")
