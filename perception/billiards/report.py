"""The coach's report for people: text, a table diagram (PNG) and the video annotated.

- ``format_report``: the facts as a few lines of text.
- ``draw_table``: the table from above, every ball that moved with its path in its own colour
  (hollow circle where it started, filled where it stopped), the events marked on the paths
  (strike: an arrow along the cue; contact: a cross; cushion: a diamond; pot: a ring round the
  pocket), numbered in time order with the timeline printed beneath.
- ``annotate_frames``: each video frame with the perceived trails projected into it (the ball's
  centre is ``ball_radius_mm`` above the cloth, so every track point has one pixel), the balls'
  current perceived positions circled and the latest events captioned.

Drawing is OpenCV (anti-aliased lines, Hershey text): it is already a dependency and draws on
numpy arrays in place, which the per-frame overlay needs to be cheap.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from common.atomic import write_bytes
from perception.billiards.analysis import ShotReport, position_at
from perception.billiards.geometry import TableCamera
from perception.billiards.types import PerceivedEvent, ShotPerception
from perception.errors import PerceptionError

FONT = cv2.FONT_HERSHEY_SIMPLEX
RAIL_RGB = (92, 52, 26)
POCKET_RGB = (10, 10, 10)
MARK_RGB = (255, 255, 255)
EVENT_SHOWN_S = 1.5  # s an event's caption stays on the video


# ---- text ---------------------------------------------------------------------------------
def _ball(name: str | None) -> str:
    return "a ball" if name is None else ("the cue ball" if name == "cue" else f"the {name}")


def describe_event(e: PerceivedEvent) -> str:
    """One event in words: "the cue ball hits the red", "the red potted in top_right", ..."""
    if e.kind == "strike":
        return f"the cue stick strikes {_ball(e.b)}"
    if e.kind == "ball_ball":
        return f"{_ball(e.a)} hits {_ball(e.b)}"
    if e.kind == "cushion":
        where = (e.b or "a").replace("cushion_", "").replace("_", " ")
        return f"{_ball(e.a)} off the {where} cushion" if e.b else f"{_ball(e.a)} off a cushion"
    if e.kind == "pot":
        return f"{_ball(e.a)} potted in {(e.b or 'a pocket').replace('_', ' ')}"
    return f"{e.kind} {e.a} {e.b or ''}".strip()


def _num(x: float | None, fmt: str, unit: str = "") -> str:
    return "unknown" if x is None else f"{x:{fmt}}{unit}"


def format_report(report: ShotReport) -> str:
    """The shot's facts as text for a person."""
    lines = ["Shot report"]
    cue = report.cue
    if cue is None:
        lines.append("  cue at the strike:   not seen")
    else:
        elev = (f"{cue.elevation_deg:.1f} deg" if cue.elevation_deg is not None
                else "unknown (RGB only: give --depth)")
        lines.append(f"  cue at the strike:   direction {cue.direction_deg:.1f} deg, elevation {elev} "
                     f"({cue.source}, {cue.frames} frames)")
    lines.append(f"  cue ball:            {_num(report.cue_ball_speed_mps, '.2f', ' m/s')} "
                 f"toward {_num(report.cue_ball_direction_deg, '.1f', ' deg')}")
    if report.first_hit is None:
        lines.append("  first ball hit:      none")
    else:
        lines.append(f"  first ball hit:      the {report.first_hit} at {report.first_hit_t:.2f} s, "
                     f"cut angle {_num(report.cut_angle_deg, '.1f', ' deg')}")
    pots = ", ".join(f"{e.a} in {e.b} at {e.t:.2f} s" for e in report.pots) or "none"
    lines.append(f"  pots:                {pots}")
    if report.aimed_ball is None:
        lines.append("  aimed ball:          unknown")
    else:
        lines.append(f"  aimed ball:          {report.aimed_ball}, "
                     f"{'potted' if report.aimed_ball_potted else 'missed'}")
    if report.cue_ball_potted:
        lines.append("  scratch:             the cue ball went in")
    lines.append("  timeline:")
    lines += [f"    {i:2d}. {e.t:6.2f} s  {describe_event(e)}" for i, e in enumerate(report.events, 1)]
    lines.append("  (directions: degrees counter-clockwise from the table's long axis, +x)")
    return "\n".join(lines)


# ---- the table diagram --------------------------------------------------------------------
def _bgr(rgb) -> tuple[int, int, int]:
    """cv2 draws whatever triple it is given; our arrays are RGB, so colours stay RGB."""
    return tuple(int(round(255 * c)) if isinstance(c, float) else int(c) for c in rgb)


def _outline(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A contrasting edge for a ball colour (dark for light balls, light for dark ones)."""
    return (20, 20, 20) if sum(rgb) > 380 else (235, 235, 235)


def moved(shot: ShotPerception, name: str, min_mm: float = 10.0) -> bool:
    track = shot.tracks[name]
    xy = track.xy_mm[track.visible]
    return len(xy) > 1 and float(np.max(np.linalg.norm(xy - xy[0], axis=1))) > min_mm


def draw_table(shot: ShotPerception, report: ShotReport, width_px: int = 1100) -> np.ndarray:
    """uint8 RGB image of the table from above with paths, events and the timeline."""
    g = shot.geometry
    rail = 80.0  # mm of rail drawn round the playing area
    s = width_px / (2 * (g.half_length_mm + rail))  # px per mm
    table_h = int(round(2 * (g.half_width_mm + rail) * s))
    lines = format_report(report).splitlines() + [
        "  marks: arrow = the cue at the strike, x = ball-ball contact, diamond = cushion, "
        "ring = pot; hollow circle = start, filled = end"]
    line_h = 22
    img = np.full((table_h + line_h * (len(lines) + 1), width_px, 3), 255, np.uint8)

    def px(xy) -> tuple[int, int]:  # table mm -> pixel (+y up on the page, as the overhead view)
        return (int(round((xy[0] + g.half_length_mm + rail) * s)),
                int(round((g.half_width_mm + rail - xy[1]) * s)))

    cv2.rectangle(img, (0, 0), (width_px - 1, table_h - 1), RAIL_RGB, -1)
    cv2.rectangle(img, px((-g.half_length_mm, g.half_width_mm)), px((g.half_length_mm, -g.half_width_mm)),
                  _bgr(g.cloth_colour), -1)
    r_ball = max(2, int(round(g.ball_radius_mm * s)))
    for name, xy in g.pockets.items():
        cv2.circle(img, px(xy), int(round(2.1 * r_ball)), POCKET_RGB, -1, cv2.LINE_AA)

    names = [n for n in shot.tracks if moved(shot, n)]
    for name, track in shot.tracks.items():
        colour = _bgr(g.ball_colours.get(name, (0.5, 0.5, 0.5)))
        xy = track.xy_mm[track.visible]
        if len(xy) == 0:
            continue
        if name in names:
            pts = np.array([px(p) for p in xy], np.int32)
            cv2.polylines(img, [pts], False, _outline(colour), 5, cv2.LINE_AA)
            cv2.polylines(img, [pts], False, colour, 3, cv2.LINE_AA)
            cv2.circle(img, px(xy[0]), r_ball, colour, 2, cv2.LINE_AA)
        cv2.circle(img, px(xy[-1]), r_ball, colour, -1, cv2.LINE_AA)
        cv2.circle(img, px(xy[-1]), r_ball, _outline(colour), 1, cv2.LINE_AA)

    for i, e in enumerate(report.events, 1):
        at = _event_point(shot, e)
        if at is None:
            continue
        p = px(at)
        if e.kind == "strike" and report.cue is not None:
            d = np.radians(report.cue.direction_deg)
            tail = px(at - 300.0 * np.array([np.cos(d), np.sin(d)]))
            cv2.arrowedLine(img, tail, p, MARK_RGB, 2, cv2.LINE_AA, tipLength=0.15)
        elif e.kind == "ball_ball":
            cv2.drawMarker(img, p, MARK_RGB, cv2.MARKER_TILTED_CROSS, 2 * r_ball, 2, cv2.LINE_AA)
        elif e.kind == "cushion":
            cv2.drawMarker(img, p, MARK_RGB, cv2.MARKER_DIAMOND, r_ball, 2, cv2.LINE_AA)
        elif e.kind == "pot":
            cv2.circle(img, p, int(round(2.6 * r_ball)), (255, 215, 0), 3, cv2.LINE_AA)
        label = (min(p[0] + r_ball + 3, width_px - 16), max(p[1] - r_ball - 3, 24))  # stay inside
        cv2.putText(img, str(i), label, FONT, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(img, str(i), label, FONT, 0.6, MARK_RGB, 1, cv2.LINE_AA)

    y = table_h + line_h
    for line in lines:  # the font is proportional: drop the text report's column padding
        line = re.sub(r":\s{2,}", ": ", line)
        cv2.putText(img, line, (10, y), FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        y += line_h
    return img


def _event_point(shot: ShotPerception, e: PerceivedEvent) -> np.ndarray | None:
    """Where on the table ``e`` happened (mm): the pocket for a pot, else the ball's position."""
    if e.kind == "pot" and e.b in shot.geometry.pockets:
        return np.asarray(shot.geometry.pockets[e.b], float)
    ball = e.b if e.kind == "strike" else e.a
    track = shot.tracks.get(ball or "")
    return None if track is None else position_at(track, e.t)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG, atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise PerceptionError(f"could not encode {path} as PNG")
    try:
        return write_bytes(path, buf.tobytes())
    except OSError as exc:
        raise PerceptionError(f"cannot write {path}: {exc.strerror or exc}") from exc


# ---- the annotated video ------------------------------------------------------------------
def annotate_frames(frames: Iterable[np.ndarray], times: np.ndarray, K: np.ndarray,
                    cam_to_world: np.ndarray, shot: ShotPerception, report: ShotReport
                    ) -> Iterator[np.ndarray]:
    """Yield each frame with the trails so far, the balls' perceived positions and the captions."""
    g = shot.geometry
    cam = TableCamera.build(K, cam_to_world, g)
    pix = {n: cam.to_pixels(t.xy_mm, g.ball_radius_mm) for n, t in shot.tracks.items()}
    radius = {n: cam.ball_radius_px(np.nan_to_num(t.xy_mm), g.ball_radius_mm) for n, t in shot.tracks.items()}
    movers = [n for n in shot.tracks if moved(shot, n)]
    summary = _summary(report)
    for k, frame in enumerate(frames):
        img = np.ascontiguousarray(frame).copy()
        t = float(times[k]) if k < len(times) else float(times[-1])
        scale = max(img.shape[1] / 640.0, 0.5)
        for name, track in shot.tracks.items():
            colour = _bgr(g.ball_colours.get(name, (0.5, 0.5, 0.5)))
            upto = track.visible & (track.t <= t + 1e-6) & np.isfinite(pix[name]).all(axis=1)
            if name in movers and upto.sum() > 1:
                pts = np.round(pix[name][upto]).astype(np.int32)
                cv2.polylines(img, [pts], False, _outline(colour), max(1, round(2 * scale)), cv2.LINE_AA)
                cv2.polylines(img, [pts], False, colour, max(1, round(scale)), cv2.LINE_AA)
            j = int(np.searchsorted(track.t, t + 1e-6)) - 1
            if 0 <= j < len(track.t) and upto[j]:
                c = tuple(int(v) for v in np.round(pix[name][j]))
                cv2.circle(img, c, int(round(radius[name][j])) + 2, _outline(colour), 1, cv2.LINE_AA)
        captions = [f"t = {t:5.2f} s"]
        captions += [f"{e.t:5.2f} s  {describe_event(e)}" for e in report.events
                     if e.t <= t + 1e-6 and t - e.t <= EVENT_SHOWN_S]
        if k == len(times) - 1 or t >= float(times[-1]) - 1e-6:
            captions += summary
        _caption(img, captions, scale)
        yield img


def _summary(report: ShotReport) -> list[str]:
    out = []
    if report.cue_ball_speed_mps is not None:
        out.append(f"cue ball {report.cue_ball_speed_mps:.2f} m/s")
    if report.first_hit is not None:
        cut = "" if report.cut_angle_deg is None else f", cut {report.cut_angle_deg:.1f} deg"
        out.append(f"first hit {report.first_hit}{cut}")
    out.append("pots: " + (", ".join(e.a for e in report.pots) or "none"))
    return out


def _caption(img: np.ndarray, lines: list[str], scale: float) -> None:
    """White text on a darkened box in the top-left corner (readable on cloth and rails alike)."""
    size, h, pad = 0.5 * scale, int(round(18 * scale)), int(round(6 * scale))
    width = max(cv2.getTextSize(line, FONT, size, 1)[0][0] for line in lines)
    x1, y1 = min(width + 2 * pad, img.shape[1]), min(h * len(lines) + pad, img.shape[0])
    img[:y1, :x1] = (img[:y1, :x1] * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(img, line, (pad, h * (i + 1) - pad // 2), FONT, size, (255, 255, 255),
                    max(1, round(scale)), cv2.LINE_AA)
