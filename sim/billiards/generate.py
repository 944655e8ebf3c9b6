"""Generate a folder of recorded billiards shots for perception and video QA.

Each episode racks or scatters the balls (seeded) and lets the scripted player shoot until the
table is cleared, the cue ball is potted, or ``shots_per_episode`` is reached. Every shot is
streamed to ``<out>/episode_<e>/shot_<s>/`` by ``record_shot`` (one mp4 per camera plus
``ground_truth.json``/``.npz``); ``shots.jsonl`` gets one line per finished shot, written after
the shot's files are complete, so a crash never leaves a listed shot half-written.

Wiring for the CLI (``sim/cli.py``): ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.billiards.player import ScriptedPlayer
from sim.billiards.shot import record_shot
from sim.billiards.world import BilliardsWorld
from common.atomic import write_json
from common.config import add_dataclass_args, from_args
from sim.errors import SimError


@dataclass
class GenerateConfig:
    episodes: int = field(default=2, metadata={"help": "tables to play"})
    shots_per_episode: int = field(default=3, metadata={"help": "shots at most per table"})
    seed: int = field(default=0, metadata={"help": "episode e uses seed + e: reproducible"})
    layout: str = field(default="scatter", metadata={"help": "'scatter' (pots likely) or 'rack'"})
    width: int = field(default=640, metadata={"help": "perception works at 640x480"})
    height: int = field(default=480, metadata={"help": "image height"})
    depth: bool = field(default=False, metadata={"help": "also save depth (in the npz)"})
    shadows: bool = field(default=True, metadata={"help": "ball shadows; off renders ~2.5x faster"})
    fps: float = field(default=30.0, metadata={"help": "video and ground-truth rate"})
    aim_noise_deg: float = field(default=0.15, metadata={"help": "player's aim error (49/50 pots at 0.15)"})
    explore: float = field(default=0.2, metadata={"help": "chance of a random shot, for variety"})
    max_time: float = field(default=8.0, metadata={"help": "seconds cap per shot"})


def generate_shots(config: GenerateConfig, out: str | Path) -> list[dict]:
    """Play and record ``config.episodes`` tables into ``out``; returns the shot summaries."""
    if config.episodes < 1 or config.shots_per_episode < 1:
        raise SimError("episodes and shots_per_episode must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config)
    world = BilliardsWorld(width=config.width, height=config.height, depth=config.depth,
                           shadows=config.shadows)
    summaries = []
    try:
        with open(out / "shots.jsonl", "a", encoding="utf-8") as index:
            for e in range(config.episodes):
                rng = np.random.default_rng(config.seed + e)
                world.reset(rng, config.layout)
                player = ScriptedPlayer(rng, aim_noise_deg=config.aim_noise_deg, explore=config.explore)
                for s in range(config.shots_per_episode):
                    aim, power, target = player.plan(world.state())
                    directory = out / f"episode_{e:04d}" / f"shot_{s:02d}"
                    rec = record_shot(world, aim, power, directory, fps=config.fps,
                                      max_time=config.max_time, target=target)
                    summary = {"episode": e, "shot": s, "path": str(directory.relative_to(out)),
                               "aim": aim, "power": power, "target": target, "pots": rec.pots(),
                               "events": len(rec.events), "duration": rec.duration}
                    index.write(json.dumps(summary) + "\n")
                    index.flush()
                    summaries.append(summary)
                    objects_left = [n for n in world.state().in_play() if n != "cue"]
                    if "cue" in rec.pots() or not objects_left:
                        break
    finally:
        world.close()
    return summaries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder for the shots")
    add_dataclass_args(parser, GenerateConfig)


def run(args: argparse.Namespace) -> list[dict]:
    summaries = generate_shots(from_args(GenerateConfig, args), args.out)
    pots = sum(len([p for p in s["pots"] if p != "cue"]) for s in summaries)
    print(f"wrote {len(summaries)} shots ({pots} balls potted) to {args.out}")
    return summaries


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    run(p.parse_args())
