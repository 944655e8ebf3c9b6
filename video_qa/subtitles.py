"""Per-frame subtitles: a shot's events as time-stamped text beside the frames the model sees.

MiniGPT4-video puts a subtitle line beside each sampled frame; here the lines come from a billiards
shot's events. Why: a contact lasts a few milliseconds and a pot one frame, so eight sampled
frames of 128x80 (a ball is two pixels) rarely show what a question asks about; the tracker
(``perception.billiards``), which sees every full-resolution frame, does.

A shot's *facts* are a small JSON-able dict, whoever produced them:

- ``layout``: the ball names from left to right in the first frame (image columns of the camera
  the clip was filmed with), what "left of" questions ask about;
- ``events``: ``{"t", "kind", "a", "b"}`` dicts (kinds of ``perception.billiards.types.EVENT_KINDS``).

Training reads the facts from the simulator's ground truth (:func:`facts_from_summary`);
evaluation and ``embodied ask`` read them from the tracker (:func:`facts_from_perception`), so
the live path never sees simulator truth. Both go through the same :func:`subtitles`.

Each event goes beside the first sampled frame at or after it (an event after the last sampled
frame goes beside the last), so no event is lost between keyframes. Only what the questions need
is written: the layout (first frame), the cue ball's first contact, and every pot with its time.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from video_qa.questions import BALL_COLOUR

FACT_SOURCES = ("perceived", "truth")  # where evaluation takes a clip's facts from
CUE = "cue"


def _word(ball: str) -> str:
    """How questions and answers name a ball (the cue ball is "white")."""
    return BALL_COLOUR.get(ball, ball)


def _event_dicts(events: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        d = e if isinstance(e, dict) else e.to_dict()
        out.append({"t": round(float(d["t"]), 3), "kind": str(d["kind"]), "a": d["a"], "b": d.get("b")})
    return sorted(out, key=lambda d: d["t"])


def facts_from_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The simulator's ground truth of a billiards clip (``video_qa.simulate.billiards_summary``)."""
    u = summary["start_uv"]
    return {"layout": sorted(summary["ball_names"], key=lambda n: u[n][0]),
            "events": _event_dicts(summary["events"])}


def facts_from_perception(shot: Any, K: np.ndarray, cam_to_world: np.ndarray) -> dict[str, Any]:
    """What the tracker saw (a ``perception.billiards.types.ShotPerception``) filmed by a camera
    with intrinsics ``K`` and pose ``cam_to_world``."""
    from perception.billiards.analysis import layout

    return {"layout": layout(shot, K, cam_to_world), "events": _event_dicts(shot.events)}


def facts_from_report(report: dict[str, Any]) -> dict[str, Any]:
    """The facts in a coach's ``report.json`` (``perception.billiards.analysis.ShotReport``):
    its event timeline, and the layout it recorded (empty in reports that predate it)."""
    return {"layout": list(report.get("layout") or []), "events": _event_dicts(report.get("events") or [])}


def _fmt(t: float) -> str:
    return f"{t:.1f}s"


def event_lines(facts: dict[str, Any]) -> list[tuple[float, str]]:
    """(time, text) of the events a subtitle states: the cue ball's first contact and the pots."""
    lines: list[tuple[float, str]] = []
    hit = False
    for e in facts["events"]:
        if e["kind"] == "ball_ball" and not hit and CUE in (e["a"], e["b"]):
            other = e["b"] if e["a"] == CUE else e["a"]
            lines.append((e["t"], f"cue hit {other} {_fmt(e['t'])}"))
            hit = True
        elif e["kind"] == "pot":
            lines.append((e["t"], f"{_word(e['a'])} potted {_fmt(e['t'])}"))
    return lines


def subtitles(facts: dict[str, Any] | None, frame_times: Sequence[float]) -> list[str]:
    """One subtitle per sampled frame (``""`` where nothing is said) for frames at ``frame_times``
    (seconds, ascending)."""
    n = len(frame_times)
    out: list[list[str]] = [[] for _ in range(n)]
    if facts is None or n == 0:
        return [""] * n
    if facts.get("layout"):
        out[0].append("left to right: " + " ".join(_word(b) for b in facts["layout"]))
    times = np.asarray(frame_times, float)
    for t, text in event_lines(facts):
        at = int(np.searchsorted(times, t - 1e-6))  # first frame at or after the event
        out[min(at, n - 1)].append(text)
    return ["; ".join(parts) for parts in out]
