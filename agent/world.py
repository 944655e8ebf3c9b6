"""The agent's world: what it can observe, what objects are where, and how a command is set up.

``SimWorld`` runs a tabletop scene in MuJoCo. By default what it knows of the objects comes from
the scene perceiver run on its own camera frames (RGB-D), as on a real robot; the simulator's state
is kept only to score perception against (``world_source="ground-truth"`` answers from it, for
debugging). ``source`` names where the last answer came from, for the agent's replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from common.errors import UserError
from perception.buffer import FrameBuffer
from perception.frames import Frame
from perception.scene import CameraView, ScenePercept, ScenePerceiver

WORLD_SOURCES = ("perception", "ground-truth")
CAMERA_WORDS = {"agentview": "agent-view", "wrist": "wrist"}
PERCEPTION_SIZE = 128  # px: the perceiver's accuracy is measured here (bench world); smaller misses objects


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
    """A tabletop episode the operator can question and command; frames go to a bounded memory.

    With ``world_source="perception"`` every observation also renders depth (once, with the
    colour frame); the perceiver runs on it at most once per observation, when first asked.
    Depth stays out of ``obs``, so the policy and the memory see what they saw before. A world
    rendering below ``PERCEPTION_SIZE`` (small test worlds) gives the perceiver its own RGB-D
    frame at that size instead, rendered once per observation when first asked."""

    def __init__(self, task: str = "PickUp", seed: int = 0, image_size: int = 128,
                 cameras: tuple[str, ...] = ("agentview", "wrist"), memory_frames: int = 600,
                 world_source: str = "perception") -> None:
        import sim

        if world_source not in WORLD_SOURCES:
            raise UserError(f"unknown world source {world_source!r} (choose from {', '.join(WORLD_SOURCES)})")
        self.world_source = world_source
        self.cameras = tuple(cameras)
        self.perceiver = ScenePerceiver() if world_source == "perception" else None
        self._percept: ScenePercept | None = None
        self._percept_step = -1
        self._depth: dict[str, np.ndarray] = {}
        shared = self.perceiver is not None and image_size >= PERCEPTION_SIZE
        self.env = sim.make(task, cameras=cameras, image_size=(image_size, image_size), depth=shared)
        self._own_cameras = None
        if self.perceiver is not None and not shared:
            from sim import render

            self._own_cameras = render.Cameras(self.unwrapped.model, self.cameras, PERCEPTION_SIZE,
                                               PERCEPTION_SIZE, depth=True)
        obs, info = self.env.reset(seed=seed)
        self._observe(obs)
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

    def _observe(self, obs: dict[str, Any]) -> None:
        """Keep the depth images aside (perception's alone) and the rest as the observation."""
        self._depth = {k[:-len("_depth")]: v for k, v in obs.items() if k.endswith("_depth")}
        self.obs = {k: v for k, v in obs.items() if not k.endswith("_depth")}

    @property
    def source(self) -> str:
        """Where answers come from, worded to follow "from the" in the agent's replies."""
        if self.perceiver is None:
            return "simulator state"
        p = self.percept()
        used = p.sources or self.cameras
        cams = " and ".join(CAMERA_WORDS.get(c, c) for c in used)
        what = f"{cams} camera{'s' if len(used) > 1 else ''} at t={p.stamp:.1f} s"
        return what if p.ok else f"{what}, which does not show the table"

    def view_problem(self) -> str:
        """Why the cameras do not show the table now ("" when they do, or with ground truth): an
        empty ``objects()`` then means "I can't see the table", not "the table is empty"."""
        if self.perceiver is None or self.percept().ok:
            return ""
        return self.percept().reason

    def view_age_s(self) -> float:
        """How old the view behind ``objects()`` is, in world time: 0 here, since the perceiver
        runs on the current observation (the ROS graph's ``PerceivedWorld`` can lag)."""
        if self.perceiver is None:
            return 0.0
        return max(0.0, self.steps / self.fps - self.percept().stamp)

    def percept(self) -> ScenePercept:
        """The perceiver's view of the current observation (computed once per observation; the
        tracker keeps identities across the observations it is asked about)."""
        if self.perceiver is None:
            raise UserError("this world answers from the simulator state (world_source='ground-truth')")
        if self._percept is None or self._percept_step != self.steps:
            env, stamp = self.unwrapped, self.steps / self.fps
            if self._own_cameras is None:
                images, depth, K = self.obs, self._depth, env.camera_intrinsics
            else:
                from sim import render

                images = self._own_cameras.render(env.data)
                depth = {c: images[c + "_depth"] for c in self.cameras}
                K = lambda c: render.intrinsics(env.model, c, PERCEPTION_SIZE, PERCEPTION_SIZE)  # noqa: E731
            views = [CameraView(c, images[c], depth.get(c), K(c), env.camera_pose(c), stamp)
                     for c in self.cameras if c in images]
            self._percept, self._percept_step = self.perceiver.perceive(views, stamp), self.steps
        return self._percept

    def ground_truth_objects(self) -> list[WorldObject]:
        """The simulator's true objects: for scoring perception, never for answering by default."""
        gt = self.unwrapped.ground_truth()
        return [WorldObject(o["name"], o["color"], o["shape"], np.asarray(o["position"])) for o in gt["objects"]]

    def objects(self) -> list[WorldObject]:
        """What is on the table; ``[]`` when the cameras do not show the table."""
        if self.perceiver is None:
            return self.ground_truth_objects()
        return [WorldObject(o.description, o.color, o.shape, np.asarray(o.position, float))
                for o in self.percept().objects]

    def receptacles(self) -> list[str]:
        if self.perceiver is None:
            rec = self.unwrapped.ground_truth().get("receptacle")
            return [rec["kind"]] if rec else []
        return [r.kind for r in self.percept().receptacles]

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
        obs, _, terminated, truncated, info = self.env.step(action)
        self._observe(obs)
        self.steps += 1
        self._remember()
        return bool(info["success"]), bool(terminated or truncated)

    def close(self) -> None:
        if self._own_cameras is not None:
            self._own_cameras.close()
        self.env.close()


class PerceivedWorld:
    """The world as a perception node reports it: the latest object list, with its stamp.

    The agent's ROS node keeps one of these; each list (a ``ScenePercept``, e.g. parsed from the
    perception node's JSON) replaces the last with ``update``. It answers like ``SimWorld``
    (``objects``, ``receptacles``, ``source``, ``view_problem``) and says how old its view is
    (``view_age_s``, on ``clock``, the time base of the stamps), so the agent refuses to present a
    list older than its ``max_view_age_s`` as what is on the table now. It has no simulator
    behind it: commands are carried out elsewhere (the policy node).
    """

    def __init__(self, clock: Callable[[], float], fps: float = 10.0, memory_frames: int = 256) -> None:
        self.clock = clock
        self.fps = fps
        self.memory = FrameBuffer(max_frames=memory_frames, max_age_s=None)  # no video here (yet)
        self.percept: ScenePercept | None = None

    def update(self, percept: ScenePercept) -> None:
        self.percept = percept

    def objects(self) -> list[WorldObject]:
        """The latest list's objects (however old: ``view_age_s`` says, the agent decides)."""
        if self.percept is None:
            return []
        return [WorldObject(o.description, o.color, o.shape, np.asarray(o.position, float))
                for o in self.percept.objects]

    def receptacles(self) -> list[str]:
        return [] if self.percept is None else [r.kind for r in self.percept.receptacles]

    def view_problem(self) -> str:
        if self.percept is None:
            return "no object list has come from perception yet"
        return "" if self.percept.ok else self.percept.reason

    def view_age_s(self) -> float:
        return float("inf") if self.percept is None else max(0.0, self.clock() - self.percept.stamp)

    @property
    def source(self) -> str:
        """Worded to follow "from the" in the agent's replies."""
        p = self.percept
        if p is None:
            return "perception node, which has sent nothing yet"
        used = p.sources or tuple(name for name, _ in p.views)
        cams = " and ".join(CAMERA_WORDS.get(c, c) for c in used) or "no"
        return f"{cams} camera{'s' if len(used) > 1 else ''}, {self.view_age_s():.1f} s ago"
