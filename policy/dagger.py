"""DAgger for the VLA policy: the policy drives the sim, the scripted expert labels every frame.

Behaviour cloning learns from the expert's states only; a policy that is a little off drifts into
states no demonstration shows (beside the object after a miss, above a same-coloured distractor)
and does not know the way back. DAgger (Ross, Gordon and Bagnell 2011) closes that gap: roll the
current policy out, record at each frame what the expert would have done from there, aggregate
with the expert data and fine-tune. ``embodied dagger`` writes such a dataset (LeRobot v3, the same
layout the recorder writes, so ``embodied train --dataset`` reads it unchanged); failed rollouts
are kept, they are the point.

The dataset's frames use the checkpoint's cameras and image size, and a directory may already
hold expert episodes (collection resumes), so one directory can aggregate both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.errors import PolicyError
from policy.executor import ChunkExecutor


@dataclass
class DaggerConfig:
    checkpoint: str = field(default="checkpoints/vla-default", metadata={"help": "policy checkpoint that drives"})
    task: str = field(default="Reach,PickUp", metadata={"help": "comma-separated tabletop tasks, round-robin"})
    episodes: int = field(default=100, metadata={"help": "total episodes wanted in --out (re-running resumes)"})
    out: str = field(default="data/dagger", metadata={"help": "dataset directory (may already hold expert episodes)"})
    seed: int = field(default=50_000, metadata={"help": "first seed (eval uses 100000+, keep clear of it)"})
    drive_prob: float = field(default=1.0, metadata={"help": "share of steps the policy drives (1 - DAgger's beta)"})
    perturb: float = field(default=0.0, metadata={"help": "std (m) of extra noise on the executed moves"})
    replan: int = field(default=-1, metadata={"help": "actions played per chunk (-1 = the checkpoint's)"})
    fsync: bool = field(default=True, metadata={"help": "fsync every file (--no-fsync is faster, still crash safe)"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda"})


class PolicyDriver:
    """Adapts a chunk executor to the collector's driver protocol (one robot)."""

    def __init__(self, executor: ChunkExecutor) -> None:
        self.executor = executor
        self.instruction = ""

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.executor.reset()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return self.executor.act([obs], [self.instruction])[0]


def run_dagger(cfg: DaggerConfig) -> dict[str, Any]:
    """Fill ``cfg.out`` with policy-driven, expert-labelled episodes; returns the collector summary."""
    import torch

    from sim.collect import CollectConfig, collect

    from policy.predict import Policy

    if cfg.episodes < 1:
        raise PolicyError("--episodes must be at least 1")
    policy = Policy.from_pretrained(cfg.checkpoint, device=cfg.device,
                                    replan=None if cfg.replan < 0 else cfg.replan)
    size = policy.cfg.obs_image_size
    executor = ChunkExecutor(policy)
    collect_cfg = CollectConfig(task=cfg.task, episodes=cfg.episodes, out=cfg.out, seed=cfg.seed,
                                image_size=(size, size), cameras=tuple(policy.cfg.camera_list),
                                keep_failures=True, perturb=cfg.perturb, drive_prob=cfg.drive_prob,
                                fsync=cfg.fsync)
    with torch.no_grad():
        return collect(collect_cfg, make_driver=lambda env: PolicyDriver(executor))
