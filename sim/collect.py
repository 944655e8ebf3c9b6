"""Expert demonstrations into a LeRobot v3 dataset: run the scripted expert, keep what succeeded.

Run it twice and it resumes: the dataset writer keeps every committed episode, and collection
continues from the last committed seed, so an interrupted run followed by the same command gives
the same dataset as one uninterrupted run. Asking for N episodes when N exist does nothing.

Seeds and tasks. Attempt ``k`` uses seed ``cfg.seed + k``; with an expert that always succeeds (or
``keep_failures``), saved episode i therefore has seed ``seed + i``. Several task families share one
dataset round-robin: saved episode i is of family ``tasks[i % len(tasks)]``, and a failed attempt is
retried on the same family with the next seed.

Frames. Every kept step stores the observation and the action the expert took from it. With
``perturb`` > 0 the env executes that action plus Gaussian noise on the translation (DART, Laskey et
al. 2017) while the dataset keeps the expert's own action: the demonstrations then visit states a
slightly wrong policy reaches and show how the expert gets back on course, which plain expert
rollouts never do. ``burst_prob`` goes further: at each step, with that probability, the next 1-3
executed moves are replaced by full-speed moves in a random direction (the gripper command kept),
so the data also holds the far-off states a policy that missed ends up in (on the table beside the
object, above a distractor) with the expert's way back from each. A ``driver`` (DAgger, Ross et
al. 2011) goes furthest: a learned policy chooses the executed action (on a ``drive_prob`` share of
the steps) and the expert only labels, so the data hold exactly the states that policy reaches,
its mistakes included; ``sim`` knows nothing of policies, the caller passes ``make_driver``. Idle steps
(no translation, no rotation, gripper unchanged) teach a policy to stand still and are dropped by
default (``skip_idle``). Ground truth (``env.unwrapped.ground_truth()``) is logged at every step:
numeric leaves become per-frame arrays in ``gt/episode_{index:06d}.npz``; the first and last
full dictionaries and the events go to ``gt/episode_{index:06d}.json``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from sim.errors import SimError
from sim.registry import TABLETOP_TASKS, check_task

IDLE_TOL = 1e-4  # |action| below this on every motion axis is no motion (m or rad per step)


class Expert(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


class Driver(Protocol):
    """Whatever moves the robot while the expert labels (a policy under DAgger)."""

    def reset(self, instruction: str) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


@dataclass
class CollectConfig:
    """What `embodied sim collect` records; each field's help is its flag's help."""

    task: str = field(default="PickUp", metadata={"help": "task, comma list (PickUp,Push) or 'all' (every tabletop task)"})
    # not per run: re-running resumes until the dataset holds this many
    episodes: int = field(default=10, metadata={"help": "total episodes wanted in the dataset"})
    out: str = field(default="data/demos", metadata={"help": "dataset directory (LeRobot v3 layout)", "metavar": "DIR"})
    seed: int = field(default=0, metadata={"help": "base seed; attempt k uses seed+k, so runs are reproducible"})
    # 128 keeps CPU collection fast; set by --size WxH
    image_size: tuple[int, int] = field(default=(128, 128), metadata={"help": "(width, height)", "flag": False})
    # what OpenVLA-style policies consume; set by --cameras A,B
    cameras: tuple[str, ...] = field(default=("agentview", "wrist"), metadata={"help": "camera names", "flag": False})
    depth: bool = field(default=False, metadata={"help": "log depth maps into gt/*.npz (large)"})
    # the env's control rate is env.metadata["render_fps"], else 10
    fps: int = field(default=0, metadata={"help": "dataset fps; 0 = the env's control rate"})
    skip_idle: bool = field(default=True, metadata={"help": "drop no-op frames: a policy should not learn to stand still"})
    keep_failures: bool = field(default=False, metadata={"help": "also save failed attempts (flagged success=False)"})
    perturb: float = field(default=0.0, metadata={
        "help": "std (m) of noise on the executed moves only: off-course states with the expert's corrections (DART)"})
    burst_prob: float = field(default=0.0, metadata={
        "help": "per-step chance of 1-3 random full-speed executed moves, the expert's labels recorded"})
    # only meaningful with a driver: `embodied dagger` sets it
    drive_prob: float = field(default=1.0, metadata={
        "help": "with a driver: share of steps whose executed action is the driver's", "flag": False})
    instruction_split: str = field(default="train", metadata={
        "help": "instruction wording: train | extended (train + more training-only wording and shape synonyms)",
        "choices": ("train", "extended")})
    object_split: str = field(default="all", metadata={
        "help": "colour/shape combinations: all | train (keep the evaluation's held-out combinations out)",
        "choices": ("all", "train")})
    max_steps: int = field(default=400, metadata={"help": "step cap per episode on top of the env's own time limit"})
    max_attempts: int = field(default=0, metadata={"help": "give up after this many attempts; 0 = 2*episodes+10"})
    crf: int = field(default=10, metadata={"help": "x264 quality of the stored videos (lower = sharper, larger)"})
    pix_fmt: str = field(default="yuv444p", metadata={
        "help": "yuv444p keeps small objects' colours; yuv420p for old players"})
    # ~10 ms per file on a slow disk
    fsync: bool = field(default=True, metadata={
        "help": "fsync every file (power-cut safe; --no-fsync is faster, still crash safe)"})
    progress: bool = field(default=True, metadata={"help": "tqdm progress bar on stderr"})


def parse_tasks(spec: str) -> list[str]:
    """"all" -> every tabletop task; "pickup, Push" -> ["PickUp", "Push"] (validated)."""
    if spec.strip().lower() == "all":
        return list(TABLETOP_TASKS)
    tasks = [check_task(t.strip()) for t in spec.split(",") if t.strip()]
    if not tasks:
        raise SimError("no task given")
    for t in tasks:
        if t not in TABLETOP_TASKS:
            raise SimError(f"{t} has no scripted arm expert to collect from; collectable tasks: "
                           f"{', '.join(TABLETOP_TASKS)} (record a shot with `embodied sim record`)")
    return tasks


def parse_size(text: str) -> tuple[int, int]:
    """"128" or "160x120" -> (width, height)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 8 or max(parts) > 4096:
        raise SimError(f"bad image size {text!r}: use WIDTHxHEIGHT like 128x128 (8..4096)")
    return parts[0], parts[1]


def is_idle(action: np.ndarray, prev_gripper: float | None) -> bool:
    """No translation, no rotation and the gripper command unchanged: a no-op step.

    On the first step there is no previous command, so motion alone decides (as OpenVLA's LIBERO
    no-op filter does).
    """
    still = bool(np.all(np.abs(action[:6]) < IDLE_TOL))
    if prev_gripper is None:
        return still
    return still and abs(float(action[6]) - prev_gripper) < IDLE_TOL


def flatten_numeric(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Numeric leaves of a nested dict/list as ``{"objects.red_cube.pos": array}`` (strings dropped)."""
    out: dict[str, np.ndarray] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(flatten_numeric(value, f"{prefix}{key}."))
        return out
    try:
        arr = np.asarray(tree)
    except (ValueError, TypeError):  # ragged lists
        return out
    if arr.dtype.kind in "biuf" and arr.size > 0:
        out[prefix.rstrip(".")] = arr
    elif arr.dtype == object and isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            out.update(flatten_numeric(value, f"{prefix}{i}."))
    return out


def _depth_maps(obs: dict[str, Any], cameras: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Depth images from the observation, whichever of the two layouts the env uses."""
    found = {}
    nested = obs.get("depth") if isinstance(obs.get("depth"), dict) else {}
    for cam in cameras:
        value = nested.get(cam, obs.get(f"{cam}_depth"))
        if value is not None:
            found[f"depth.{cam}"] = np.asarray(value, dtype=np.float32)
    return found


def default_make_env(task: str, cfg: CollectConfig):
    import sim

    return sim.make(task, cameras=tuple(cfg.cameras), image_size=tuple(cfg.image_size), depth=cfg.depth,
                    instruction_split=cfg.instruction_split, object_split=cfg.object_split)


def default_make_expert(env, seed: int) -> Expert:
    from sim.tabletop.experts import make_expert

    return make_expert(env, seed=seed)


def run_episode(env, expert: Expert, seed: int, cfg: CollectConfig,
                start_recording: Callable[[str], Any] | None = None,
                driver: Driver | None = None) -> dict[str, Any]:
    """Roll the expert out once and return success, steps, kept frames and the ground truth.

    ``start_recording(instruction)`` is called after reset (when the instruction is known) and
    returns an EpisodeRecorder that receives the kept frames; without it nothing is recorded.
    With a ``driver`` the recorded action is still the expert's; the executed one is the driver's
    on a ``cfg.drive_prob`` share of steps (the driver is asked every step, so a chunking policy's
    queue stays in step with the episode).

    Events (for video QA: ordering, timestamps) are the env's own, if its ground truth has an
    "events" list, plus gripper closes/opens and the first success, each with the env ``step``,
    the time ``t`` in seconds and the dataset ``frame`` it shows up in (None if not recorded).
    """
    obs, info = env.reset(seed=seed)
    expert.reset()
    instruction = str(info.get("instruction", ""))
    recorder = start_recording(instruction) if start_recording else None
    if driver is not None:
        driver.reset(instruction)
    drive_rng = np.random.default_rng([seed, 0xDA66E2])
    unwrapped = env.unwrapped
    hz = float(env.metadata.get("render_fps") or 10)
    gt_first = unwrapped.ground_truth()
    gt_now = gt_first
    prev_gripper: float | None = None
    perturb_rng = np.random.default_rng([seed, 0xDA27])  # its own stream: the expert's stays as it was
    space = env.action_space
    burst = 0  # executed moves left in the current random burst
    burst_dir = np.zeros(3, np.float32)
    kept = steps = 0
    success = False
    events: list[dict[str, Any]] = []
    for steps in range(1, cfg.max_steps + 1):
        action = np.asarray(expert.act(obs), dtype=np.float32)
        if not np.all(np.isfinite(action)):
            raise SimError(f"expert produced a non-finite action at step {steps}")
        frame = None
        if recorder is not None and not (cfg.skip_idle and is_idle(action, prev_gripper)):
            frame_gt = flatten_numeric(gt_now)
            if cfg.depth:
                frame_gt.update(_depth_maps(obs, tuple(cfg.cameras)))
            recorder.add_frame({c: obs[c] for c in cfg.cameras}, obs["state"], action, frame_gt)
            frame, kept = kept, kept + 1
        if prev_gripper is not None and (action[6] > 0.5) != (prev_gripper > 0.5):
            kind = "gripper_close" if action[6] > 0.5 else "gripper_open"
            events.append({"type": kind, "step": steps - 1, "t": round((steps - 1) / hz, 4), "frame": frame})
        prev_gripper = float(action[6])
        executed = action
        if driver is not None:
            driven = np.asarray(driver.act(obs), dtype=np.float32)
            if drive_rng.random() < cfg.drive_prob:
                if driven.shape != action.shape or not np.all(np.isfinite(driven)):
                    raise SimError(f"driver produced a bad action {driven!r} at step {steps}")
                executed = np.clip(driven, space.low, space.high).astype(np.float32)
        if cfg.perturb > 0:
            executed = executed.copy()
            executed[:3] += perturb_rng.normal(0.0, cfg.perturb, 3).astype(np.float32)
            executed = np.clip(executed, space.low, space.high).astype(np.float32)
        if cfg.burst_prob > 0:
            if burst == 0 and perturb_rng.random() < cfg.burst_prob:
                burst = int(perturb_rng.integers(1, 4))
                v = perturb_rng.normal(size=3)
                burst_dir = (v / np.linalg.norm(v) * space.high[:3]).astype(np.float32)
            if burst > 0:
                burst -= 1
                executed = executed.copy()
                executed[:3] = burst_dir
                executed[3:6] = 0.0
        obs, _, terminated, truncated, info = env.step(executed)
        if recorder is not None or cfg.depth:  # per-step ground truth only when it is kept
            gt_now = unwrapped.ground_truth()
        success = bool(info.get("success", False))
        if success or terminated or truncated:
            break
    gt_now = unwrapped.ground_truth()
    if success:
        events.append({"type": "success", "step": steps, "t": round(steps / hz, 4), "frame": None})
    env_events = gt_now.get("events", []) if isinstance(gt_now, dict) else []
    events = sorted([*env_events, *events], key=lambda e: e.get("t", 0.0)) if env_events else events
    return {"success": success, "steps": steps, "kept": kept, "instruction": instruction,
            "recorder": recorder,
            "ground_truth": {"events": events, "initial": gt_first, "final": gt_now,
                             "clipped_actions": int(info.get("clipped_actions", 0) or 0)}}


def _check_output(out: Path) -> None:
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if probe.exists() and not probe.is_dir():
        raise SimError(f"cannot write dataset at {out}: {probe} is a file")


def collect(cfg: CollectConfig, make_env: Callable[[str, CollectConfig], Any] | None = None,
            make_expert: Callable[[Any, int], Expert] | None = None,
            make_driver: Callable[[Any], Driver] | None = None) -> dict[str, Any]:
    """Fill ``cfg.out`` up to ``cfg.episodes`` saved episodes; returns a summary dict.

    ``make_driver(env)``, when given, builds the driver for each task's env (once per env).
    """
    from tqdm import tqdm

    from sim.dataset import LeRobotWriter
    from common.runs import RunLog

    make_env = make_env or default_make_env
    make_expert = make_expert or default_make_expert
    tasks = parse_tasks(cfg.task) if make_env is default_make_env else [t.strip() for t in cfg.task.split(",")]
    if cfg.episodes < 0:
        raise SimError("--episodes must be >= 0")
    if not 0.0 <= cfg.drive_prob <= 1.0:
        raise SimError(f"--drive-prob must be in [0, 1], got {cfg.drive_prob}")
    out = Path(cfg.out)
    _check_output(out)
    envs: dict[str, Any] = {}
    drivers: dict[str, Driver] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        envs[tasks[0]] = make_env(tasks[0], cfg)
        first = envs[tasks[0]]
        fps = cfg.fps or int(first.metadata.get("render_fps") or 10)
        state_dim = int(first.observation_space["state"].shape[0])
        robot_type = getattr(first.unwrapped, "robot_type", "embodied_arm")
        writer = LeRobotWriter(out, fps=fps, cameras=cfg.cameras, image_size=cfg.image_size,
                               state_dim=state_dim, robot_type=robot_type, crf=cfg.crf, sync=cfg.fsync,
                               pix_fmt=cfg.pix_fmt)
    except BaseException:
        for env in envs.values():
            env.close()
        raise
    resumed_from = writer.num_episodes
    # Continue after the last committed seed (attempts that failed after it are simply re-run).
    attempt = (writer.episode_seeds()[-1] - cfg.seed + 1) if resumed_from else 0
    attempt = max(attempt, 0)
    max_attempts = cfg.max_attempts or 2 * cfg.episodes + 10
    tried = saved = 0
    per_task = {t: {"attempts": 0, "successes": 0, "saved": 0} for t in tasks}
    log = RunLog(out / "logs", config=dataclasses.replace(cfg, out=str(out)))
    bar = tqdm(total=cfg.episodes, initial=min(resumed_from, cfg.episodes), desc=f"collect {cfg.task}",
               unit="ep", disable=not cfg.progress, dynamic_ncols=True)
    try:
        while writer.num_episodes < cfg.episodes and tried < max_attempts:
            task = tasks[writer.num_episodes % len(tasks)]
            if task not in envs:
                envs[task] = make_env(task, cfg)
            if make_driver is not None and task not in drivers:
                drivers[task] = make_driver(envs[task])
            env, seed = envs[task], cfg.seed + attempt
            expert = make_expert(env, seed)
            started: list[Any] = []  # the recorder, kept here so a crash mid-episode can discard it

            def start(instruction: str, task=task, seed=seed):
                started.append(writer.start_episode(task=instruction, seed=seed, task_family=task))
                return started[-1]

            try:
                result = run_episode(env, expert, seed, cfg, start_recording=start,
                                     driver=drivers.get(task))
            except BaseException:
                for rec in started:
                    rec.discard()
                raise
            tried += 1
            attempt += 1
            stats = per_task[task]
            stats["attempts"] += 1
            stats["successes"] += int(result["success"])
            rec, index = result["recorder"], None
            if (result["success"] or cfg.keep_failures) and len(rec) > 0:
                index = rec.finish(result["success"], result["ground_truth"])
                stats["saved"] += 1
                saved += 1
            else:
                rec.discard()
            log.log(attempt=attempt - 1, seed=seed, task=task, success=result["success"], steps=result["steps"],
                    kept=result["kept"], episode_index=index, instruction=result["instruction"],
                    # since the run began, wall clock and this process's CPU: rates over a long run
                    seconds=round(time.perf_counter() - t0, 4), cpu_seconds=round(time.process_time() - c0, 4))
            rate = sum(s["successes"] for s in per_task.values()) / tried
            bar.set_postfix(success=f"{rate:.0%}", refresh=False)
            bar.update(1 if index is not None else 0)
    finally:
        bar.close()
        log.close()
        writer.close()
        for env in envs.values():
            env.close()
    seconds = time.perf_counter() - t0
    return {
        "out": str(out), "tasks": tasks, "episodes": writer.num_episodes, "frames": writer.num_frames,
        "resumed_from": resumed_from, "saved_now": saved, "attempts_now": tried,
        "success_rate": {t: s["successes"] / s["attempts"] for t, s in per_task.items() if s["attempts"]},
        "per_task": per_task, "seconds": round(seconds, 2),
        "episodes_per_min": round(60 * saved / seconds, 2) if saved else 0.0,
        "complete": writer.num_episodes >= cfg.episodes,
    }
