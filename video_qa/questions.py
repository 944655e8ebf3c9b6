"""Question templates and the questions they make from a clip's ground-truth summary.

Questions are pure functions of the JSON-able ``summary`` a simulated clip carries
(``video_qa.simulate``), so tests can check them against hand-made ground truth.

Question types (:data:`TYPES`): counting, ordering, attribute, timestamp, spatial, yesno, state,
description. Every type has several paraphrased templates; the LAST template of each type is held
out of training and reported separately (generalisation to new phrasings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from video_qa.labels import AUX_BALLS

TYPES: tuple[str, ...] = ("counting", "ordering", "attribute", "timestamp", "spatial", "yesno",
                          "state", "description")
NOT_SEEN = "not seen"  # the honest answer when the asked-about event never happened

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

# More training phrasings (``questions_for(..., extended=True)``, what `embodied train-qa` draws
# fresh questions from by default): with the question read by the pretrained encoder, more ways of
# asking the same thing teach the model to read meaning rather than one wording. Written to be
# unlike the held-out templates above (the last of each type), which stay out of training: they
# never appear here, nor do their distinctive words ("What number", "ended up", "Is it true",
# "Could you see", "Initially", "lie left", "remained", "drop into", "leave the table", "had been").
EXTRA_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "billiards": {
        "counting": ("How many balls got potted?", "How many pots were there?",
                     "Tell me how many balls were sunk.", "how many balls went down"),
        "ordering": ("Which ball was hit first by the cue ball?", "What did the cue ball strike first?",
                     "First ball contacted by the cue ball?", "which ball got hit first"),
        "attribute": ("What colour was the first ball to go down?", "Which colour went in first?",
                      "Colour of the first ball sunk?", "the first ball potted, which colour was it"),
        "timestamp": ("At which time did the {ball} ball go down?", "When did the {ball} ball get potted?",
                      "Time at which the {ball} ball was sunk?", "when was the {ball} ball sunk"),
        "spatial": ("At the beginning, was the {a} ball to the left of the {b} ball?",
                    "Before the shot, was the {a} ball left of the {b} ball?",
                    "Was the {a} ball on the left of the {b} ball at the start?"),
        "yesno": ("Was the {ball} ball sunk?", "Did the {ball} ball go down?",
                  "Did the {ball} ball end up potted?", "{ball} ball potted?"),
        "state": ("At {t}s, how many balls were still on the table?", "How many balls were left on the table at {t}s?",
                  "Number of balls on the table at {t}s?", "how many balls on the table at {t}s"),
        "description": ("Tell me what happened in the shot.", "Describe what happened.",
                        "What went on in this shot?"),
    },
    "tabletop": {
        "counting": ("How many objects were there on the table?", "How many things were on the table?",
                     "Tell me how many objects there were.", "number of objects on the table?"),
        "ordering": ("Did the object get lifted before the end?", "Was the object picked up before the episode ended?",
                     "By the end, was the object lifted?"),
        "attribute": ("Which colour was the object that got picked up?", "What colour was the lifted object?",
                      "Tell me the colour of the object the robot grabbed.", "colour of the picked-up object?"),
        "timestamp": ("At which time did the robot pick the object up?", "When was the object lifted?",
                      "When did the object get picked up?", "time the object was lifted?"),
        "spatial": ("Was the {a} to the left of the {b}?", "Was the {a} positioned left of the {b}?",
                    "Relative to the {b}, was the {a} on the left?"),
        "yesno": ("Was a {name} in the scene?", "Was there any {name}?", "Did you see a {name}?",
                  "Did the table have a {name} on it?"),
        "state": ("At {t}s, was the object lifted?", "Was the object held up at {t}s?",
                  "Was the object above the table at {t}s?", "at {t}s was the object picked up"),
        "description": ("Tell me what the robot did.", "Describe what happened in the episode.",
                        "What went on in this episode?"),
    },
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


def with_extras(templates: dict[str, tuple[str, ...]], world: str) -> dict[str, tuple[str, ...]]:
    """``templates`` with :data:`EXTRA_TEMPLATES` among the training ones; the held-out template
    stays last, so :func:`_emit` still tells it apart."""
    extra = EXTRA_TEMPLATES[world]
    return {k: t[:-1] + extra.get(k, ()) + t[-1:] for k, t in templates.items()}


def billiards_questions(summary: dict[str, Any], clip: str, split: str,
                        rng: np.random.Generator, extended: bool = False) -> list[QA]:
    BILLIARDS = with_extras(BILLIARDS_TEMPLATES, "billiards") if extended else BILLIARDS_TEMPLATES
    names = summary["ball_names"]
    pots = summary["pot_times"]  # ball -> time of its pot
    order = sorted(pots, key=pots.get)
    out: list[QA] = []
    T = _emit
    T(out, clip, split, BILLIARDS, "counting", str(len(pots)), rng)
    T(out, clip, split, BILLIARDS, "ordering", summary["first_hit"] or "none", rng)
    T(out, clip, split, BILLIARDS, "attribute",
      BALL_COLOUR.get(order[0], order[0]) if order else NOT_SEEN, rng)
    objects = [n for n in names if n != "cue"]
    ball = str(rng.choice(order)) if order and rng.random() < 0.75 else str(rng.choice(objects))
    T(out, clip, split, BILLIARDS, "timestamp",
      fmt_time(pots[ball]) if ball in pots else NOT_SEEN, rng, refs=[_ball(ball)], ball=ball)
    a, b = rng.choice(names, 2, replace=False)
    uv = summary["start_uv"]
    T(out, clip, split, BILLIARDS, "spatial", "yes" if uv[a][0] < uv[b][0] else "no", rng,
      refs=[_ball(str(a)), _ball(str(b))], a=BALL_COLOUR.get(str(a), str(a)),
      b=BALL_COLOUR.get(str(b), str(b)))
    yes_ball = str(rng.choice(order)) if order else None
    no_ball = str(rng.choice([n for n in objects if n not in pots]))
    for q in ([yes_ball] if yes_ball else []) + [no_ball]:
        T(out, clip, split, BILLIARDS, "yesno", "yes" if q in pots else "no", rng,
          refs=[_ball(q)], ball=q)
    times = summary["times"]
    ti = int(rng.integers(len(times)))
    t = round(float(times[ti]), 1)
    on_table = sum(1 for n in names if n not in pots or pots[n] > t)
    T(out, clip, split, BILLIARDS, "state", str(on_table), rng, t=f"{t:.1f}")
    T(out, clip, split, BILLIARDS, "description", describe_shot(summary), rng)
    return out


def describe_shot(summary: dict[str, Any]) -> str:
    pots = summary["pot_times"]
    hit = summary["first_hit"]
    first = f"cue hit {hit}" if hit else "cue hit nothing"
    potted = ", ".join(sorted(pots, key=pots.get)) if pots else "none"
    return f"{first}; potted {potted}"


def tabletop_questions(summary: dict[str, Any], clip: str, split: str,
                       rng: np.random.Generator, extended: bool = False) -> list[QA]:
    TABLETOP = with_extras(TABLETOP_TEMPLATES, "tabletop") if extended else TABLETOP_TEMPLATES
    objs = summary["objects"]
    target = next(o for o in objs if o["is_target"])
    lift = summary["lift_time"]
    out: list[QA] = []
    T = _emit
    T(out, clip, split, TABLETOP, "counting", str(len(objs)), rng)
    T(out, clip, split, TABLETOP, "ordering", "yes" if lift is not None else "no", rng,
      refs=THE_OBJECT)
    T(out, clip, split, TABLETOP, "attribute", target["color"] if lift is not None else NOT_SEEN,
      rng, refs=THE_OBJECT)
    T(out, clip, split, TABLETOP, "timestamp", fmt_time(lift) if lift is not None else NOT_SEEN,
      rng, refs=THE_OBJECT)
    things = [(o["name"], o["u"]) for o in objs]
    if summary.get("receptacle"):
        things.append((summary["receptacle"]["kind"], summary["receptacle"]["u"]))
    if len(things) >= 2:
        i, j = rng.choice(len(things), 2, replace=False)
        T(out, clip, split, TABLETOP, "spatial", "yes" if things[i][1] < things[j][1] else "no",
          rng, refs=[(things[i][0], things[i][0]), (things[j][0], things[j][0])],
          a=things[i][0], b=things[j][0])
    present = {o["name"] for o in objs}
    absent = [f"{c} {s}" for c in summary["all_colors"] for s in summary["all_shapes"]
              if f"{c} {s}" not in present]
    name = str(rng.choice(sorted(present)))
    T(out, clip, split, TABLETOP, "yesno", "yes", rng, refs=[(name, name)], name=name)
    name = str(rng.choice(absent))
    T(out, clip, split, TABLETOP, "yesno", "no", rng, refs=[(name, name)], name=name)
    times = summary["times"]
    ti = int(rng.integers(len(times)))
    t = round(float(times[ti]), 1)
    T(out, clip, split, TABLETOP, "state", "yes" if lift is not None and t >= lift else "no",
      rng, refs=THE_OBJECT, t=f"{t:.1f}")
    T(out, clip, split, TABLETOP, "description", summary["instruction"], rng)
    return out


def questions_for(summary: dict[str, Any], clip: str, split: str,
                  rng: np.random.Generator, extended: bool = False) -> list[QA]:
    """One round of questions about a clip, whichever world it comes from; a new ``rng`` asks
    about other balls, objects, pairs and times of the same clip. ``extended`` draws the training
    question from :data:`EXTRA_TEMPLATES` too (training only: the data sets on disk never do)."""
    make = billiards_questions if summary["source"] == "billiards" else tabletop_questions
    return make(summary, clip, split, rng, extended)


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

