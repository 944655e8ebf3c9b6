"""Routing operator text: a question, a command for the robot, or a stop.

Rules, not a model: an operator must be able to predict what a sentence will do, and a wrong
guess here moves a robot. Anything that is neither clearly a question nor clearly a command is
answered with help rather than acted on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STOP_WORDS = ("stop", "halt", "freeze", "abort", "emergency stop", "e-stop", "cancel")
QUESTION_STARTS = ("what", "where", "when", "which", "who", "whom", "whose", "why", "how", "is", "are",
                   "was", "were", "did", "does", "do", "can", "could", "has", "have", "had", "tell me",
                   "describe", "show me", "list", "count")
# Imperative verb -> task family. Order matters: more specific verbs first.
VERBS: tuple[tuple[str, str], ...] = (
    ("pick up", "pick_up"), ("pick", "pick_up"), ("lift", "pick_up"), ("grab", "pick_up"),
    ("grasp", "pick_up"), ("raise", "pick_up"),
    ("touch", "reach"), ("reach", "reach"), ("tap", "reach"),
    ("push", "push"), ("slide", "push"), ("shove", "push"), ("nudge", "push"),
    ("put", "put_in"), ("place", "put_in"), ("drop", "put_in"), ("move", "move"),
)
SIDES = ("left", "right")
RECEPTACLES = ("bowl", "plate")


@dataclass(frozen=True)
class Route:
    kind: str  # "stop" | "question" | "command" | "unknown"
    text: str
    topic: str = ""  # questions: "scene" | "where" | "history" | "video"
    family: str = ""  # commands: reach | pick_up | push | put_in
    target: str = ""  # "red cube", as far as it could be read
    side: str = ""
    receptacle: str = ""
    notes: list[str] = field(default_factory=list)


def _normalise(text: str) -> str:
    text = text.strip().lower()
    text = re.sub(r"^(please|robot|hey robot|ok|okay|now|then|can you|could you|would you)[ ,]+", "", text)
    return re.sub(r"\s+", " ", text).strip(" .!")


def _target(text: str, colors: tuple[str, ...], shapes: tuple[str, ...]) -> str:
    color = next((c for c in colors if re.search(rf"\b{c}\b", text)), "")
    shape = next((s for s in shapes if re.search(rf"\b{s}s?\b", text)), "")
    return " ".join(p for p in (color, shape) if p)


def route(text: str, colors: tuple[str, ...] = (), shapes: tuple[str, ...] = ()) -> Route:
    """Classify ``text``; ``colors``/``shapes`` are the object words the world knows."""
    raw = text.strip()
    t = _normalise(raw)
    if not t:
        return Route("unknown", raw, notes=["empty input"])
    if any(t == w or t.startswith(w + " ") or t.endswith(" " + w) for w in STOP_WORDS):
        return Route("stop", raw)
    is_question = raw.rstrip().endswith("?") or any(t == q or t.startswith(q + " ") for q in QUESTION_STARTS)
    # "can you pick up the cube?" is a polite command, not a question about ability.
    polite = re.match(r"^(can|could|would|will) you (please )?", raw.strip().lower())
    if polite:
        t = _normalise(raw.strip().lower()[polite.end():])
        is_question = False
    if is_question:
        if re.search(r"\bwhere\b", t):
            topic = "where"
        elif re.search(r"\b(just|did|happened|done|doing|last)\b", t) and re.search(r"\b(robot|you|arm)\b", t):
            topic = "history"
        elif re.search(r"\b(see|on the table|in view|objects?|scene|there)\b", t) and not re.search(
                r"\b(when|first|potted|hit|before|after)\b", t):
            topic = "scene"
        else:
            topic = "video"
        return Route("question", raw, topic=topic, target=_target(t, colors, shapes))
    for verb, family in VERBS:
        if t == verb or t.startswith(verb + " "):
            side = next((s for s in SIDES if re.search(rf"\b{s}\b", t)), "")
            rec = next((r for r in RECEPTACLES if re.search(rf"\b{r}\b", t)), "")
            if family in ("put_in", "move"):
                family = "put_in" if rec else ("push" if side else ("reach" if "gripper" in t else ""))
            if family == "push" and not side:
                return Route("unknown", raw, notes=["push needs a side: left or right"])
            if family == "put_in" and not rec:
                return Route("unknown", raw, notes=["put needs a receptacle: the bowl or the plate"])
            if not family:
                return Route("unknown", raw, notes=[f"cannot tell what to do with '{verb}'"])
            return Route("command", raw, family=family, target=_target(t, colors, shapes), side=side,
                         receptacle=rec)
    return Route("unknown", raw, notes=["neither a question nor a command I know"])
