"""`embodied dataset info|check|show`: look inside any LeRobot v3.0 dataset before training on it.

Registered by ``sim.cli.register`` as a top-level command. Handlers import the reader (pyarrow,
PyAV, matplotlib) only when they run, so `embodied --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

MAX_LINES = 40  # findings printed per level; the count says how many there were in all


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="look inside a LeRobot v3 dataset: info, check, show an episode",
                       description="Works on any LeRobot v3.0 dataset: ours (`embodied sim collect`) or one "
                       "written by LeRobot (tasks in the pandas index, episodes packed in shared files, AV1/H.264/"
                       "HEVC video or PNG images in the parquet, any cameras, state and action sizes).")
    dsub = p.add_subparsers(dest="dataset_command", metavar="<subcommand>")

    i = dsub.add_parser("info", help="episodes, frames, fps, features (shapes, dtypes, codecs), tasks, statistics")
    i.add_argument("dir", metavar="DIR", help="dataset root (the folder holding meta/info.json)")
    i.add_argument("--json", action="store_true", help="print the same as one JSON object")
    i.set_defaults(func=_info)

    c = dsub.add_parser("check", help="validate before training: errors exit 1, warnings only inform",
                        description="Errors (exit status 1): NaN/inf values, timestamps that do not increase, "
                        "frame counts that disagree between parquet, metadata and video files, missing or "
                        "unreadable files, actions outside the statistics' [min, max]. Warnings: constant "
                        "dimensions, idle frames (state and action unchanged) above 5 %, duplicate frames, "
                        "irregular timestamp steps, statistics that had to be computed.")
    c.add_argument("dir", metavar="DIR", help="dataset root (the folder holding meta/info.json)")
    c.add_argument("--decode", action="store_true",
                   help="also decode every camera frame: finds corrupt streams and frozen cameras (the same "
                   "image while the robot moves); slower")
    c.set_defaults(func=_check)

    s = dsub.add_parser("show", help="one episode as a PNG contact sheet or an MP4, with action/state curves")
    s.add_argument("dir", metavar="DIR", help="dataset root (the folder holding meta/info.json)")
    s.add_argument("--episode", type=int, default=0, metavar="N", help="episode index (default: 0)")
    s.add_argument("--out", required=True, metavar="FILE.png|FILE.mp4",
                   help="what to write: .png for a contact sheet, .mp4 for a video of every frame")
    s.add_argument("--frames", type=int, default=6, help="frames per camera on the contact sheet (default: 6)")
    s.add_argument("--tile", type=int, default=128, help="camera tile height in pixels (default: 128)")
    s.set_defaults(func=_show)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _open(path: str):
    """The dataset, with the reader's notes (e.g. statistics computed) shown as one line each."""
    from sim.dataset_reader import LeRobotDataset

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="note: %(message)s", stream=sys.stderr)
    return LeRobotDataset(path)


def _info(args: argparse.Namespace) -> int:
    from sim.dataset_inspect import describe, format_description

    d = describe(_open(args.dir))
    print(json.dumps(d, indent=2) if args.json else format_description(d))
    return 0


def _check(args: argparse.Namespace) -> int:
    from sim.dataset_inspect import check

    ds = _open(args.dir)
    findings = check(ds, decode=args.decode)
    for level in ("error", "warning"):
        items = [f for f in findings if f.level == level]
        for f in items[:MAX_LINES]:
            print(f)
        if len(items) > MAX_LINES:
            print(f"{level}: ... and {len(items) - MAX_LINES} more")
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    print(f"check: {errors} error(s), {warnings} warning(s) in {ds.num_episodes} episodes, {ds.num_frames} frames"
          f"{' (frames decoded)' if args.decode else ''}")
    return 1 if errors else 0


def _show(args: argparse.Namespace) -> int:
    from sim.dataset_show import show_episode
    from sim.errors import SimError

    if args.frames < 1 or args.tile < 8:
        raise SimError("--frames must be at least 1 and --tile at least 8")
    ds = _open(args.dir)
    path = show_episode(ds, args.episode, args.out, n_frames=args.frames, tile=args.tile)
    print(f"wrote {path}: episode {args.episode} ({ds.episode_length(args.episode)} frames, "
          f"cameras {', '.join(ds.cameras) or 'none'})")
    return 0
