"""`embodied bench sampling`: do keyframe samplers catch the moments that matter, and how fast?

Data: billiards shots (overhead camera) and tabletop pick-up episodes rendered by the simulator,
with ground-truth events (billiards: strike, ball-ball, cushion, pot; tabletop: the expert's phase
changes such as grasp and lift). An event counts as caught when a selected frame lies within
+-delta seconds of it. For budgets 8/16/32 every sampler is scored against uniform, measured in
this run. The query-adaptive sampler is asked one question per event kind ("when does the cue
strike the ball?") and scored on the events of that kind; its frame-text encoder is trained
here on frames of other shots (seed + 1000) paired with captions generated from their ground
truth, in several wordings, none of them the questions asked.

The encoder as the bench trains it (``train_encoder``): the text side is the pretrained MiniLM
(``perception.text_encoder``) with a learned projection, so a question worded unlike any
caption lands near the caption it means; the image side sees each frame with its differences
to the frames 1 and 3 before and after (``ClipConfig(input="motion")``), because a collision, a
bounce or a pot is a change between frames that a single frame can hardly show. The sampler
spends the budget share that relevance does not steer where things move (``prior="motion"``).
These choices were made on validation videos (``--seed 100``, training seed 1100); the reported
numbers use the default test seed 0 (training seed 1000), which was not used to choose them.

Throughput: frames/s of each sampler's ``select`` on 640x480 frames on one core (decoding
excluded), and ``decode_frames_per_s`` of the same frames from an mp4, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DESCRIPTION = "keyframe samplers: event recall at budgets 8/16/32 vs uniform, frames/s at 640x480"
BUDGETS = (8, 16, 32)
QUESTIONS = {  # event kind -> the question the query sampler is asked
    "strike": "when does the cue strike the cue ball",
    "ball_ball": "when do two balls collide",
    "cushion": "when does a ball hit a cushion",
    "pot": "when does a ball drop into a pocket",
    "off_table": "when does a ball leave the table",
    "close": "when does the gripper close on the object",
    "lift": "when is the object lifted",
    "descend": "when does the arm move down to the object",
    "hold": "when is the object held up",
}
CAPTIONS = {  # event kind -> caption of frames near such an event
    "strike": "the cue strikes the cue ball",
    "ball_ball": "two balls collide",
    "cushion": "a ball hits a cushion",
    "pot": "a ball drops into a pocket",
    "off_table": "a ball leaves the table",
}
# The query sampler as the bench runs it, chosen on the validation videos (--seed 100, budget
# 16): relevance reweights the motion prior (prior="motion"); a softer softmax than the default
# (temperature 0.2 vs 0.05) spreads the picks over every event of the asked kind instead of
# piling them onto the one best-scoring frame. Validation recall at 8/16/32: 0.19/0.47/0.58
# (uniform 0.13/0.19/0.33, motion 0.21/0.44/0.71; the uniform prior with this encoder 0.11/0.21/
# 0.28): most of the gain is the motion prior, relevance adds a few points at 16 and costs at 32.
QUERY_SAMPLER = {"prior": "motion", "temperature": 0.2, "uniform_mix": 0.15}
LINE_UP, ROLL = "the player lines up the shot", "the balls roll on the table"
PARAPHRASES = {  # caption -> other wordings seen in training (never the questions above)
    CAPTIONS["strike"]: ["the player hits the white ball with the cue", "the cue ball is struck",
                         "the stick pushes the cue ball forward"],
    CAPTIONS["ball_ball"]: ["one ball knocks into another", "a ball hits another ball",
                            "the balls bump into each other"],
    CAPTIONS["cushion"]: ["a ball bounces off the rail", "a ball rebounds from the side of the table",
                          "a ball touches the cushion and comes back"],
    CAPTIONS["pot"]: ["a ball is potted", "a ball falls into the hole", "a ball goes down a pocket"],
    CAPTIONS["off_table"]: ["a ball jumps off the table", "a ball flies over the rail",
                            "a ball falls to the floor"],
    LINE_UP: ["the table is still before the shot", "nothing moves yet", "the player aims"],
    ROLL: ["the balls are moving", "balls travel across the cloth", "the balls slow down"],
}


@dataclass
class Clip:
    frames: np.ndarray  # [T, H, W, 3]
    times: np.ndarray  # [T]
    events: list[tuple[float, str]]  # (t, kind)
    source: str  # "billiards" | "tabletop"
    shots: list[float] | None = None  # billiards: start time of each shot (its idle stretch first)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shots", type=int, default=None,
                   help="billiards test videos of two shots each (quick: 2, else 6)")
    p.add_argument("--delta", type=float, default=0.1, help="seconds: a pick this close catches an event")
    p.add_argument("--seed", type=int, default=0, help="seed of the test videos (default: 0)")


def billiards_clips(n: int, size: tuple[int, int], seed: int, max_time: float, fps: float,
                    shots_per_clip: int = 2, noise: float = 2.0) -> list[Clip]:
    """Videos of a few consecutive shots, each preceded by an idle stretch (the player walks
    round the table: nothing moves), with sensor noise, as a fixed camera would film a game."""
    from sim.billiards import BilliardsWorld, simulate_shot

    world = BilliardsWorld(cameras=("overhead",), width=size[0], height=size[1])
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        world.reset(rng, layout="scatter")
        frames, events, t_end, shots = [], [], 0.0, []
        for _ in range(shots_per_clip):
            shots.append(t_end)  # a shot starts with the idle stretch before it
            idle = int(rng.uniform(1.0, 2.5) * fps)
            if frames:
                frames.append(np.repeat(frames[-1][-1:], idle, axis=0))
                t_end += idle / fps
            cue = world.state().position("cue")
            aim = float(np.arctan2(-cue[1], -cue[0]) + rng.uniform(-0.6, 0.6))  # roughly inwards
            rec = simulate_shot(world, aim, float(rng.uniform(0.35, 0.8)), max_time=max_time,
                                fps=fps)
            frames.append(rec.frames["overhead"])
            events += [(t_end + e.t, e.kind) for e in rec.events]
            t_end += len(rec.times) / fps
            if world.potted[world.ball_names.index("cue")]:
                break
        video = np.concatenate(frames)
        noisy = np.clip(video + rng.normal(0, noise, video.shape), 0, 255).astype(np.uint8)
        clips.append(Clip(noisy, np.arange(len(video)) / fps, events, "billiards", shots))
    return clips


def tabletop_clips(n: int, seed: int) -> list[Clip]:
    from sim.registry import make
    from sim.tabletop.experts import Expert
    from sim.tabletop.env import CONTROL_HZ

    env = make("PickUp", render_mode="rgb_array", cameras=("agentview",), image_size=(160, 120))
    rng = np.random.default_rng(seed)
    clips = []
    for k in range(n):
        frames, events = [], []
        for e in range(2):  # two episodes with an idle stretch between them
            if frames:
                frames += [frames[-1]] * int(rng.integers(10, 25))
            obs, _ = env.reset(seed=seed + 10 * k + e)
            expert = Expert(env, seed=seed + 10 * k + e)
            expert.reset()
            start, phase = len(frames), expert.index
            frames.append(env.render())
            for step in range(1, env.unwrapped.max_steps + 1):
                obs, _, term, trunc, _ = env.step(expert.act(obs))
                frames.append(env.render())
                if expert.index != phase:
                    phase = expert.index
                    events.append(((start + step) / CONTROL_HZ, expert.phases[phase].name))
                if term or trunc:
                    break
        video = np.stack(frames)
        clips.append(Clip(video, np.arange(len(video)) / CONTROL_HZ, events, "tabletop"))
    env.close()
    return clips


def recall(picks_t: np.ndarray, events: list[tuple[float, str]], delta: float) -> list[bool]:
    return [bool(np.any(np.abs(picks_t - t) <= delta + 1e-9)) for t, _ in events]


def frame_captions(clip: Clip, delta: float) -> list[str]:
    """Ground truth -> one caption per frame: the nearest event's, else the table's state (still
    before its shot's strike, the idle stretch before a shot included; rolling after it)."""
    strikes = sorted(t for t, k in clip.events if k == "strike")
    starts = clip.shots or [0.0]
    caps = []
    for t in clip.times:
        near = [(abs(t - te), k) for te, k in clip.events if abs(t - te) <= delta and k in CAPTIONS]
        if near:
            caps.append(CAPTIONS[min(near)[1]])
            continue
        shot = int(np.searchsorted(starts, t, side="right")) - 1
        end = starts[shot + 1] if shot + 1 < len(starts) else np.inf
        struck = any(starts[max(shot, 0)] <= s < end and s <= t for s in strikes)
        caps.append(ROLL if struck else LINE_UP)
    return caps


def train_encoder(clips: list[Clip], delta: float, steps: int):
    """The frame-text encoder the query sampler uses: MiniLM text side, motion image side."""
    from perception.clip import ClipConfig, ClipTrainConfig, train_clip

    images = np.concatenate([c.frames for c in clips])
    caps = sum((frame_captions(c, delta) for c in clips), [])
    return train_clip(images, caps, ClipConfig(image_size=64, input="motion", lags=(1, 3),
                                               text="minilm"),
                      ClipTrainConfig(steps=steps, batch=48), paraphrases=PARAPHRASES,
                      lengths=[len(c.frames) for c in clips])


def score(clips: list[Clip], samplers: dict, delta: float, budgets=BUDGETS) -> dict:
    """sampler -> budget -> recall over all events of all clips (query: per-kind questions)."""
    out: dict[str, dict[str, float]] = {}
    for name, sampler in samplers.items():
        out[name] = {}
        for b in budgets:
            hits = []
            for c in clips:
                bb = min(b, len(c.frames))
                if name == "query":
                    for kind in sorted({k for _, k in c.events}):
                        idx = sampler.select(c.frames, bb, query=QUESTIONS.get(kind, kind))
                        hits += recall(c.times[idx], [e for e in c.events if e[1] == kind], delta)
                else:
                    idx = sampler.select(c.frames, bb)
                    hits += recall(c.times[idx], c.events, delta)
            out[name][str(b)] = float(np.mean(hits)) if hits else float("nan")
    return out


def throughput(frames: np.ndarray, samplers: dict) -> tuple[dict, float]:
    """Frames/s of each sampler at 640x480 on one core, and decode frames/s of the same video."""
    import cv2
    import torch

    from perception.sources import VideoFileSource
    from perception.videoio import write_video

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    big = np.stack([cv2.resize(f, (640, 480), interpolation=cv2.INTER_LINEAR) for f in frames])
    fps = {}
    for name, sampler in samplers.items():
        if hasattr(sampler, "_cache"):
            sampler._cache.clear()  # time the encoding too: the first question on a stream
        t0 = time.perf_counter()
        sampler.select(big, 16, query=QUESTIONS["strike"] if name == "query" else None)
        fps[name] = len(big) / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        write_video(path, big, fps=30)
        t0 = time.perf_counter()
        n = sum(1 for _ in VideoFileSource(path, threads=1))
        decode = n / (time.perf_counter() - t0)
    return fps, decode


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in ((axes[0], "event_recall", "billiards"),
                           (axes[1], "tabletop_event_recall", "tabletop")):
        data = result[key]
        names = list(data)
        w = 0.8 / len(names)
        for i, name in enumerate(names):
            ax.bar(np.arange(len(BUDGETS)) + i * w, [data[name][str(b)] for b in BUDGETS], w,
                   label=name)
        ax.set_xticks(np.arange(len(BUDGETS)) + 0.4 - w / 2, [str(b) for b in BUDGETS])
        ax.set_xlabel("budget (frames)")
        ax.set_ylabel("event recall")
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    from perception.sampling import get_sampler

    quick = bool(args.quick)
    n_test = args.shots or (2 if quick else 6)
    size = (320, 240) if quick else (640, 480)
    fps = 15.0 if quick else 30.0
    max_time = 5.0 if quick else 8.0
    t_start = time.perf_counter()
    train = billiards_clips(1 if quick else 4, size, args.seed + 1000, max_time, fps)
    test = billiards_clips(n_test, size, args.seed, max_time, fps)
    table = tabletop_clips(1 if quick else 4, args.seed)
    t_data = time.perf_counter() - t_start
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(1)  # one core, as the throughput numbers assume
    encoder = train_encoder(train, args.delta, 200 if quick else 400)
    t_train = time.perf_counter() - t0
    samplers = {"uniform": get_sampler("uniform"), "motion": get_sampler("motion"),
                "streaming": get_sampler("streaming"),
                "query": get_sampler("query", encoder=encoder, **QUERY_SAMPLER)}
    recall_b = score(test, samplers, args.delta)
    recall_t = score(table, {k: v for k, v in samplers.items() if k != "query"}, args.delta)
    speed, decode = throughput(test[0].frames[:150], samplers)
    result = {
        "event_recall": recall_b,
        "tabletop_event_recall": recall_t,
        "frames_per_s": speed,
        "decode_frames_per_s": decode,
        "motion_minus_uniform_at_16": recall_b["motion"]["16"] - recall_b["uniform"]["16"],
        "query_minus_uniform_at_16": recall_b["query"]["16"] - recall_b["uniform"]["16"],
        "sampling_vs_decode_speed": {k: v / decode for k, v in speed.items()},
        "data": {"billiards_test_videos": len(test), "fps": fps, "billiards_events": sum(len(c.events) for c in test),
                 "billiards_frames": int(sum(len(c.frames) for c in test)),
                 "tabletop_episodes": len(table), "tabletop_events": sum(len(c.events) for c in table),
                 "render_size": list(size), "delta_s": args.delta,
                 "event_kinds": sorted({k for c in test for _, k in c.events})},
        "seconds": {"generate": t_data, "train_encoder": t_train,
                    "total": time.perf_counter() - t_start},
    }
    out = Path(args.out).with_suffix(".png") if args.out else Path("runs/bench/sampling.png")
    plot(result, out)
    result["plot"] = str(out)
    return result
