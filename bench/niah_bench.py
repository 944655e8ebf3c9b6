"""Needle in a haystack for the long-stream video memory (video_qa.memory.StreamMemory).

A stream of N frames (256, 1,024, 4,096 at 10 fps) of tabletop robot episodes, looped with sensor
noise, hides one distinctive event: a few frames of a billiards table. Frames are generated lazily
and pushed one by one, so the only thing that could grow with N is the memory itself. The question
"When did the billiards table appear?" is answered from the memory: the query-adaptive retrieval's
most relevant segment gives the time; it is correct when it falls within 0.5 s of the event.

Per length: accuracy, the context's visual tokens (retrieved segments x tokens per frame: fixed),
whether the needle made it into the context, peak RSS (MB) and the answer latency. A frame-text
encoder (perception.clip) is trained first on a few hundred captioned sim frames.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any, Iterator

import numpy as np

from video_qa.configuration_videolm import VideoLMConfig

DESCRIPTION = "video memory needle-in-a-haystack: accuracy, context tokens, RSS per stream length"
QUESTION = "When did the billiards table appear?"
FPS = 10.0
TOLERANCE_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lengths", default="256,1024,4096", help="stream lengths in frames")
    parser.add_argument("--trials", type=int, default=None, help="streams per length (quick: 2, else 6)")
    parser.add_argument("--slots", type=int, default=64, help="memory segments kept")
    parser.add_argument("--budget", type=int, default=8, help="segments retrieved into the context")
    parser.add_argument("--tokens-per-frame", type=int, default=VideoLMConfig.tokens_per_frame,
                        help="VideoLM tokens per segment (default: the VideoLM default)")
    parser.add_argument("--needle-frames", type=int, default=4, help="frames the event lasts")


def _scenes(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Haystack frames (tabletop episodes) and needle frames (a billiards shot), 64 px."""
    import cv2

    from video_qa.simulate import simulate_billiards, simulate_tabletop

    hay = []
    for i, task in enumerate(("PickUp", "PutIn")):
        frames, _, _ = simulate_tabletop(seed + i, task, size=64)
        hay += list(frames)
    shot, _, _ = simulate_billiards(seed, width=64, height=40)
    needle = [cv2.resize(f, (64, 64), interpolation=cv2.INTER_NEAREST) for f in shot[::3]]
    return hay, needle


def _encoder(hay: list[np.ndarray], needle: list[np.ndarray]) -> Any:
    from perception.clip import ClipTrainConfig, train_clip

    images = hay + needle * max(1, len(hay) // len(needle))
    captions = ["a robot arm at a table"] * len(hay) + \
        ["a billiards table"] * (len(images) - len(hay))
    return train_clip(images, captions, train=ClipTrainConfig(steps=150))


def _stream(hay: list[np.ndarray], needle: list[np.ndarray], n: int, at: int, length: int,
            rng: np.random.Generator) -> Iterator[tuple[np.ndarray, float]]:
    start = int(rng.integers(len(hay)))
    k = int(rng.integers(len(needle)))
    for i in range(n):
        base = needle[(k + i - at) % len(needle)] if at <= i < at + length else \
            hay[(start + i) % len(hay)]
        noise = rng.integers(-3, 4, base.shape, dtype=np.int16)
        yield np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8), i / FPS


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from video_qa.memory import StreamMemory

    torch.set_num_threads(1)
    lengths = [int(x) for x in str(args.lengths).split(",")]
    trials = args.trials or (2 if args.quick else 6)
    t0 = time.perf_counter()
    hay, needle = _scenes()
    encoder = _encoder(hay, needle)
    setup_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    acc, tokens, rss, latency, in_ctx, mem_kb, segs = {}, {}, {}, {}, {}, {}, {}
    for n in lengths:
        hits, found, lat = [], [], []
        for _ in range(trials):
            at = int(rng.integers(n // 10, n - n // 10 - args.needle_frames))
            memory = StreamMemory(encoder, slots=args.slots)
            memory.extend(_stream(hay, needle, n, at, args.needle_frames, rng))
            t = time.perf_counter()
            context = memory.context(QUESTION, args.budget)
            best = memory.locate(QUESTION)
            lat.append(time.perf_counter() - t)
            lo, hi = at / FPS - TOLERANCE_S, (at + args.needle_frames - 1) / FPS + TOLERANCE_S
            hits.append(lo <= best.t0 <= hi)
            found.append(any(s.t0 <= hi and s.t1 >= lo for s in context))
        key = str(n)
        acc[key] = float(np.mean(hits))
        in_ctx[key] = float(np.mean(found))
        tokens[key] = len(context) * args.tokens_per_frame
        segs[key] = len(memory.segments)
        mem_kb[key] = round(memory.nbytes() / 1024, 1)
        rss[key] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        latency[key] = round(float(np.median(lat)) * 1000, 2)
    return {
        "question": QUESTION, "trials_per_length": trials, "slots": args.slots,
        "retrieved_segments": args.budget, "tolerance_s": TOLERANCE_S,
        "accuracy": acc, "needle_in_context": in_ctx, "context_tokens": tokens,
        "memory_segments": segs, "memory_kb": mem_kb, "peak_rss_mb": rss,
        "answer_latency_ms": latency, "setup_s": round(setup_s, 1),
        "total_s": round(time.perf_counter() - t0, 1),
        "note": "answer = start time of the most relevant memory segment (retrieval), not LM decoding",
    }
