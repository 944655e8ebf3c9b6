"""Rollouts rendered for people: one expert episode or billiards shot as frames, and a contact sheet.

``embodied sim record`` writes :func:`rollout_frames` to an mp4; ``embodied sim sheet`` lays a few
frames of every task side by side with its instruction (:func:`contact_sheet`), the quickest way to
see that the worlds, cameras and experts look right after a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from common.atomic import atomic_path
from sim.errors import SimError
from sim.registry import TABLETOP_TASKS, check_task

BILLIARDS_FPS = 30  # shot videos: fast balls need a higher frame rate than arm control (10 Hz)


@dataclass
class Rollout:
    """Frames of one rollout and what a caption needs."""

    task: str
    instruction: str
    frames: np.ndarray  # uint8[T, H, W, 3]
    fps: int
    success: bool


def tabletop_rollout(task: str, seed: int = 0, camera: str = "agentview", image_size=(256, 256),
                     max_steps: int = 400) -> Rollout:
    """Run the scripted expert once and keep ``camera``'s frame after every step (and at reset)."""
    import sim
    from sim.tabletop.experts import make_expert

    env = sim.make(task, cameras=(camera,), image_size=tuple(image_size))
    try:
        obs, info = env.reset(seed=seed)
        expert = make_expert(env.unwrapped, seed=seed)
        expert.reset()
        frames = [obs[camera]]
        success = False
        for _ in range(max_steps):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            frames.append(obs[camera])
            success = bool(info.get("success"))
            if terminated or truncated:
                break
        fps = int(env.metadata.get("render_fps") or 10)
        return Rollout(task, str(info.get("instruction", "")), np.stack(frames), fps, success)
    finally:
        env.close()


def billiards_rollout(seed: int = 0, camera: str = "overhead", image_size=(320, 240),
                      fps: int = BILLIARDS_FPS, on_frame=None) -> Rollout:
    """One shot planned by the scripted player on a scattered table.

    With ``on_frame`` each frame is handed over as it is rendered and none is kept (a long shot
    at 640x480 would otherwise hold hundreds of MB); ``Rollout.frames`` is then empty.
    """
    from sim.billiards.player import ScriptedPlayer
    from sim.billiards.shot import simulate_shot
    from sim.billiards.world import BilliardsWorld

    rng = np.random.default_rng(seed)
    world = BilliardsWorld(cameras=(camera,), width=int(image_size[0]), height=int(image_size[1]))
    try:
        world.reset(rng)
        aim, power, target = ScriptedPlayer(rng).plan(world.state())
        if on_frame is None:
            shot = simulate_shot(world, aim, power, target=target, fps=fps)
            frames = shot.frames[camera]
        else:
            shot = simulate_shot(world, aim, power, target=target, fps=fps,
                                 on_frame=lambda images: on_frame(images[camera]), keep_frames=False)
            frames = np.zeros((0, int(image_size[1]), int(image_size[0]), 3), np.uint8)
    finally:
        world.close()
    caption = f"pot the {target} ball" if target else "hit an object ball"
    return Rollout("Billiards", caption, frames, int(fps), target in shot.pots())


def rollout_frames(task: str, seed: int = 0, camera: str | None = None, image_size=(256, 256),
                   max_steps: int = 400) -> Rollout:
    """Tabletop expert episode or billiards shot, whichever ``task`` names."""
    task = check_task(task)
    if task == "Billiards":
        return billiards_rollout(seed, camera or "overhead", image_size)
    return tabletop_rollout(task, seed, camera or "agentview", image_size, max_steps)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def contact_sheet(rollouts: Sequence[Rollout], out: str | Path, n_frames: int = 4, tile: int = 160) -> Path:
    """One row per rollout: ``n_frames`` evenly spaced frames under a caption; PNG at ``out``."""
    from PIL import Image, ImageDraw

    caption_h, pad = 22, 4
    rows = []
    for r in rollouts:
        idx = np.linspace(0, len(r.frames) - 1, n_frames).round().astype(int)
        h, w = r.frames.shape[1:3]
        size = (max(1, round(tile * w / h)), tile)  # keep the camera's aspect ratio
        rows.append([Image.fromarray(r.frames[i]).resize(size, Image.BILINEAR) for i in idx])
    width = max(pad + sum(im.width + pad for im in row) for row in rows)
    height = sum(caption_h + tile + pad for _ in rows) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(14)
    y = pad
    for r, row in zip(rollouts, rows):
        mark = "ok" if r.success else "failed"
        draw.text((pad, y + 3), f"{r.task}: \"{r.instruction}\" ({len(r.frames)} frames, {mark})",
                  fill=(0, 0, 0), font=font)
        y += caption_h
        x = pad
        for im in row:
            sheet.paste(im, (x, y))
            x += im.width + pad
        y += tile + pad
    out = Path(out)
    try:
        with atomic_path(out, suffix=".png") as tmp:
            sheet.save(tmp, format="PNG")
    except OSError as exc:
        raise SimError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out


def make_sheet(out: str | Path, tasks: Sequence[str] | None = None, seed: int = 0, tile: int = 160,
               n_frames: int = 4) -> Path:
    """Contact sheet of every tabletop task plus the billiards table (or the ``tasks`` given)."""
    tasks = list(tasks or (*TABLETOP_TASKS, "Billiards"))
    rollouts = []
    for task in tasks:
        size = (tile * 4 // 3, tile) if check_task(task) == "Billiards" else (tile, tile)
        rollouts.append(rollout_frames(task, seed=seed, image_size=size))
    return contact_sheet(rollouts, out, n_frames=n_frames, tile=tile)
