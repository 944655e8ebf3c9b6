"""`embodied sim ...`: collect demonstrations, record a rollout video, draw a contact sheet, list tasks
(and `embodied dataset ...`, registered from here: see sim/dataset_cli.py).

Handlers import MuJoCo and friends only when they run, so `embodied --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from sim.collect import CollectConfig
    from common.config import add_dataclass_args

    p = sub.add_parser("sim", help="simulator tools: collect datasets, record videos, contact sheet, list tasks",
                       description="MuJoCo worlds: tabletop arm tasks (Reach, PickUp, Push, PutIn) and Billiards.")
    ssub = p.add_subparsers(dest="sim_command", metavar="<subcommand>")

    c = ssub.add_parser("collect", help="scripted-expert demonstrations into a LeRobot v3 dataset (resumable)",
                        description="Runs the scripted expert and saves successful episodes. Re-running the "
                        "same command resumes; asking for N episodes when N exist does nothing.")
    add_dataclass_args(c, CollectConfig)
    c.add_argument("--size", default=None, metavar="WxH", help="image size (default: 128x128)")
    c.add_argument("--cameras", default=None, metavar="A,B", help="cameras (default: agentview,wrist)")
    c.set_defaults(func=_collect)

    r = ssub.add_parser("record", help="render one expert rollout (or a billiards shot) to an mp4")
    r.add_argument("--task", required=True, help="task name, e.g. PickUp or Billiards")
    r.add_argument("--out", required=True, metavar="FILE.mp4", help="video to write")
    r.add_argument("--seed", type=int, default=0, help="episode seed (default: 0)")
    r.add_argument("--camera", default=None,
                   help="camera to film (default: agentview for tabletop, overhead for billiards)")
    r.add_argument("--size", default="256x256", metavar="WxH", help="frame size (default: 256x256)")
    r.add_argument("--max-steps", type=int, default=400, help="step cap of a tabletop rollout (default: 400)")
    r.set_defaults(func=_record)

    s = ssub.add_parser("sheet", help="PNG contact sheet: a few frames of each task with its instruction")
    s.add_argument("--out", default="sheet.png", metavar="FILE.png", help="PNG to write (default: sheet.png)")
    s.add_argument("--task", default=None, help="comma list (default: every tabletop task + Billiards)")
    s.add_argument("--seed", type=int, default=0, help="episode seed of every row (default: 0)")
    s.add_argument("--tile", type=int, default=160, help="tile height in pixels (default: 160)")
    s.add_argument("--frames", type=int, default=4, help="frames per task (default: 4)")
    s.set_defaults(func=_sheet)

    ls = ssub.add_parser("list", help="tasks and example instructions")
    ls.add_argument("--examples", type=int, default=3, help="instructions shown per task (default: 3)")
    ls.set_defaults(func=_list)
    p.set_defaults(func=lambda args: p.print_help() or 2)

    from sim.dataset_cli import register as register_dataset

    register_dataset(sub)  # the top-level `embodied dataset` (info, check, show)


def _collect(args: argparse.Namespace) -> int:
    from sim.collect import CollectConfig, collect, parse_size
    from common.config import from_args

    overrides = {}
    if args.size:
        overrides["image_size"] = parse_size(args.size)
    if args.cameras:
        overrides["cameras"] = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    cfg = from_args(CollectConfig, args, **overrides)
    summary = collect(cfg)
    print(json.dumps(summary, indent=2))
    if not summary["complete"]:
        print(f"embodied sim collect: stopped after {summary['attempts_now']} attempts with "
              f"{summary['episodes']}/{cfg.episodes} episodes (expert failing?)", file=sys.stderr)
        return 1
    return 0


def _check_out_file(path: str, suffix: str):
    from pathlib import Path

    from sim.errors import SimError

    out = Path(path)
    if out.suffix.lower() != suffix:
        raise SimError(f"--out must end in {suffix}, got {path!r}")
    parent = next((p for p in out.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise SimError(f"cannot write {out}: {parent} is not a directory")
    return out


def _record(args: argparse.Namespace) -> int:
    from sim.collect import parse_size
    from sim.registry import check_task
    from sim.sheet import BILLIARDS_FPS, billiards_rollout, rollout_frames
    from sim.video import VideoWriter, write_mp4

    task = check_task(args.task)
    out = _check_out_file(args.out, ".mp4")
    size = parse_size(args.size)
    if task == "Billiards":  # shots are long: stream frames to the encoder as they are rendered
        with VideoWriter(out, fps=BILLIARDS_FPS) as writer:
            rollout = billiards_rollout(args.seed, args.camera or "overhead", size, on_frame=writer.write)
        n = writer.frames_written
    else:
        rollout = rollout_frames(task, seed=args.seed, camera=args.camera, image_size=size,
                                 max_steps=args.max_steps)
        write_mp4(out, rollout.frames, fps=rollout.fps)
        n = len(rollout.frames)
    status = "success" if rollout.success else "no success"
    print(f"wrote {out}: {n} frames at {rollout.fps} fps, {task} \"{rollout.instruction}\" ({status})")
    return 0


def _sheet(args: argparse.Namespace) -> int:
    from sim.registry import check_task
    from sim.sheet import make_sheet

    out = _check_out_file(args.out, ".png")
    tasks = [check_task(t.strip()) for t in args.task.split(",")] if args.task else None
    path = make_sheet(out, tasks=tasks, seed=args.seed, tile=args.tile, n_frames=args.frames)
    print(f"wrote {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    import sim
    from sim.registry import TABLETOP_TASKS, TASKS, gym_id

    for name in TASKS:
        print(f"{name:10s} {gym_id(name)}")
        if name in TABLETOP_TASKS:
            env = sim.make(name, cameras=())
            try:
                seen: list[str] = []
                for seed in range(args.examples * 4):
                    _, info = env.reset(seed=seed)
                    if info["instruction"] not in seen:
                        seen.append(info["instruction"])
                    if len(seen) >= args.examples:
                        break
            finally:
                env.close()
            for text in seen:
                print(f"{'':10s}   \"{text}\"")
        else:
            print(f"{'':10s}   scripted pool shots with ground-truth events and cue poses "
                  "(`embodied sim record --task Billiards`)")
    return 0
