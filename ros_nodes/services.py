"""Adapters that put our models behind the inference server's ``Service`` interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from policy.base import BasePolicy
from ros_nodes.zmq_server import Request


class PolicyService:
    """``predict``: arrays ``image.<camera>`` (uint8 HxWx3) and optional ``state``; header ``instruction``.

    One ``predict_chunk`` call per batch (many robots, one forward pass); each robot gets the first
    ``replan`` actions of its chunk (the policy's ``describe()["replan"]``, the whole chunk when it
    names none): the client plays what it gets, so it gets what a local executor would play.
    """

    ops = ("predict",)

    def __init__(self, policy: BasePolicy, description: dict[str, Any] | None = None) -> None:
        self.policy = policy
        self.description = description or {}
        self.replan: int | None = policy.describe().get("replan") or None

    def info(self) -> dict[str, Any]:
        return {**self.policy.describe(), **self.description}

    def run_batch(self, op: str, requests: list[Request]) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        observations, instructions = [], []
        for req in requests:
            images = {k.removeprefix("image."): v for k, v in req.arrays.items() if k.startswith("image.")}
            if not images:
                raise ValueError("predict needs at least one 'image.<camera>' array")
            for name, img in images.items():
                if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    raise ValueError(f"image {name!r} must be uint8 [H, W, 3], got {img.dtype} {list(img.shape)}")
            instruction = req.header.get("instruction")
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError("predict needs a non-empty 'instruction' string")
            obs = dict(images)
            if "state" in req.arrays:
                obs["state"] = req.arrays["state"]
            observations.append(obs)
            instructions.append(instruction)
        chunks = np.asarray(self.policy.predict_chunk(observations, instructions), dtype=np.float32)
        if chunks.ndim != 3 or len(chunks) != len(requests):
            raise RuntimeError(f"policy returned actions of shape {list(chunks.shape)} for {len(requests)} "
                               "requests (need [B, K, 7])")
        return [({}, {"action": c[:self.replan]}) for c in chunks]
