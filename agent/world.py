"""The agent's world: what it can observe, what objects are where, and how a command is set up.

``SimWorld`` runs a tabletop scene in MuJoCo. Object knowledge comes from the simulator's state
(labelled as such in answers); on a real robot the same interface is fed by perception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from perception.buffer import FrameBuffer
from perception.frames import Frame


@dataclass
class WorldObject:
    name: str  # "red cube"
    color: str
    shape: str
    position: np.ndarray  # metres, robot base frame (x forward, y left, z up)


def find_objects(objects: Iterable[WorldObject], color: str = "", shape: str = "") -> list[WorldObject]:
    """The objects that a colour and/or a shape picks out (an empty slot matches any): how the
    router checks an operator's words against what is on the table. One match is a target; none,
    or more than one, is a question back to the operator."""
    return [o for o in objects if (not color or o.color == color) and (not shape or o.shape == shape)]


class SimWorld:
    """A tabletop episode the operator can question and command; frames go to a bounded memory."""

    source = "simulator state"

    def __init__(self, task: str = "PickUp", seed: int = 0, image_size: int = 128,
                 cameras: tuple[str, ...] = ("agentview", "wrist"), memory_frames: int = 600) -> None:
        import sim

        self.env = sim.make(task, cameras=cameras, image_size=(image_size, image_size))
        self.obs, info = self.env.reset(seed=seed)
        self.instruction = info["instruction"]
        self.fps = float(self.env.metadata.get("render_fps", 10))
        self.memory = FrameBuffer(max_frames=memory_frames, max_age_s=None)
        self.steps = 0
        self._remember()

    @property
    def unwrapped(self) -> Any:
        return self.env.unwrapped

    def _remember(self) -> None:
        self.memory.push(Frame(self.obs["agentview"], self.steps / self.fps, self.steps, {}))

    def objects(self) -> list[WorldObject]:
        gt = self.unwrapped.ground_truth()
        return [WorldObject(o["name"], o["color"], o["shape"], np.asarray(o["position"])) for o in gt["objects"]]

    def receptacles(self) -> list[str]:
        rec = self.unwrapped.ground_truth().get("receptacle")
        return [rec["kind"]] if rec else []

    def tcp_position(self) -> np.ndarray:
        return self.unwrapped.tcp_pose()[0]

    def set_goal(self, family: str, target: str, side: str = "", receptacle: str = "",
                 instruction: str = "") -> None:
        """Make the operator's command the episode's goal (raises SimError if the scene can't)."""
        self.unwrapped.set_goal(family, target, side=side or None, receptacle=receptacle or None,
                                instruction=instruction or None)
        self.instruction = self.unwrapped.instruction

    def step(self, action: np.ndarray) -> tuple[bool, bool]:
        """(success, episode over) after one control step."""
        self.obs, _, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self._remember()
        return bool(info["success"]), bool(terminated or truncated)

    def close(self) -> None:
        self.env.close()
