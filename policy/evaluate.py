"""Closed-loop evaluation: run a checkpoint in the sim and report success with a 95% interval.

``embodied eval --checkpoint DIR --task PickUp,Reach --episodes 50`` runs episodes on fixed
held-out seeds (``seed_base + i``, 100000 and up by default, disjoint from the collector's seeds
0, 1, 2, ...), ``num_envs`` at a time with one batched model call per step, and writes a JSON with,
per task, ``success_rate``, ``ci95`` (Wilson), ``episodes``, ``mean_episode_length`` and videos.

Generalisation probes: ``--split heldout`` uses the env's paraphrase templates never seen in
training; ``--instructions FILE`` uses your own, one per line (``{obj}``, ``{side}``, ``{rec}``,
``{prep}``, ``{prep2}`` are filled from the episode, e.g. "grab the {obj}"); ``--colors`` restricts
the target object's colour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.stats import wilson_interval
from policy.errors import PolicyError
from policy.executor import ChunkExecutor


@dataclass
class EvalConfig:
    checkpoint: str = field(default="checkpoints/vla-default", metadata={"help": "policy checkpoint directory"})
    task: str = field(default="Reach,PickUp", metadata={"help": "comma-separated tabletop tasks"})
    episodes: int = field(default=50, metadata={"help": "episodes per task"})
    seed: int = field(default=100_000, metadata={"help": "first held-out seed (training data uses 0..)"})
    num_envs: int = field(default=8, metadata={"help": "envs stepped together (one batched model call)"})
    out: str = field(default="", metadata={"help": "write the JSON result here"})
    instructions: str = field(default="", metadata={"help": "file of instruction templates, one per line"})
    colors: str = field(default="", metadata={"help": "comma-separated target colours (e.g. red,blue)"})
    split: str = field(default="train", metadata={
        "help": "instruction wording: train (training phrasings) | heldout (paraphrases never trained on) | all",
        "choices": ("train", "heldout", "all", "extended")})
    objects: str = field(default="all", metadata={
        "help": "colour/shape combinations: all | train (the held-out combinations never appear) | "
                "heldout (the target is a combination held out of training)", "choices": ("all", "train", "heldout")})
    video_dir: str = field(default="", metadata={"help": "write rollout mp4s here"})
    videos: int = field(default=4, metadata={"help": "rollouts per task saved as video"})
    execution: str = field(default="open_loop", metadata={"help": "open_loop | ensemble (chunk execution)"})
    replan: int = field(default=-1, metadata={"help": "open_loop: actions played per chunk before predicting again (-1 = the checkpoint's setting, 0 = all K)"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda"})
    backend: str = field(default="torch", metadata={"help": "torch (eager) | onnx (ONNX Runtime on an export: --checkpoint may be an `embodied export` directory, or a checkpoint exported once into the cache)", "choices": ("torch", "onnx")})
    quantize: str = field(default="none", metadata={"help": "onnx backend: none (fp32 graph) | int8 (dynamically quantized graph)", "choices": ("none", "int8")})


def read_instruction_file(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise PolicyError(f"instructions file {path} does not exist")
    lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise PolicyError(f"instructions file {path} has no instructions")
    return lines


def fill_template(template: str, episode: Any) -> str:
    """Fill an instruction template from the env's episode spec (target, side, receptacle)."""
    preps = {"bowl": ("in", "into"), "plate": ("on", "onto")}
    rec = getattr(episode, "receptacle", None) or ""
    prep, prep2 = preps.get(rec, ("", ""))
    try:
        return template.format(obj=episode.target.description, side=getattr(episode, "side", "") or "",
                               rec=rec, prep=prep, prep2=prep2)
    except (KeyError, IndexError) as exc:
        raise PolicyError(f"instruction template {template!r} has an unknown field {exc}") from exc


def _frame(obs: dict, cameras: list[str]) -> np.ndarray:
    return np.concatenate([obs[c] for c in cameras], axis=1)


def evaluate_task(executor: ChunkExecutor, task: str, cfg: EvalConfig, templates: list[str] | None,
                  colors: tuple[str, ...] | None) -> dict[str, Any]:
    import sim

    spec = executor.policy.describe()
    size, cams = spec["image_size"], list(spec["cameras"])
    n_envs = max(1, min(cfg.num_envs, cfg.episodes))
    envs = [sim.make(task, cameras=tuple(dict.fromkeys(cams + ["agentview"])), image_size=(size, size),
                     colors=colors, instruction_split=cfg.split, object_split=cfg.objects)
            for _ in range(n_envs)]
    from policy.failures import EpisodeWatcher, tally

    successes, lengths, videos, instructions, verdicts = [], [], [], [], []
    try:
        for wave in range(0, cfg.episodes, n_envs):
            ids = list(range(wave, min(wave + n_envs, cfg.episodes)))
            obs, instr, done, frames, watchers = {}, {}, {}, {}, {}
            for k, i in enumerate(ids):
                o, info = envs[k].reset(seed=cfg.seed + i)
                obs[k] = o
                text = info["instruction"]
                if templates:
                    text = fill_template(templates[i % len(templates)], envs[k].unwrapped.episode)
                instr[k] = text
                instructions.append(text)
                executor.reset(k)
                watchers[k] = EpisodeWatcher(envs[k])
                if cfg.video_dir and i < cfg.videos:
                    frames[k] = [_frame(o, cams)]
            steps = {k: 0 for k in obs}
            success = {k: False for k in obs}
            while len(done) < len(obs):
                live = [k for k in obs if k not in done]
                actions = executor.act([obs[k] for k in live], [instr[k] for k in live], indices=live)
                for k, a in zip(live, actions):
                    o, _, terminated, truncated, info = envs[k].step(a)
                    obs[k] = o
                    watchers[k].step()
                    steps[k] += 1
                    if k in frames:
                        frames[k].append(_frame(o, cams))
                    if terminated or truncated:
                        done[k] = True
                        success[k] = bool(info.get("success", False))
            for k, i in enumerate(ids):
                successes.append(success[k])
                verdicts.append(watchers[k].verdict(success[k]))
                lengths.append(steps[k])
                if k in frames:
                    from sim.video import write_mp4

                    tag = "success" if success[k] else "failure"
                    path = Path(cfg.video_dir) / f"{task}_seed{cfg.seed + i}_{tag}.mp4"
                    write_mp4(path, frames[k], fps=10)
                    videos.append(str(path))
    finally:
        for env in envs:
            env.close()
    n, s = len(successes), int(sum(successes))
    lo, hi = wilson_interval(s, n)
    return {"success_rate": s / n, "ci95": [lo, hi], "episodes": n, "successes": s,
            "mean_episode_length": float(np.mean(lengths)), "failures": tally(verdicts),
            "seeds": [cfg.seed, cfg.seed + n - 1], "videos": videos,
            "example_instructions": sorted(set(instructions))[:5]}


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate every task in ``cfg.task``; returns (and optionally writes) the result dict."""
    import torch

    from policy.backends import load_policy

    if cfg.episodes < 1:
        raise PolicyError("--episodes must be at least 1")
    policy = load_policy(cfg.checkpoint, backend=cfg.backend, quantize=cfg.quantize,
                         device=cfg.device, replan=None if cfg.replan < 0 else cfg.replan)
    executor = ChunkExecutor(policy, execution=cfg.execution)
    templates = read_instruction_file(cfg.instructions) if cfg.instructions else None
    colors = tuple(c.strip() for c in cfg.colors.split(",") if c.strip()) or None
    t0 = time.perf_counter()
    tasks = [t.strip() for t in cfg.task.split(",") if t.strip()]
    result: dict[str, Any] = {"checkpoint": cfg.checkpoint, "config": cfg, "tasks": {}}
    for task in tasks:
        with torch.no_grad():
            result["tasks"][task] = evaluate_task(executor, task, cfg, templates, colors)
        r = result["tasks"][task]
        print(f"{task:8s} success {r['success_rate']:.0%} "
              f"(95% CI {r['ci95'][0]:.0%}-{r['ci95'][1]:.0%}, n={r['episodes']}), "
              f"mean length {r['mean_episode_length']:.1f}", flush=True)
        misses = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["failures"].items() if v)
        if misses:
            print(f"{'':8s} failures: {misses}", flush=True)
    total = sum(r["successes"] for r in result["tasks"].values())
    n = sum(r["episodes"] for r in result["tasks"].values())
    result["success_rate"] = total / n
    result["ci95"] = list(wilson_interval(total, n))
    result["episodes"] = n
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if cfg.out:
        from common.atomic import write_json

        write_json(cfg.out, result)
    return result
