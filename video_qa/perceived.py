"""What the tracker sees of a billiards QA clip: its subtitles' facts without simulator truth.

A QA clip is a 128x80 thumbnail (a ball is two pixels): too small for the tracker. A clip depends
only on its seed and the physics steps on its own clock, so the same shot is filmed again by the
same overhead camera at 640x480 and 30 frames/s (what ``embodied bench billiards`` scores the
tracker on), ``perception.billiards.tracker.track_shot`` reads those frames, and the facts it
perceives (``video_qa.subtitles.facts_from_perception``) are cached beside the clip in
``<data>/perceived/<clip>.json``. Evaluation's subtitles come from these; the simulator's record
is used only to check that the shot filmed again is the clip's shot (the same first contact and
pots as the clip's summary), never as an input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from common.atomic import write_text
from video_qa.dataset import QADataset, clip_seed
from video_qa.errors import VideoQAError
from video_qa.inputs import Facts

WIDTH, HEIGHT, FPS = 640, 480, 30.0  # the tracker's benchmark resolution and frame rate
VERSION = 1  # of the cached facts: an older cache is perceived again


def _truth_key(summary: dict[str, Any]) -> dict[str, Any]:
    return {"first_hit": summary["first_hit"], "pots": sorted(summary["pot_times"])}


def perceive_clip(seed: int) -> dict[str, Any]:
    """Film clip seed ``seed`` at full resolution, track it, and return the perceived facts plus
    ``check`` (the record's first contact and pots, to compare with the clip's summary)."""
    import numpy as np

    from perception.billiards.sidecar import table_geometry
    from perception.billiards.tracker import track_shot
    from sim.billiards.sidecar import opencv_intrinsics, table_dict
    from video_qa.simulate import billiards_record, billiards_summary
    from video_qa.subtitles import facts_from_perception

    rec = billiards_record(seed, WIDTH, HEIGHT, FPS)
    K = opencv_intrinsics(rec.K["overhead"], WIDTH, HEIGHT)
    pose = np.asarray(rec.camera_pose["overhead"], float)
    shot = track_shot(rec.frames["overhead"], rec.times, K, pose, table_geometry(table_dict()))
    facts = facts_from_perception(shot, K, pose)
    return {"version": VERSION, "seed": seed, "size": [WIDTH, HEIGHT], "fps": FPS, **facts,
            "check": _truth_key(billiards_summary(rec))}


def _path(root: Path, clip: str) -> Path:
    return root / "perceived" / f"{clip}.json"


def _load(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return d if d.get("version") == VERSION else None


def perceived_facts(dataset: QADataset, data_seed: int, clips: Iterable[str],
                    log: Callable[[str], None] | None = print, progress: bool = True) -> Facts:
    """Perceive (once; cached) every billiards clip of ``clips`` and return the facts provider
    ``video_qa.inputs.clip_views`` takes. ``data_seed`` is the seed the data were generated with
    (the checkpoint's recipe records it). A clip whose shot, filmed again, is not the clip's (the
    data came from another simulator) is an error: its perceived facts would describe another shot."""
    from tqdm import tqdm

    root = dataset.root
    todo = sorted(c for c in set(clips) if c.startswith("billiards") and _load(_path(root, c)) is None)
    if todo and log:
        log(f"tracking {len(todo)} billiards clips filmed again at {WIDTH}x{HEIGHT}, {FPS:.0f} fps "
            f"(once; cached in {root / 'perceived'})")
    for clip in tqdm(todo, desc="perceive", unit="clip", disable=not progress or not todo,
                     dynamic_ncols=True):
        write_text(_path(root, clip), json.dumps(perceive_clip(clip_seed(data_seed, clip))))

    def facts(clip: str, summary: dict[str, Any]) -> dict[str, Any] | None:
        if summary.get("source") != "billiards":
            return None
        d = _load(_path(root, clip))
        if d is None:
            raise VideoQAError(f"no perceived facts for {clip}; perceived_facts was not given it")
        if d["check"] != _truth_key(summary):
            raise VideoQAError(f"{clip} filmed again (seed {d['seed']}) is not the clip's shot: the data "
                               f"were made by another simulator or data seed than {data_seed}")
        return {"layout": d["layout"], "events": d["events"]}

    return facts
