"""One shot, simulated and recorded: video frames, per-frame ground truth and the event log.

``simulate_shot`` strikes the cue ball along a world yaw with a power in [0, 1] and steps the
physics until every ball in play is at rest (or ``max_time``). Ground truth is sampled on the
video clock (``fps``, default 30): frame k is the state at the first physics step at or after
k / fps (``times`` holds the exact time, at most one 1 ms step late).
``save_shot`` / ``load_shot`` keep a record on disk as one mp4 per camera (sim/video.py), a
``ground_truth.json`` for people and tools (events, names, colours, fps, intrinsics, camera poses)
and a ``ground_truth.npz`` for the arrays (loadable with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import mujoco
import numpy as np

from common.atomic import atomic_path, write_text
from sim.billiards.events import Event, EventDetector
from sim.billiards.stroke import Stroke
from sim.billiards.world import BilliardsWorld
from sim.errors import SimError

REST_SPEED = 0.005  # m/s: a ball slower than this is at rest
MIN_AFTER_STRIKE = 0.3  # s: do not call the table at rest before the struck ball got going


@dataclass(frozen=True)
class ShotRecord:
    """Everything one shot produced. Arrays are indexed by frame (T) and by ball (N)."""

    fps: float
    times: np.ndarray  # [T] s from the start of the shot
    cue_pose: np.ndarray  # [T, 4, 4] cue -> world (origin at the tip, +z toward the butt)
    ball_pos: np.ndarray  # [T, N, 3] world, metres
    ball_vel: np.ndarray  # [T, N, 3] world, m/s
    potted: np.ndarray  # [T, N] bool
    ball_names: tuple[str, ...]
    ball_colors: tuple[tuple[float, float, float], ...]  # RGB in [0, 1]
    events: list[Event]
    aim: float  # world yaw of the stroke (rad)
    power: float  # in [0, 1]
    target: str | None = None  # the ball the player meant to pot, if any
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> uint8[T, H, W, 3]
    depth: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> float32[T, H, W] metres
    K: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> 3x3 intrinsics
    camera_pose: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> 4x4 camera->world (OpenCV)

    def pots(self) -> list[str]:
        return [e.a for e in self.events if e.kind == "pot"]

    @property
    def duration(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0


def _world_of(env_or_world: Any) -> BilliardsWorld:
    if isinstance(env_or_world, BilliardsWorld):
        return env_or_world
    world = getattr(getattr(env_or_world, "unwrapped", env_or_world), "world", None)
    if not isinstance(world, BilliardsWorld):
        raise SimError(f"expected a BilliardsWorld or BilliardsEnv, got {type(env_or_world).__name__}")
    return world


FrameSink = Callable[[dict[str, np.ndarray]], None]


def simulate_shot(env_or_world: Any, aim: float, power: float, *, record: bool = True,
                  max_time: float = 8.0, fps: float = 30.0, target: str | None = None,
                  on_frame: FrameSink | None = None, keep_frames: bool = True) -> ShotRecord:
    """Strike the cue ball along yaw ``aim`` (rad) with ``power`` in [0, 1]; return the record.

    ``record`` renders the world's cameras at every frame (the ground truth is always kept; it
    is cheap). Each rendered frame dict (``{camera: rgb, camera + "_depth": depth}``) also goes
    to ``on_frame``; ``keep_frames=False`` then keeps them out of memory (``record_shot`` streams
    a shot to disk that way). The world is left where the shot ended, so shots can follow each
    other.
    """
    if not (np.isfinite(aim) and np.isfinite(power)):
        raise SimError(f"aim and power must be finite, got aim={aim}, power={power}")
    if not 0.0 <= power <= 1.0:
        raise SimError(f"power must be in [0, 1], got {power}")
    if not (fps > 0 and max_time > 0):
        raise SimError(f"fps and max_time must be positive, got fps={fps}, max_time={max_time}")
    world = _world_of(env_or_world)
    if world.out_of_play()[world.ball_names.index("cue")]:
        raise SimError("the cue ball is potted or off the table; reset the table first")
    model, data = world.model, world.data
    render = record and world.cameras is not None
    t0 = float(data.time)
    stroke = Stroke(world, float(aim), float(power))
    mujoco.mj_forward(model, data)
    detector = EventDetector(model, world.ball_names, t0=t0)

    times, poses, positions, velocities, potted = [], [], [], [], []
    frames: dict[str, list[np.ndarray]] = {}
    next_frame = 0
    while True:
        t = float(data.time) - t0
        if t >= next_frame / fps - 1e-9:
            times.append(t)
            poses.append(world.cue_pose())
            positions.append(world.ball_positions())
            velocities.append(world.ball_velocities())
            potted.append(world.potted.copy())
            if render:
                images = world.render()
                if on_frame is not None:
                    on_frame(images)
                if keep_frames:
                    for name, image in images.items():
                        frames.setdefault(name, []).append(image)
            next_frame += 1
            if _done(world, stroke, t, max_time):
                break
        stroke.before_step(t)
        hit = world.step()
        new = detector.update(data, world.potted, hit.balls, world.off_table, hit.cushions)
        stroke.after_step(t, any(e.kind == "strike" for e in new))

    images = {k: np.stack(v) for k, v in frames.items() if not k.endswith("_depth")}
    depth = {k.removesuffix("_depth"): np.stack(v) for k, v in frames.items() if k.endswith("_depth")}
    return ShotRecord(
        fps=float(fps), times=np.array(times), cue_pose=np.stack(poses), ball_pos=np.stack(positions),
        ball_vel=np.stack(velocities), potted=np.stack(potted), ball_names=tuple(world.ball_names),
        ball_colors=tuple(tuple(float(c) for c in rgb) for rgb in world.ball_colors),
        events=list(detector.events), aim=float(aim), power=float(power), target=target,
        frames=images, depth=depth, K=world.intrinsics(), camera_pose=world.camera_poses(),
    )


def _done(world: BilliardsWorld, stroke: Stroke, t: float, max_time: float) -> bool:
    if t >= max_time:
        return True
    if not stroke.finished(t):
        return False
    if stroke.strike_time is not None and t < stroke.strike_time + MIN_AFTER_STRIKE:
        return False
    in_play = ~world.out_of_play()
    return bool(np.all(world.ball_speeds()[in_play] < REST_SPEED))


# ---- on disk ---------------------------------------------------------------------------------
GT_JSON = "ground_truth.json"
GT_NPZ = "ground_truth.npz"


def _mkdir(directory: str | Path) -> Path:
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimError(f"cannot create shot directory {out}: {exc}") from exc
    return out


def save_shot(record: ShotRecord, directory: str | Path) -> Path:
    """Write ``record`` into ``directory`` (created): ``<camera>.mp4``, ground_truth.json/.npz."""
    from sim.video import write_mp4  # lazy: PyAV only when videos are written

    out = _mkdir(directory)
    for camera, frames in record.frames.items():
        write_mp4(out / f"{camera}.mp4", frames, record.fps)
    _write_ground_truth(record, out, sorted(record.frames))
    return out


def record_shot(world: BilliardsWorld, aim: float, power: float, directory: str | Path,
                **kwargs: Any) -> ShotRecord:
    """Simulate a shot and stream its videos to ``directory`` as it runs (constant memory).

    Writes what ``save_shot`` writes; the returned record has no frames (read them back with
    ``load_shot``). ``kwargs`` go to ``simulate_shot``.
    """
    from sim.video import VideoWriter

    if world.cameras is None:
        raise SimError("record_shot needs a world with cameras")
    out = _mkdir(directory)
    fps = float(kwargs.get("fps", 30.0))
    writers = {cam: VideoWriter(out / f"{cam}.mp4", fps) for cam in world.cameras.names}
    depth: dict[str, list[np.ndarray]] = {}

    def sink(images: dict[str, np.ndarray]) -> None:
        for name, image in images.items():
            if name.endswith("_depth"):
                depth.setdefault(name.removesuffix("_depth"), []).append(image)
            else:
                writers[name].write(image)

    try:
        record = simulate_shot(world, aim, power, record=True, on_frame=sink, keep_frames=False, **kwargs)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for w in writers.values():
        w.close()
    record = replace(record, depth={k: np.stack(v) for k, v in depth.items()})
    _write_ground_truth(record, out, sorted(writers))
    return record


def _write_ground_truth(record: ShotRecord, out: Path, cameras: list[str]) -> None:
    meta = {
        "fps": record.fps,
        "ball_names": list(record.ball_names),
        "ball_colors": [list(c) for c in record.ball_colors],
        "events": [e.to_dict() for e in record.events],
        "aim": record.aim,
        "power": record.power,
        "target": record.target,
        "cameras": cameras,
        "K": {k: v.tolist() for k, v in record.K.items()},
        "camera_pose": {k: v.tolist() for k, v in record.camera_pose.items()},
        "cue_frame": "origin at the tip, +z toward the butt; cue_pose maps cue -> world",
    }
    write_text(out / GT_JSON, json.dumps(meta, indent=1))
    arrays = {"times": record.times, "cue_pose": record.cue_pose, "ball_pos": record.ball_pos,
              "ball_vel": record.ball_vel, "potted": record.potted}
    arrays.update({f"depth_{k}": v for k, v in record.depth.items()})
    with atomic_path(out / GT_NPZ) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_shot(directory: str | Path, frames: bool = True) -> ShotRecord:
    """Read a directory written by ``save_shot`` (videos decoded only when ``frames``)."""
    path = Path(directory)
    if not (path / GT_JSON).is_file() or not (path / GT_NPZ).is_file():
        raise SimError(f"{path} is not a saved shot (needs {GT_JSON} and {GT_NPZ})")
    meta = json.loads((path / GT_JSON).read_text())
    with np.load(path / GT_NPZ, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    videos = {}
    if frames:
        from sim.video import read_mp4

        videos = {cam: read_mp4(path / f"{cam}.mp4") for cam in meta["cameras"]}
    return ShotRecord(
        fps=float(meta["fps"]), times=arrays["times"], cue_pose=arrays["cue_pose"],
        ball_pos=arrays["ball_pos"], ball_vel=arrays["ball_vel"], potted=arrays["potted"].astype(bool),
        ball_names=tuple(meta["ball_names"]), ball_colors=tuple(tuple(c) for c in meta["ball_colors"]),
        events=[Event.from_dict(e) for e in meta["events"]], aim=float(meta["aim"]),
        power=float(meta["power"]), target=meta["target"], frames=videos,
        depth={k.removeprefix("depth_"): v for k, v in arrays.items() if k.startswith("depth_")},
        K={k: np.array(v) for k, v in meta["K"].items()},
        camera_pose={k: np.array(v) for k, v in meta["camera_pose"].items()},
    )
