"""Adapters that put our models behind the inference server's ``Service`` interface."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ros_nodes.zmq_server import Request


class BatchPolicy(Protocol):
    """Anything with ``predict_chunk_batch`` (-> [B, K, 7], preferred: stateless, so many robots can
    share one model) or ``predict_batch`` (-> [B, 7])."""

    def predict_batch(self, observations: list[dict[str, np.ndarray]], instructions: list[str]) -> np.ndarray: ...


class PolicyService:
    """``predict``: arrays ``image.<camera>`` (uint8 HxWx3) and optional ``state``; header ``instruction``."""

    ops = ("predict",)

    def __init__(self, policy: BatchPolicy, description: dict[str, Any] | None = None) -> None:
        self.policy = policy
        self.description = description or {}

    def info(self) -> dict[str, Any]:
        describe = getattr(self.policy, "describe", None)
        return {**(describe() if callable(describe) else {}), **self.description}

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
        predict = getattr(self.policy, "predict_chunk_batch", None) or self.policy.predict_batch
        actions = np.asarray(predict(observations, instructions), dtype=np.float32)
        replan = getattr(self.policy, "replan", None)
        if replan and actions.ndim == 3:  # the client plays what it gets: send what a local run plays
            actions = actions[:, :replan]
        if len(actions) != len(requests):
            raise RuntimeError(f"policy returned {len(actions)} actions for {len(requests)} requests")
        return [({}, {"action": a}) for a in actions]
