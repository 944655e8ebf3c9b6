"""Billiards questions answered from the tracker's report of one shot, not from the VideoLM.

Why: the VideoLM sees 8 thumbnails where a ball is two pixels wide and a pot lasts one frame
(issue 25), while the ball tracker's report (``perception.billiards.analysis.ShotReport``, or
the ``report.json`` that ``embodied coach`` writes) already holds the facts a player asks
about: the first ball hit, the pots with their times and pockets, the cue at the strike, the
cue ball's speed and the cut. Where the report answers, its answer is exact; where it does not
(a question about something else), :func:`answer_billiards` returns None and the caller falls
back to the VideoLM.

The intent is the nearest of a few example questions per intent under the shared pretrained
sentence encoder (pooled vectors; the encoder caches each string), after the ball's colour has
been replaced by one stand-in colour, so "when did the yellow go in" and "when was the red ball
potted?" meet. Unrelated questions have their own examples ("other") so that a tabletop question
is pulled there rather than into the nearest billiards intent; below :data:`THRESHOLD`, or
nearest to "other", the answer is None. The ball is a slot read from the words: the table's
colours, "cue ball"/"white". Answers are one short sentence with the number or the ball, and
say "not seen" when the tracker saw no such event, never a guess.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from common.errors import UserError

THRESHOLD = 0.6  # the nearest billiards example's cosine must reach this
MARGIN = 0.02  # ... and beat the nearest "other" example by this much

INTENTS: dict[str, tuple[str, ...]] = {
    "first_hit": (
        "which ball did the cue ball hit first?", "what did the cue ball hit first?",
        "what was the first ball the cue ball touched?", "which ball got hit first?",
        "what was the first contact?", "did the cue ball hit the red ball first?",
        "which object ball did I hit first?", "what ball did I make contact with first?",
    ),
    "first_potted": (
        "which ball was potted first?", "what was the first ball potted?", "which ball went in first?",
        "what colour was the first ball potted?", "which ball dropped first?", "what did I pot first?",
        "which ball was sunk first?",
    ),
    "last_potted": (
        "which ball was potted last?", "what was the last ball to go in?", "which ball went in last?",
    ),
    "pot_time": (
        "when was the red ball potted?", "when did the red ball go in?", "at what time was the red potted?",
        "when did the red drop?", "what time did the red ball fall into the pocket?",
        "which pocket did the red ball go in?", "where was the red ball potted?", "when was a ball potted?",
        "how long after the strike was the red potted?", "when did the red get sunk?",
    ),
    "pot_count": (
        "how many balls were potted?", "how many balls went in?", "how many balls did I pot?",
        "how many pots were there?", "count the balls that were potted", "how many balls dropped?",
    ),
    "was_potted": (
        "was the red ball potted?", "did the red ball go in?", "did I pot the red?",
        "did the red ball go into a pocket?", "was the red sunk?", "did the red drop?",
        "was any ball potted?", "did I pot anything?", "did the cue ball go in?",
    ),
    "aimed": (
        "did I pot the ball I was aiming at?", "did my target ball go in?", "did I make the shot?",
        "was the shot a success?", "did the aimed ball go in?",
    ),
    "cue_angle": (
        "what angle was my cue at?", "what was my cue's elevation?", "how steep was my cue?",
        "which direction was the cue pointing at the strike?", "what was the angle of the cue stick?",
        "how high was the butt of my cue?", "was my cue level?", "where was my cue aimed?",
    ),
    "speed": (
        "how fast was the cue ball?", "what was the cue ball's speed?", "how hard did I hit the cue ball?",
        "how fast did the cue ball leave?", "what speed did I hit it at?", "how much power did I use?",
        "which direction did the cue ball go?",
    ),
    "cut": (
        "what was the cut angle?", "how thin was the cut?", "how much did I cut the red?",
        "what angle did I cut the red ball at?", "how thick did I hit the red?", "was it a full ball hit?",
    ),
    "other": (
        "what do you see on the table?", "where is the red cube?", "pick up the red cube",
        "what did the robot just do?", "sing me a song", "hello", "what can you do?",
        "how many objects are on the table?", "where is the cue ball?", "when did the cue ball stop?",
        "how many balls were on the table at 3 seconds?", "what happened in the video?",
        "at the start, was the red ball left of the yellow ball?", "summarise the shot",
        "push the red cube to the left", "put the red cube in the bowl", "stop", "thank you",
        "what colour is the cylinder?", "is the red cube bigger than the blue one?",
        "what happened after the first collision?", "which cushion did the cue ball hit?",
        "how far did the red ball travel?", "what time is it?", "tell me a joke",
    ),
}

STAND_IN = "red"  # every ball colour is encoded as this one: the intent is in the other words
ALIASES = {"white": "cue", "eight": "black", "8": "black"}  # words for a ball besides its name


class BilliardsQAError(UserError):
    """A shot report that cannot be read (missing file, not JSON, not a coach report)."""


@dataclass(frozen=True)
class BilliardsAnswer:
    """``text``: one sentence; ``intent``/``ball``: what was understood; ``score``: the cosine."""

    text: str
    intent: str
    ball: str | None
    score: float
    value: Any = None  # the number, ball or list the sentence states

    def to_dict(self) -> dict[str, Any]:
        return {"source": "tracker", "intent": self.intent, "ball": self.ball,
                "score": round(self.score, 3), "value": self.value}


# -- the report ----------------------------------------------------------------------------------
def load_facts(report: Any) -> dict[str, Any]:
    """The report's facts as ``ShotReport.to_dict()`` gives them, from a ``ShotReport``, its
    dict, a ``report.json`` path, or a directory holding one."""
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if isinstance(report, dict):
        return report
    path = Path(report)
    if path.is_dir():
        path = path / "report.json"
    try:
        facts = json.loads(path.read_text())
    except FileNotFoundError:
        raise BilliardsQAError(f"no shot report at {path} (embodied coach --out DIR writes DIR/report.json)") from None
    except (OSError, ValueError) as exc:
        raise BilliardsQAError(f"cannot read the shot report {path}: {exc}") from None
    if not isinstance(facts, dict) or "events" not in facts:
        raise BilliardsQAError(f"{path} is not a shot report (no 'events'; embodied coach writes one)")
    return facts


def default_balls() -> tuple[str, ...]:
    """The simulated table's ball names (cue, yellow, blue, red, ...)."""
    from sim.billiards.table import BALL_NAMES

    return BALL_NAMES


def ball_names(facts: dict[str, Any], balls: Sequence[str] | None = None) -> tuple[str, ...]:
    """The table's balls and any other ball the report names (a pot, a ball-ball contact)."""
    named = [*(balls or default_balls())]
    for e in facts.get("events", ()):
        kind = e.get("kind")
        who = (e.get("a"), e.get("b")) if kind == "ball_ball" else (e.get("a"),) if kind == "pot" else ()
        named += [w for w in who if w and w not in named]
    return tuple(named)


# -- the question --------------------------------------------------------------------------------
def _normalise(text: str) -> str:
    text = text.strip().lower().replace("’", "'")
    text = re.sub(r"[^\w' ?-]", " ", text)
    return re.sub(r"\s+", " ", text).strip(" .!")


def read_ball(text: str, balls: Sequence[str]) -> str | None:
    """The ball a question is about: the first object ball it names, else the cue ball when it
    names that ("cue ball", "white"), else None."""
    t = _normalise(text)
    words = {**{b: b for b in balls}, **{w: b for w, b in ALIASES.items() if b in balls}}
    named: list[tuple[int, str]] = []
    for word, ball in words.items():
        pattern = r"\bcue(?: ball)?\b(?! stick)" if ball == "cue" and word == "cue" else rf"\b{re.escape(word)}\b"
        named += [(m.start(), ball) for m in re.finditer(pattern, t)]
    if "cue" in balls and re.search(r"\bcue(?:'s)? (?:stick|angle|elevation|direction)\b|\bmy cue\b", t):
        named = [(i, b) for i, b in named if b != "cue" or re.match(r"cue ball", t[i:])]
    order = [b for _, b in sorted(named)]
    return next((b for b in order if b != "cue"), "cue" if "cue" in order else None)


def delexicalise(text: str, balls: Sequence[str]) -> str:
    """The question with every object ball's colour replaced by :data:`STAND_IN`."""
    t = _normalise(text)
    colours = [b for b in balls if b != "cue"] + [w for w, b in ALIASES.items() if b != "cue"]
    t = re.sub(r"\bwhite\b", "cue", t)
    if colours:
        t = re.sub(r"\b(" + "|".join(map(re.escape, colours)) + r")\b", STAND_IN, t)
    return t


class IntentClassifier:
    """Nearest example under the shared encoder; the examples are encoded once."""

    def __init__(self, examples: dict[str, tuple[str, ...]] | None = None, encoder: Any = None) -> None:
        from perception.text_encoder import shared_text_encoder

        self.encoder = encoder or shared_text_encoder()
        self.examples = examples or INTENTS
        self.labels = [k for k, texts in self.examples.items() for _ in texts]
        texts = [_normalise(t) for ts in self.examples.values() for t in ts]
        self.matrix = self.encoder.encode(texts).pooled.detach().cpu().numpy()

    def scores(self, text: str) -> dict[str, float]:
        """Intent -> cosine of its nearest example to ``text`` (already delexicalised)."""
        v = self.encoder.encode([text]).pooled.detach().cpu().numpy()[0]
        sims = self.matrix @ v
        best: dict[str, float] = {}
        for label, s in zip(self.labels, sims.tolist()):
            best[label] = max(best.get(label, -1.0), s)
        return best

    def classify(self, text: str) -> tuple[str | None, float]:
        """(intent, cosine), intent None when below :data:`THRESHOLD` or nearest to "other"."""
        scores = self.scores(text)
        other = scores.pop("other", -1.0)
        intent = max(scores, key=scores.get)
        score = scores[intent]
        if score < THRESHOLD or score < other + MARGIN:
            return None, score
        return intent, score


_classifier: IntentClassifier | None = None
_lock = threading.Lock()


def get_classifier() -> IntentClassifier:
    global _classifier
    with _lock:
        if _classifier is None:
            _classifier = IntentClassifier()
        return _classifier


# -- the answer ----------------------------------------------------------------------------------
def _ball(name: str) -> str:
    return "the cue ball" if name == "cue" else f"the {name} ball"


def _pocket(name: str | None) -> str:
    return f"the {name.replace('_', '-')} pocket" if name else "a pocket"


def _pot_phrase(p: dict[str, Any]) -> str:
    return f"{_ball(p['ball'])} at {p['t']:.2f} s in {_pocket(p.get('pocket'))}"


def _pots(facts: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(facts.get("pots") or [], key=lambda p: p["t"])


def _list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _first_hit(f: dict, ball: str | None) -> tuple[str, Any]:
    hit, t = f.get("first_hit"), f.get("first_hit_t")
    if not hit:
        return "Not seen: the tracker saw the cue ball hit no other ball.", None
    when = f" at {t:.2f} s" if t is not None else ""
    if ball and ball != "cue":
        yes = "Yes" if ball == hit else "No"
        return f"{yes}: the cue ball hit {_ball(hit)} first{when}.", hit
    return f"The cue ball hit {_ball(hit)} first{when}.", hit


def _first_potted(f: dict, ball: str | None, last: bool = False) -> tuple[str, Any]:
    pots = _pots(f)
    if not pots:
        return "Not seen: the tracker saw no ball potted.", None
    p = pots[-1] if last else pots[0]
    which = "last" if last else "first"
    if len(pots) == 1:
        return f"Only one ball was potted: {_pot_phrase(p)}.", p["ball"]
    where = _pocket(p.get("pocket"))
    return f"{_ball(p['ball']).capitalize()} was potted {which}, at {p['t']:.2f} s in {where}.", p["ball"]


def _pot_time(f: dict, ball: str | None) -> tuple[str, Any]:
    pots = _pots(f)
    if ball:
        mine = [p for p in pots if p["ball"] == ball]
        if not mine:
            return f"Not seen: the tracker did not see {_ball(ball)} potted.", None
        p = mine[0]
        return f"{_ball(ball).capitalize()} was potted at {p['t']:.2f} s, in {_pocket(p.get('pocket'))}.", p["t"]
    if not pots:
        return "Not seen: the tracker saw no ball potted.", None
    return f"Potted: {_list([_pot_phrase(p) for p in pots])}.", [p["t"] for p in pots]


def _pot_count(f: dict, ball: str | None) -> tuple[str, Any]:
    pots = _pots(f)
    if not pots:
        return "No ball was potted (the tracker saw none go in).", 0
    n = len(pots)
    return f"{n} ball{'s were' if n > 1 else ' was'} potted: {_list([_pot_phrase(p) for p in pots])}.", n


def _was_potted(f: dict, ball: str | None) -> tuple[str, Any]:
    pots = _pots(f)
    if ball is None:
        if not pots:
            return "No: the tracker saw no ball potted.", False
        return f"Yes: {_list([_pot_phrase(p) for p in pots])}.", True
    mine = [p for p in pots if p["ball"] == ball]
    if not mine:
        return f"No: the tracker did not see {_ball(ball)} potted.", False
    p = mine[0]
    return f"Yes: {_ball(ball)} was potted at {p['t']:.2f} s, in {_pocket(p.get('pocket'))}.", True


def _aimed(f: dict, ball: str | None) -> tuple[str, Any]:
    aimed, potted = f.get("aimed_ball"), f.get("aimed_ball_potted")
    if not aimed or potted in (None, "unknown"):
        return "I do not know which ball you aimed at (the recording does not say).", None
    return (f"Yes: {_ball(aimed)} went in." if potted else f"No: {_ball(aimed)}, the ball you aimed at, "
            "was not potted."), bool(potted)


def _cue_angle(f: dict, ball: str | None) -> tuple[str, Any]:
    cue = f.get("cue")
    if not cue:
        return "Not seen: the cue tracker did not read the cue at the strike.", None
    elev = cue.get("elevation_deg")
    tilt = (f"elevated {elev:.1f} deg" if elev is not None
            else "elevation unknown (it needs depth)")
    return (f"At the strike ({cue['t']:.2f} s) your cue pointed at {cue['direction_deg']:.1f} deg on the table, "
            f"{tilt}."), {"direction_deg": cue["direction_deg"], "elevation_deg": elev}


def _speed(f: dict, ball: str | None) -> tuple[str, Any]:
    v, d = f.get("cue_ball_speed_mps"), f.get("cue_ball_direction_deg")
    if v is None:
        return "Not seen: the tracker could not measure the cue ball's launch.", None
    heading = f", heading {d:.1f} deg" if d is not None else ""
    return f"The cue ball left at {v:.2f} m/s{heading}.", v


def _cut(f: dict, ball: str | None) -> tuple[str, Any]:
    cut, hit = f.get("cut_angle_deg"), f.get("first_hit")
    if cut is None:
        why = "the cue ball hit no other ball" if not hit else f"its contact with {_ball(hit)} was not measurable"
        return f"Not seen: {why}.", None
    return f"The cut angle on {_ball(hit)} was {cut:.1f} deg.", cut


ANSWERS = {"first_hit": _first_hit, "first_potted": _first_potted,
           "last_potted": lambda f, b: _first_potted(f, b, last=True), "pot_time": _pot_time,
           "pot_count": _pot_count, "was_potted": _was_potted, "aimed": _aimed, "cue_angle": _cue_angle,
           "speed": _speed, "cut": _cut}


def answer_billiards(question: str, report: Any, balls: Sequence[str] | None = None,
                     classifier: IntentClassifier | None = None) -> BilliardsAnswer | None:
    """The report's answer to ``question``, or None when it is not a question the report answers
    (the caller then asks the VideoLM). ``report``: a ShotReport, its dict, or a report.json path."""
    facts = load_facts(report)
    names = ball_names(facts, balls)
    intent, score = (classifier or get_classifier()).classify(delexicalise(question, names))
    if intent is None:
        return None
    ball = read_ball(question, names)
    text, value = ANSWERS[intent](facts, ball)
    return BilliardsAnswer(text, intent, ball, float(score), value)
