"""The coach: one recorded shot in, the report of what happened out (``embodied coach``).

The path is pixels only: the video, its camera sidecar (intrinsics, pose, table, optionally the
aimed ball) and optional depth go to the ball tracker (``perception.billiards.tracker``); the
cue tracker reads the cue over the frames before the strike; ``perception.billiards.analysis``
turns tracks and events into facts and ``report`` draws them. The simulator's ground truth is
never read here (``sim.billiards.demo_shot`` only records a shot to try).

Written into ``out``: ``report.json`` (the facts), ``report.txt`` (the same for people),
``table.png`` (paths and events from above) and ``annotated.mp4`` (the video with the tracks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from common.atomic import write_json, write_text
from common.errors import UserError

if TYPE_CHECKING:
    from perception.billiards.analysis import ShotReport
    from perception.billiards.types import ShotPerception

Perceive = Callable[..., "ShotPerception"]  # track_shot's signature


class CoachError(UserError):
    """A coach input that cannot be used (missing tracker, unreadable video, ...)."""


@dataclass(frozen=True)
class CoachResult:
    report: ShotReport
    text: str
    files: dict[str, Path]


def _default_perceive() -> Perceive:
    try:
        from perception.billiards.tracker import track_shot
    except ImportError as exc:
        raise CoachError(f"the ball tracker (perception/billiards/tracker.py, track_shot) is not available: {exc}") from None
    return track_shot


def coach_shot(video: str | Path, out: str | Path, depth: str | Path | None = None,
               calib: str | Path | None = None, aimed_ball: str | None = None, read_cue: bool = True,
               perceive: Perceive | None = None) -> CoachResult:
    """Analyse the shot in ``video``; write the report files into ``out``.

    ``calib`` defaults to the video's sidecar (``<stem>.calib.json``); ``aimed_ball`` overrides
    the sidecar's; ``perceive`` is the tracker (default ``track_shot``; same signature).
    """
    from perception.billiards.analysis import analyse_shot, layout, strike_time
    from perception.billiards.cue_reading import cue_at_strike
    from perception.billiards.report import annotate_frames, draw_table, format_report, write_png
    from perception.billiards.sidecar import load_depth, load_sidecar, sidecar_path
    from perception.sources import read_video
    from perception.videoio import write_video

    video = Path(video)
    if not video.is_file():
        raise CoachError(f"no video at {video}")
    side = load_sidecar(calib if calib is not None else sidecar_path(video))
    if aimed_ball is not None and aimed_ball not in side.geometry.ball_colours:
        raise CoachError(f"unknown ball {aimed_ball!r}; the table's balls: {', '.join(side.geometry.ball_colours)}")
    frames, times, _ = read_video(video)
    if side.fps:  # the recorder's clock: frame k at k / fps (container timestamps can be rounded)
        times = np.arange(len(frames)) / side.fps
    depth_frames = None if depth is None else load_depth(depth, len(frames), frames.shape[1:3])
    perceive = perceive or _default_perceive()
    try:
        shot = perceive(frames, times, side.K, side.cam_to_world, side.geometry, depth=depth_frames)
    except ImportError as exc:  # the tracker is there but a piece of it (events) is not yet
        raise CoachError(f"the ball tracker could not run: {exc}") from None

    cue = None
    t_strike = strike_time(shot)
    if read_cue and t_strike is not None:
        cue = cue_at_strike(frames, times, side.K, side.cam_to_world, side.geometry, t_strike, depth_frames)
    report = analyse_shot(shot, cue, aimed_ball if aimed_ball is not None else side.aimed_ball)
    text = format_report(report)

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CoachError(f"cannot create {out}: {exc.strerror or exc}") from None
    files = {"json": out / "report.json", "text": out / "report.txt", "png": out / "table.png",
             "mp4": out / "annotated.mp4"}
    write_json(files["json"], {"video": str(video), **report.to_dict(),
                               "layout": layout(shot, side.K, side.cam_to_world)})
    write_text(files["text"], text + "\n")
    write_png(files["png"], draw_table(shot, report))
    write_video(files["mp4"], annotate_frames(frames, times, side.K, side.cam_to_world, shot, report),
                fps=side.fps or (shot.fps or 30.0))
    return CoachResult(report, text, files)
