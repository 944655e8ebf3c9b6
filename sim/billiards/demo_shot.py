"""A shot to try the coach on: a fixed cut into a corner pocket, recorded with its sidecar.

The layout is a practice drill: the cue ball near the centre spot, the red ball 0.6 m up-table
toward the top-right pocket (a ~30 degree cut), the other balls parked along the far left end out
of the way. The scripted player's ghost-ball aim (no noise) pots the red. Written into one
directory: ``<camera>.mp4``, ``<camera>.calib.json`` (``sidecar.py``), ``<camera>.depth.npz``
when ``depth`` (float32 [T, H, W] metres under the key ``depth``), and the simulator's
``ground_truth.json``/``.npz`` (for scoring; the coach never reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from common.atomic import atomic_path
from sim.billiards.player import ScriptedPlayer
from sim.billiards.shot import ShotRecord, record_shot
from sim.billiards.sidecar import write_sidecar
from sim.billiards.world import BilliardsWorld
from sim.errors import SimError

TARGET, POCKET = "red", "top_right"
CUE_XY = (0.15, 0.20)  # m, world: a ~30 degree cut
TARGET_XY = (0.80, 0.30)
PARK_X = -1.0  # the other balls wait in a column at this x
POWER = 0.25  # a firm enough pace that the red drops well before the cue ball stops


@dataclass(frozen=True)
class DemoShot:
    video: Path
    sidecar: Path
    depth: Path | None
    record: ShotRecord  # ground truth (no frames: they are in the video)


def demo_layout(world: BilliardsWorld) -> None:
    """Place the drill's balls (see the module docstring)."""
    names = world.ball_names
    place = {"cue": CUE_XY, TARGET: TARGET_XY}
    others = [n for n in names if n not in place]
    for i, name in enumerate(others):
        place[name] = (PARK_X, -0.45 + 0.9 * i / max(len(others) - 1, 1))
    world.place_balls(np.array([place[n] for n in names]))
    mujoco.mj_forward(world.model, world.data)


def demo_aim(world: BilliardsWorld) -> float:
    """The ghost-ball aim of the red into the top-right pocket (the scripted player's, no noise)."""
    player = ScriptedPlayer(np.random.default_rng(0), aim_noise_deg=0.0, power_noise=0.0)
    for _, aim, _, ball, pocket in player.candidates(world.state()):
        if (ball, pocket) == (TARGET, POCKET):
            return aim
    raise SimError("the demo layout has no clear pot of the red into the top-right pocket")


def record_demo_shot(directory: str | Path, camera: str = "overhead", size: tuple[int, int] = (640, 480),
                     depth: bool = False, fps: float = 30.0, shadows: bool = True,
                     max_time: float = 8.0) -> DemoShot:
    """Simulate and record the drill from ``camera`` into ``directory``; see the module docstring."""
    out = Path(directory)
    width, height = int(size[0]), int(size[1])
    world = BilliardsWorld(cameras=(camera,), width=width, height=height, depth=depth, shadows=shadows)
    try:
        world.reset(np.random.default_rng(0))
        demo_layout(world)
        record = record_shot(world, demo_aim(world), POWER, out, fps=fps, target=TARGET, max_time=max_time)
    finally:
        world.close()
    video = out / f"{camera}.mp4"
    sidecar = write_sidecar(record, video, camera, width, height)
    depth_path = None
    if depth:
        depth_path = out / f"{camera}.depth.npz"
        with atomic_path(depth_path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, depth=record.depth[camera].astype(np.float32))
    return DemoShot(video, sidecar, depth_path, record)
