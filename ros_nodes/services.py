"""Adapters that put our models behind the inference server's ``Service`` interface."""

from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from policy.base import BasePolicy
from ros_nodes.zmq_protocol import ProtocolError
from ros_nodes.zmq_server import Request


class PolicyService:
    """``predict``: arrays ``image.<camera>`` (uint8 HxWx3) and optional ``state``; header ``instruction``.

    One ``predict_chunk`` call per batch (many robots, one forward pass); each robot gets the first
    ``replan`` actions of its chunk (the policy's ``describe()["replan"]``, the whole chunk when it
    names none): the client plays what it gets, so it gets what a local executor would play.

    ``check`` validates a request against what the policy describes (``cameras``, ``image_size``,
    ``use_state``, ``state_dim``; a key it does not name is not checked) before the request is
    queued, and returns the shapes as the batch key: one robot's odd request is refused on its
    own and can never break the batch of another (``np.stack`` of a (15,) and a (1, 15) state).

    Header ``distribution: true`` (a policy whose ``describe()`` says ``distribution``) adds the
    arrays ``log_probs`` (``[replan, 7, N]``) and ``values`` (``[7, N]``) to the reply: what the
    robot's ``guided`` blend reads (``policy.base.ChunkDistribution``).
    """

    ops = ("predict",)

    def __init__(self, policy: BasePolicy, description: dict[str, Any] | None = None) -> None:
        self.policy = policy
        self.description = description or {}
        spec = policy.describe()
        self.replan: int | None = spec.get("replan") or None
        cameras = spec.get("cameras")
        self.cameras: list[str] | None = [str(c) for c in cameras] if cameras else None
        self.image_size: int | None = _positive_int(spec.get("image_size"))
        self.use_state: bool | None = spec.get("use_state")
        self.state_dim: int | None = _positive_int(spec.get("state_dim"))
        self.distribution = bool(spec.get("distribution"))

    def info(self) -> dict[str, Any]:
        return {**self.policy.describe(), **self.description}

    def max_frame_bytes(self) -> int | None:
        """The largest frame of a valid request (one camera image), when the policy names its size."""
        return None if self.image_size is None else self.image_size * self.image_size * 3

    def check(self, req: Request) -> Hashable:
        """Raise ProtocolError for a request this policy cannot run; else its batch key."""
        instruction = req.header.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ProtocolError("predict needs a non-empty 'instruction' string")
        wants = req.header.get("distribution", False)
        if not isinstance(wants, bool):
            raise ProtocolError("'distribution' must be true or false")
        if wants and not self.distribution:
            raise ProtocolError("this server's policy gives no distribution over its actions; "
                                "use a blend other than guided")
        images, state = {}, None
        for name, arr in req.arrays.items():
            if name == "state":
                state = arr
            elif name.startswith("image.") and len(name) > len("image."):
                images[name.removeprefix("image.")] = arr
            else:
                raise ProtocolError(f"unknown array {name!r}: predict takes 'image.<camera>' and 'state'")
        if not images:
            raise ProtocolError("predict needs at least one 'image.<camera>' array")
        if self.cameras is not None and sorted(images) != sorted(self.cameras):
            raise ProtocolError(f"predict got cameras {sorted(images)}; this policy reads {self.cameras}")
        for name, img in images.items():
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
                raise ProtocolError(f"image {name!r} must be uint8 [H, W, 3], got {img.dtype} {list(img.shape)}")
            if self.image_size is not None and img.shape[:2] != (self.image_size, self.image_size):
                raise ProtocolError(f"image {name!r} must be [{self.image_size}, {self.image_size}, 3], "
                                    f"got {list(img.shape)}")
        if state is None and self.use_state:
            raise ProtocolError("this policy uses proprioception: predict needs a 'state' array")
        if state is not None:
            if state.dtype.kind not in "fiu":
                raise ProtocolError(f"'state' must be a numeric array, got {state.dtype}")
            want = f"[{self.state_dim}]" if self.state_dim else "[D]"
            if state.ndim != 1 or (self.state_dim is not None and state.shape[0] != self.state_dim):
                raise ProtocolError(f"'state' must have shape {want}, got {list(state.shape)}")
            if not np.isfinite(state).all():
                raise ProtocolError("'state' holds NaN or infinite values; refusing to act on it")
        return (tuple(sorted((name, img.shape) for name, img in images.items())),
                None if state is None else (state.shape, state.dtype.str), wants)

    def run_batch(self, op: str, requests: list[Request]) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        observations, instructions = [], []
        for req in requests:
            self.check(req)  # cheap, and keeps run_batch safe for callers that skip the server
            obs = {k.removeprefix("image."): v for k, v in req.arrays.items() if k.startswith("image.")}
            if "state" in req.arrays:
                obs["state"] = req.arrays["state"]
            observations.append(obs)
            instructions.append(req.header["instruction"])
        # One batch never mixes requests with and without it (the batch key holds the flag).
        if requests[0].header.get("distribution", False):
            dist = self.policy.predict_chunk_distribution(observations, instructions)
            chunks = np.asarray(dist.actions, dtype=np.float32)
        else:
            dist, chunks = None, np.asarray(self.policy.predict_chunk(observations, instructions), dtype=np.float32)
        if chunks.ndim != 3 or len(chunks) != len(requests) or chunks.shape[2] != 7:
            raise RuntimeError(f"policy returned actions of shape {list(chunks.shape)} for {len(requests)} "
                               "requests (need [B, K, 7])")
        if dist is None:
            return [({}, {"action": c[:self.replan]}) for c in chunks]
        values = np.asarray(dist.values, dtype=np.float32)
        return [({}, {"action": c[:self.replan], "log_probs": np.asarray(lp[:self.replan], np.float32),
                      "values": values}) for c, lp in zip(chunks, dist.log_probs)]


def _positive_int(value: Any) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
        return int(value)
    return None
