"""Question–answer pairs generated from the simulator's ground truth, cached on disk.

Two sources: billiards shots (``sim.billiards``: events with times, pots, first contact) and
tabletop episodes (``sim.tabletop``: the scripted expert picks an object up, optionally puts it in
a receptacle). Each clip is rendered small (QA needs colours and motion, not detail) and summarised
into a JSON-able ``summary`` dict; questions are pure functions of that summary, so tests can check
them against hand-made ground truth.

Question types (:data:`TYPES`): counting, ordering, attribute, timestamp, spatial, yesno, state,
description. Every type has several paraphrased templates; the LAST template of each type is held
out of training and reported separately. Splits are by clip (episode), never by question.

Cache layout::

    root/clips/<clip_id>.npz   frames uint8 [T, H, W, 3], times float [T]
    root/clips/<clip_id>.json  the summary (ground truth)
    root/qa.jsonl              one question per line: clip, type, template, heldout, split, q, a
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from video_qa.errors import VideoQAError

TYPES: tuple[str, ...] = ("counting", "ordering", "attribute", "timestamp", "spatial", "yesno",
                          "state", "description")
NOT_SEEN = "not seen"  # the honest answer when the asked-about event never happened
TEST_EVERY = 5  # clip k is a test clip when k % TEST_EVERY == 0: 20 % of episodes held out
# Version 2: frames at 128 px wide (at 64 px a billiards ball was one pixel and several colours
# vanished into the felt) and per-frame image positions of every object and ball (dense labels
# for the frame encoder). A cached clip of an older version is simulated again, never mixed in.
DATA_VERSION = 2
BALL_COLOUR = {"cue": "white"}  # ball names are colours except the cue ball

# type -> templates; the last one is held out of training (generalisation to new phrasings).
BILLIARDS_TEMPLATES: dict[str, tuple[str, ...]] = {
    "counting": ("How many balls were potted?", "How many balls went into pockets?",
                 "Count the balls that were potted.", "What number of balls ended up in a pocket?"),
    "ordering": ("Which ball did the cue ball hit first?", "What was the first ball the cue ball touched?",
                 "Name the first ball struck by the cue ball.", "The cue ball hit which ball first?"),
    "attribute": ("What colour was the first ball potted?", "Which colour was the first ball to be potted?",
                  "Give the colour of the first potted ball.", "The first ball potted was what colour?"),
    "timestamp": ("When was the {ball} ball potted?", "At what time was the {ball} ball potted?",
                  "When did the {ball} ball go into a pocket?", "What time did the {ball} ball drop into a pocket?"),
    "spatial": ("At the start, was the {a} ball left of the {b} ball?",
                "Was the {a} ball to the left of the {b} ball at the beginning?",
                "In the first frame, is the {a} ball left of the {b} ball?",
                "Initially, did the {a} ball lie left of the {b} ball?"),
    "yesno": ("Was the {ball} ball potted?", "Did the {ball} ball go into a pocket?",
              "Did the {ball} ball get potted?", "Is it true that the {ball} ball was potted?"),
    "state": ("How many balls were on the table at {t}s?", "At {t}s, how many balls were on the table?",
              "How many balls remained on the table at {t}s?", "Count the balls on the table at time {t}s."),
    "description": ("Describe the shot.", "What happened in this shot?", "Summarise the shot.",
                    "Give a short description of the shot."),
}
TABLETOP_TEMPLATES: dict[str, tuple[str, ...]] = {
    "counting": ("How many objects were on the table?", "How many objects are there?",
                 "Count the objects on the table.", "What number of objects did the scene contain?"),
    "ordering": ("Was the object lifted before the episode ended?", "Did the robot lift the object before the end?",
                 "Was the object raised before the last frame?", "Before the end, had the object been lifted?"),
    "attribute": ("What colour was the object the robot picked up?", "Which colour was the picked-up object?",
                  "What was the colour of the object the robot grasped?", "The robot lifted an object of what colour?"),
    "timestamp": ("When did the robot lift the object?", "At what time was the object lifted?",
                  "When was the object picked up?", "What time did the object leave the table?"),
    "spatial": ("Was the {a} left of the {b}?", "Is the {a} to the left of the {b}?",
                "Was the {a} on the left of the {b}?", "Did the {a} lie left of the {b}?"),
    "yesno": ("Was there a {name}?", "Did the scene contain a {name}?", "Was a {name} on the table?",
              "Could you see a {name}?"),
    "state": ("Was the object lifted at {t}s?", "At {t}s, was the object in the air?",
              "Was the object off the table at {t}s?", "At time {t}s, had the object been lifted?"),
    "description": ("Describe the episode.", "What did the robot do?", "Summarise the episode.",
                    "Give a short description of what the robot did."),
}


@dataclass(frozen=True)
class QA:
    clip: str
    type: str
    template: int
    heldout: bool
    split: str
    question: str
    answer: str
    # What the question names, as (thing, end): a CELL_CLASSES name ("green cylinder",
    # "ball:red", "lifted" for "the object") and the character offset where its name ends in
    # ``question``. Training teaches the grounding to find that thing in the frames.
    refs: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "refs": [list(r) for r in self.refs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QA":
        return cls(**{**d, "refs": tuple(tuple(r) for r in d.get("refs", ()))})


def fmt_time(t: float) -> str:
    return f"{t:.1f}s"


def parse_time(text: str) -> float | None:
    """"2.3s" -> 2.3; anything else (e.g. "not seen") -> None."""
    try:
        return float(text.strip().removesuffix("s"))
    except ValueError:
        return None


def split_of(index: int) -> str:
    return "test" if index % TEST_EVERY == 0 else "train"


# ---------------------------------------------------------------------------- question makers
def _refs(question: str, names: Sequence[tuple[str, str]]) -> tuple[tuple[str, int], ...]:
    """``(thing, end)`` for each ``(thing, text)`` found in order: where each name ends."""
    out, start = [], 0
    for thing, text in names:
        i = question.find(text, start)
        if i >= 0:
            out.append((thing, i + len(text)))
            start = i + len(text)
    return tuple(out)


def _ball(name: str) -> tuple[str, str]:
    """(cell class, how questions say it) of a billiards ball."""
    return f"ball:{name}", f"{BALL_COLOUR.get(name, name)} ball"


THE_OBJECT = (("lifted", "object"),)  # tabletop questions about "the object" mean the lifted one


def _emit(out: list[QA], clip: str, split: str, templates: dict[str, tuple[str, ...]], kind: str,
          answer: str, rng: np.random.Generator, refs: Sequence[tuple[str, str]] = (),
          **fill: Any) -> None:
    """One question of ``kind`` from a random training template, plus one from the held-out one;
    ``refs`` are the (thing, name text) pairs the question mentions."""
    tpl = templates[kind]
    k = int(rng.integers(len(tpl) - 1))
    for j in (k, len(tpl) - 1):
        q = tpl[j].format(**fill)
        out.append(QA(clip, kind, j, j == len(tpl) - 1, split, q, answer, _refs(q, refs)))


def billiards_questions(summary: dict[str, Any], clip: str, split: str,
                        rng: np.random.Generator) -> list[QA]:
    names = summary["ball_names"]
    pots = summary["pot_times"]  # ball -> time of its pot
    order = sorted(pots, key=pots.get)
    out: list[QA] = []
    T = _emit
    T(out, clip, split, BILLIARDS_TEMPLATES, "counting", str(len(pots)), rng)
    T(out, clip, split, BILLIARDS_TEMPLATES, "ordering", summary["first_hit"] or "none", rng)
    T(out, clip, split, BILLIARDS_TEMPLATES, "attribute",
      BALL_COLOUR.get(order[0], order[0]) if order else NOT_SEEN, rng)
    objects = [n for n in names if n != "cue"]
    ball = str(rng.choice(order)) if order and rng.random() < 0.75 else str(rng.choice(objects))
    T(out, clip, split, BILLIARDS_TEMPLATES, "timestamp",
      fmt_time(pots[ball]) if ball in pots else NOT_SEEN, rng, refs=[_ball(ball)], ball=ball)
    a, b = rng.choice(names, 2, replace=False)
    uv = summary["start_uv"]
    T(out, clip, split, BILLIARDS_TEMPLATES, "spatial", "yes" if uv[a][0] < uv[b][0] else "no", rng,
      refs=[_ball(str(a)), _ball(str(b))], a=BALL_COLOUR.get(str(a), str(a)),
      b=BALL_COLOUR.get(str(b), str(b)))
    yes_ball = str(rng.choice(order)) if order else None
    no_ball = str(rng.choice([n for n in objects if n not in pots]))
    for q in ([yes_ball] if yes_ball else []) + [no_ball]:
        T(out, clip, split, BILLIARDS_TEMPLATES, "yesno", "yes" if q in pots else "no", rng,
          refs=[_ball(q)], ball=q)
    times = summary["times"]
    ti = int(rng.integers(len(times)))
    t = round(float(times[ti]), 1)
    on_table = sum(1 for n in names if n not in pots or pots[n] > t)
    T(out, clip, split, BILLIARDS_TEMPLATES, "state", str(on_table), rng, t=f"{t:.1f}")
    T(out, clip, split, BILLIARDS_TEMPLATES, "description", describe_shot(summary), rng)
    return out


def describe_shot(summary: dict[str, Any]) -> str:
    pots = summary["pot_times"]
    hit = summary["first_hit"]
    first = f"cue hit {hit}" if hit else "cue hit nothing"
    potted = ", ".join(sorted(pots, key=pots.get)) if pots else "none"
    return f"{first}; potted {potted}"


def tabletop_questions(summary: dict[str, Any], clip: str, split: str,
                       rng: np.random.Generator) -> list[QA]:
    objs = summary["objects"]
    target = next(o for o in objs if o["is_target"])
    lift = summary["lift_time"]
    out: list[QA] = []
    T = _emit
    T(out, clip, split, TABLETOP_TEMPLATES, "counting", str(len(objs)), rng)
    T(out, clip, split, TABLETOP_TEMPLATES, "ordering", "yes" if lift is not None else "no", rng,
      refs=THE_OBJECT)
    T(out, clip, split, TABLETOP_TEMPLATES, "attribute", target["color"] if lift is not None else NOT_SEEN,
      rng, refs=THE_OBJECT)
    T(out, clip, split, TABLETOP_TEMPLATES, "timestamp", fmt_time(lift) if lift is not None else NOT_SEEN,
      rng, refs=THE_OBJECT)
    things = [(o["name"], o["u"]) for o in objs]
    if summary.get("receptacle"):
        things.append((summary["receptacle"]["kind"], summary["receptacle"]["u"]))
    if len(things) >= 2:
        i, j = rng.choice(len(things), 2, replace=False)
        T(out, clip, split, TABLETOP_TEMPLATES, "spatial", "yes" if things[i][1] < things[j][1] else "no",
          rng, refs=[(things[i][0], things[i][0]), (things[j][0], things[j][0])],
          a=things[i][0], b=things[j][0])
    present = {o["name"] for o in objs}
    absent = [f"{c} {s}" for c in summary["all_colors"] for s in summary["all_shapes"]
              if f"{c} {s}" not in present]
    name = str(rng.choice(sorted(present)))
    T(out, clip, split, TABLETOP_TEMPLATES, "yesno", "yes", rng, refs=[(name, name)], name=name)
    name = str(rng.choice(absent))
    T(out, clip, split, TABLETOP_TEMPLATES, "yesno", "no", rng, refs=[(name, name)], name=name)
    times = summary["times"]
    ti = int(rng.integers(len(times)))
    t = round(float(times[ti]), 1)
    T(out, clip, split, TABLETOP_TEMPLATES, "state", "yes" if lift is not None and t >= lift else "no",
      rng, refs=THE_OBJECT, t=f"{t:.1f}")
    T(out, clip, split, TABLETOP_TEMPLATES, "description", summary["instruction"], rng)
    return out


def questions_for(summary: dict[str, Any], clip: str, split: str,
                  rng: np.random.Generator) -> list[QA]:
    """One round of questions about a clip, whichever world it comes from; a new ``rng`` asks
    about other balls, objects, pairs and times of the same clip."""
    make = billiards_questions if summary["source"] == "billiards" else tabletop_questions
    return make(summary, clip, split, rng)


def template_corpus() -> list[str]:
    """Every training-template question with every filler, and every kind of answer: the text a
    BPE tokenizer learns its merges from. Held-out templates are left out, so their wording stays
    new to the model. Deterministic (same list, same order), so the tokenizer is too."""
    from sim.tabletop import scene, tasks

    balls = [BALL_COLOUR.get(b, b) for b in AUX_BALLS]
    things = [f"{c} {s}" for c in tasks.COLORS for s in scene.SHAPES]
    times = [f"{t / 10:.1f}" for t in range(100)]
    fill = {"ball": balls, "a": balls, "b": balls, "name": things, "t": times}
    out: list[str] = []
    for world, templates in (("billiards", BILLIARDS_TEMPLATES), ("tabletop", TABLETOP_TEMPLATES)):
        pair = things + list(scene.RECEPTACLES) if world == "tabletop" else balls
        for tpl in (t for ts in templates.values() for t in ts[:-1]):
            if "{a}" in tpl:
                out += [tpl.format(a=a, b=b) for a in pair for b in pair if a != b]
            else:
                key = next((k for k in fill if "{" + k + "}" in tpl), None)
                out += [tpl.format(**{key: v}) for v in fill[key]] if key else [tpl]
    out += [f"{t}s" for t in times] + [str(n) for n in range(10)] + ["yes", "no", NOT_SEEN, "none"]
    out += list(tasks.COLORS) + balls
    out += [f"cue hit {a}; potted {b}" for a in balls for b in balls + ["none"]]
    for family in ("pick_up", "put_in"):
        for tpl in tasks.TEMPLATES[family]["train"]:
            for obj in things:
                for rec, prep, prep2 in (("bowl", "in", "into"), ("plate", "on", "onto")):
                    out.append(tpl.format(obj=obj, rec=rec, prep=prep, prep2=prep2))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------- simulation
def _project_uv(K: np.ndarray, cam_to_world: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Pixel (column, row) of world point ``p`` (OpenCV camera: x right, y down, z forward)."""
    R, t = cam_to_world[:3, :3], cam_to_world[:3, 3]
    x = R.T @ (np.asarray(p, float) - t)
    return float(K[0, 0] * x[0] / x[2] + K[0, 2]), float(K[1, 1] * x[1] / x[2] + K[1, 2])


def _project_u(K: np.ndarray, cam_to_world: np.ndarray, p: np.ndarray) -> float:
    """Image column of world point ``p``: what "left of" means is what the camera shows."""
    return _project_uv(K, cam_to_world, p)[0]


def _px(uv: tuple[float, float]) -> list[float]:
    return [round(uv[0], 1), round(uv[1], 1)]


def simulate_billiards(seed: int, width: int = 128, height: int = 80, fps: float = 10.0
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One scripted shot from the overhead camera: (frames, times, summary)."""
    from sim.billiards.player import ScriptedPlayer
    from sim.billiards.shot import simulate_shot
    from sim.billiards.world import BilliardsWorld

    world = BilliardsWorld(cameras=("overhead",), width=width, height=height)
    try:
        rng = np.random.default_rng(seed)
        world.reset(rng)
        aim, power, target = ScriptedPlayer(rng).plan(world.state())
        rec = simulate_shot(world, aim, power, fps=fps, target=target)
    finally:
        world.close()
    summary = billiards_summary(rec)
    summary.update(width=width, height=height)
    return rec.frames["overhead"], np.asarray(rec.times), summary


def billiards_summary(rec: Any) -> dict[str, Any]:
    """Ground truth of a ``ShotRecord`` that the questions need (JSON-able)."""
    pots: dict[str, float] = {}
    first_hit = None
    for e in rec.events:
        if e.kind == "pot" and e.a not in pots:
            pots[e.a] = round(float(e.t), 2)
        if e.kind == "ball_ball" and first_hit is None and "cue" in (e.a, e.b):
            first_hit = e.b if e.a == "cue" else e.a
    K, pose = rec.K["overhead"], rec.camera_pose["overhead"]
    uv = {n: [_project_u(K, pose, rec.ball_pos[0, i])] for i, n in enumerate(rec.ball_names)}
    # Every ball's pixel in every frame (None once potted): where the dense frame labels put it.
    track = {n: [None if rec.potted[f, i] else _px(_project_uv(K, pose, rec.ball_pos[f, i]))
                 for f in range(len(rec.times))] for i, n in enumerate(rec.ball_names)}
    return {"source": "billiards", "version": DATA_VERSION,
            "times": [round(float(t), 3) for t in rec.times],
            "ball_names": list(rec.ball_names), "pot_times": pots, "first_hit": first_hit,
            "start_uv": uv, "track": track,
            "events": [{"t": round(float(e.t), 3), "kind": e.kind, "a": e.a, "b": e.b}
                       for e in rec.events]}


def simulate_tabletop(seed: int, task: str = "PickUp", size: int = 128, idle_steps: int = 3
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One expert episode from the agent-view camera: (frames, times, summary).

    ``idle_steps`` no-op steps at the start give the clip a still prefix, so "when" answers are not
    simply the clip length.
    """
    import sim
    from sim.tabletop import scene, tasks
    from sim.tabletop.experts import make_expert

    env = sim.make(task, render_mode="rgb_array", image_size=(size, size), cameras=("agentview",))
    try:
        obs, _ = env.reset(seed=seed)
        u = env.unwrapped
        gt0 = u.ground_truth()
        K, pose = u.camera_intrinsics("agentview"), u.camera_pose("agentview")
        expert = make_expert(u, seed=seed)
        expert.reset()
        target = gt0["target"]
        z0 = float(u.object_pos(target)[2])
        slots = [(o["name"], o["id"]) for o in gt0["objects"]]

        def where() -> dict[str, list[float]]:
            return {name: _px(_project_uv(K, pose, u.object_pos(slot))) for name, slot in slots}

        frames, times, lifted, track = [obs["agentview"]], [0.0], [False], [where()]
        t0 = float(u.data.time)
        rng = np.random.default_rng(seed)
        idle = int(rng.integers(0, idle_steps + 1)) * 3
        for step in range(200):
            action = np.array(expert.act(obs), np.float32)
            if step < idle:  # hold still: keep the expert's gripper command, no motion
                action[:6] = 0.0
            obs, _, term, trunc, _ = env.step(action)
            frames.append(obs["agentview"])
            times.append(float(u.data.time) - t0)
            lifted.append(bool(float(u.object_pos(target)[2]) > z0 + 0.02))
            track.append(where())
            if term or trunc:
                break
        gt1 = u.ground_truth()
    finally:
        env.close()
    lift_idx = next((i for i, v in enumerate(lifted) if v), None)
    objects = [{"name": o["name"], "color": o["color"], "shape": o["shape"],
                "is_target": o["is_target"], "u": _project_u(K, pose, o["position"])}
               for o in gt0["objects"]]
    rec = None
    if gt0["receptacle"]:
        ruv = _project_uv(K, pose, gt0["receptacle"]["position"])
        rec = {"kind": gt0["receptacle"]["kind"], "u": ruv[0], "uv": _px(ruv)}
    summary = {"source": "tabletop", "version": DATA_VERSION, "task": gt0["task"], "instruction": gt0["instruction"],
               "times": [round(t, 3) for t in times], "objects": objects, "receptacle": rec,
               "lift_time": round(times[lift_idx], 2) if lift_idx is not None else None,
               "lifted": lifted, "success": gt1["success"],
               # each object's pixel per frame (the receptacle does not move: "uv" above)
               "track": {name: [f[name] for f in track] for name, _ in slots},
               "all_colors": list(tasks.COLORS), "all_shapes": list(scene.SHAPES),
               "width": size, "height": size}  # the frame size the "u" columns are measured in
    return np.stack(frames), np.asarray(times), summary


# ---------------------------------------------------------------------------- frame labels
# Per-frame visual facts from the ground truth, for an auxiliary training loss on each frame's
# tokens: trained only on answers, the tiny model learns text priors and ignores what the frames
# show (attribute accuracy stays at chance); as the policy's grounding loss did, a per-frame target
# makes the frame tokens carry colours, presence and state. Fixed vocabulary, one bit each.
AUX_BALLS = ("cue", "yellow", "blue", "red", "purple", "orange", "green", "maroon", "black")
AUX_COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink")
AUX_SHAPES = ("cube", "cylinder")
AUX_LABELS: tuple[str, ...] = (
    tuple(f"on_table:{b}" for b in AUX_BALLS)
    + tuple(f"present:{c} {s}" for c in AUX_COLORS for s in AUX_SHAPES)
    + ("lifted",) + tuple(f"lifted:{c}" for c in AUX_COLORS))


# Where things are, for the spatial questions ("was the red cube left of the bowl?"): each object's
# image column at the start as a thermometer code over fixed fractions of the width, so one frame
# token can carry "left of a quarter / half / three quarters". A separate head (aux_spatial_weight)
# reads them: checkpoints trained before it existed keep loading.
SPATIAL_CUTS = (0.25, 0.5, 0.75)
SPATIAL_THINGS = tuple(f"{c} {s}" for c in AUX_COLORS for s in AUX_SHAPES) + ("bowl", "plate")
SPATIAL_LABELS: tuple[str, ...] = tuple(f"left_of:{name}@{cut}" for name in SPATIAL_THINGS
                                        for cut in SPATIAL_CUTS)
TABLETOP_WIDTH = 64  # px: simulate_tabletop's default size, for clips cached before "width"
_AUX_INDEX = {name: i for i, name in enumerate(AUX_LABELS)}
_SPATIAL_INDEX = {name: i for i, name in enumerate(SPATIAL_LABELS)}


def spatial_labels(summary: dict[str, Any], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, mask)`` float32 ``[T, len(SPATIAL_LABELS)]``: tabletop objects and receptacle
    (billiards balls move, and their spatial question is about the first frame only: masked)."""
    labels = np.zeros((n_frames, len(SPATIAL_LABELS)), np.float32)
    mask = np.zeros_like(labels)
    if summary["source"] != "tabletop":
        return labels, mask
    width = float(summary.get("width", TABLETOP_WIDTH))
    things = [(o["name"], o["u"]) for o in summary["objects"]]
    if summary.get("receptacle"):
        things.append((summary["receptacle"]["kind"], summary["receptacle"]["u"]))
    for name, u in things:
        for cut in SPATIAL_CUTS:
            j = _SPATIAL_INDEX.get(f"left_of:{name}@{cut}")
            if j is not None:
                mask[:, j] = 1.0
                labels[:, j] = float(u < cut * width)
    return labels, mask


def frame_labels(summary: dict[str, Any], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, mask)`` float32 ``[T, len(AUX_LABELS) + len(SPATIAL_LABELS)]`` for frames at
    ``times``; the mask is 0 where a label does not apply (billiards bits on tabletop frames and
    the reverse)."""
    labels, mask = _fact_labels(summary, times)
    spatial, spatial_mask = spatial_labels(summary, len(labels))
    return np.concatenate([labels, spatial], 1), np.concatenate([mask, spatial_mask], 1)


def _fact_labels(summary: dict[str, Any], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, np.float64)
    labels = np.zeros((len(times), len(AUX_LABELS)), np.float32)
    mask = np.zeros_like(labels)
    index = _AUX_INDEX
    if summary["source"] == "billiards":
        pots = summary["pot_times"]
        for ball in AUX_BALLS:
            j = index[f"on_table:{ball}"]
            mask[:, j] = 1.0
            labels[:, j] = times < pots[ball] if ball in pots else 1.0
        return labels, mask
    mask[:, len(AUX_BALLS):] = 1.0
    for obj in summary["objects"]:
        key = f"present:{obj['name']}"
        if key in index:
            labels[:, index[key]] = 1.0
    lift = summary.get("lift_time")
    if lift is not None:
        target = next(o for o in summary["objects"] if o["is_target"])
        up = times >= lift
        labels[:, index["lifted"]] = up
        if f"lifted:{target['color']}" in index:
            labels[:, index[f"lifted:{target['color']}"]] = up
    return labels, mask


# ---------------------------------------------------------------------------- cell labels
# Where each thing is, per cell of a frame's grid: the frame encoder is pretrained on these, and a
# question's grounding is trained to find the thing it names. One channel per thing a question can
# name, then "the lifted object is here".
CELL_CLASSES: tuple[str, ...] = SPATIAL_THINGS + tuple(f"ball:{b}" for b in AUX_BALLS) + ("lifted",)
_CLASS_INDEX = {name: i for i, name in enumerate(CELL_CLASSES)}


def cell_of(u: float, v: float, width: float, height: float, grid: int) -> int | None:
    """Row-major cell index of pixel (u, v) in a ``width`` x ``height`` frame; None off-frame."""
    if not (0 <= u < width and 0 <= v < height):
        return None
    return int(v / height * grid) * grid + int(u / width * grid)


def cell_labels(summary: dict[str, Any], frame: int, grid: int) -> np.ndarray:
    """uint8 ``[grid*grid, len(CELL_CLASSES)]``: which things have their centre in each cell at
    ``frame`` (needs a version-2 summary with per-frame ``track``)."""
    return cell_targets(summary, frame, grid)[0]


def cell_targets(summary: dict[str, Any], frame: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, offsets)``: :func:`cell_labels` and, float16 ``[grid*grid, C, 2]``, where in its
    cell each thing's centre lies (0..1 across, 0..1 down; 0 where the thing is not).

    The offsets matter for "left of" between two things in the same column of cells (7 % of
    the tabletop spatial questions at 8 columns)."""
    if "track" not in summary:
        raise VideoQAError("this clip has no per-frame positions; regenerate the QA data")
    out = np.zeros((grid * grid, len(CELL_CLASSES)), np.uint8)
    offsets = np.zeros((grid * grid, len(CELL_CLASSES), 2), np.float16)
    w, h = float(summary.get("width", 128)), float(summary.get("height", summary.get("width", 128)))

    def mark(name: str, uv: list[float] | None) -> int | None:
        cell = None if uv is None else cell_of(uv[0], uv[1], w, h, grid)
        if cell is not None and name in _CLASS_INDEX:
            c = _CLASS_INDEX[name]
            out[cell, c] = 1
            offsets[cell, c] = (uv[0] / w * grid % 1.0, uv[1] / h * grid % 1.0)
        return cell

    if summary["source"] == "billiards":
        for ball, track in summary["track"].items():
            mark(f"ball:{ball}", track[frame])
        return out, offsets
    target = next(o["name"] for o in summary["objects"] if o["is_target"])
    for name, track in summary["track"].items():
        cell = mark(name, track[frame])
        if name == target and summary["lifted"][frame] and cell is not None:
            out[cell, _CLASS_INDEX["lifted"]] = 1
            offsets[cell, _CLASS_INDEX["lifted"]] = offsets[cell, _CLASS_INDEX[name]]
    rec = summary.get("receptacle")
    if rec:
        mark(rec["kind"], rec["uv"])
    return out, offsets


# ---------------------------------------------------------------------------- cache
def clip_ids(n_billiards: int, n_tabletop: int) -> list[tuple[str, int]]:
    ids = [(f"billiards_{i:04d}", i) for i in range(n_billiards)]
    return ids + [(f"tabletop_{i:04d}", i) for i in range(n_tabletop)]


def _simulate_clip(root: Path, clip: str, i: int, seed: int) -> int:
    """Simulate one clip and write its files atomically; returns its frame count."""
    npz, meta = root / "clips" / f"{clip}.npz", root / "clips" / f"{clip}.json"
    if clip.startswith("billiards"):
        frames, times, summary = simulate_billiards(seed * 100003 + i)
    else:
        task = "PutIn" if i % 2 else "PickUp"
        frames, times, summary = simulate_tabletop(seed * 100003 + i, task)
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez_compressed(tmp, frames=frames, times=times)
    os.replace(tmp, npz)
    meta.write_text(json.dumps(summary))  # written last: its presence marks the clip complete
    return len(times)


def _cached(root: Path, clip: str) -> bool:
    """Both files there and the summary of the current version (older ones are simulated anew)."""
    npz, meta = root / "clips" / f"{clip}.npz", root / "clips" / f"{clip}.json"
    if not (npz.is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("version") == DATA_VERSION
    except json.JSONDecodeError:
        return False


def _simulate_star(job: tuple[Path, str, int, int]) -> tuple[str, int]:
    return job[1], _simulate_clip(*job)


def generate(root: str | Path, n_billiards: int = 60, n_tabletop: int = 60, seed: int = 0,
             log: Any = print, workers: int = 1) -> Path:
    """Simulate (or reuse) clips under ``root/clips`` and write ``root/qa.jsonl``. Resumable:
    a clip whose files exist is not simulated again. ``workers`` > 1 simulates clips in that many
    processes (spawned, not forked: a forked MuJoCo/EGL context is not safe); each clip depends
    only on its seed, so the data are the same whatever the number of workers."""
    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    ids = clip_ids(n_billiards, n_tabletop)
    todo = [(root, clip, i, seed) for clip, i in ids if not _cached(root, clip)]
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            for clip, n in pool.imap_unordered(_simulate_star, todo):
                if log:
                    log(f"simulated {clip}: {n} frames")
    else:
        for job in todo:
            clip, n = _simulate_star(job)
            if log:
                log(f"simulated {clip}: {n} frames")
    qas: list[QA] = []
    for clip, i in ids:
        summary = json.loads((root / "clips" / f"{clip}.json").read_text())
        rng = np.random.default_rng([seed, i, 0 if clip.startswith("billiards") else 1])
        qas += questions_for(summary, clip, split_of(i), rng)
    tmp = root / "qa.jsonl.tmp"
    tmp.write_text("".join(json.dumps(q.to_dict(), ensure_ascii=False) + "\n" for q in qas))
    os.replace(tmp, root / "qa.jsonl")
    return root / "qa.jsonl"


class QADataset:
    """The cached clips and questions; frames stay in memory (small clips)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        qa_file = self.root / "qa.jsonl"
        if not qa_file.is_file():
            raise VideoQAError(f"no qa.jsonl in {root}; generate data first (embodied train-qa does)")
        self.qas = [QA.from_dict(json.loads(line)) for line in qa_file.read_text().splitlines() if line]
        self._clips: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}
        self._summaries: dict[str, dict[str, Any]] = {}

    def clip(self, clip: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        if clip not in self._clips:
            with np.load(self.root / "clips" / f"{clip}.npz") as z:
                frames, times = z["frames"], z["times"]
            summary = json.loads((self.root / "clips" / f"{clip}.json").read_text())
            self._clips[clip] = (frames, times, summary)
        return self._clips[clip]

    def summary(self, clip: str) -> dict[str, Any]:
        """A clip's ground truth without loading its frames."""
        if clip in self._clips:
            return self._clips[clip][2]
        if clip not in self._summaries:
            self._summaries[clip] = json.loads((self.root / "clips" / f"{clip}.json").read_text())
        return self._summaries[clip]

    def forget(self, clip: str) -> None:
        """Drop a clip's frames from memory (its summary stays): 128 px clips add up to gigabytes."""
        entry = self._clips.pop(clip, None)
        if entry is not None:
            self._summaries[clip] = entry[2]

    def select(self, split: str | None = None, heldout: bool | None = None) -> list[QA]:
        return [q for q in self.qas if (split is None or q.split == split)
                and (heldout is None or q.heldout == heldout)]

    def __iter__(self) -> Iterator[QA]:
        return iter(self.qas)
