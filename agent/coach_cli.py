"""`embodied coach`: a report on one recorded billiards shot (see agent/coach.py)."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = """\
Watches one recorded billiards shot and reports what happened: the cue's direction and elevation
at the strike, the cue ball's speed and direction, the first ball hit and the cut angle, the event
timeline, the pots and whether the aimed ball went in. Writes into --out: report.json, report.txt,
table.png (every ball's path from above, events numbered) and annotated.mp4 (the video with the
tracks and events drawn on it), and prints the report.

The video needs its camera sidecar, FILE's stem + .calib.json (e.g. overhead.calib.json beside
overhead.mp4): intrinsics K, the camera pose, the table's size, pockets and ball colours, and
optionally the ball the player aimed at. Depth (--depth) makes the cue's elevation measurable;
without it the elevation is reported as unknown.

Try it on a simulated shot:
  embodied coach --record-demo runs/coach --out runs/coach/report
or in two steps:
  embodied coach --record-demo runs/coach --depth-demo
  embodied coach --video runs/coach/overhead.mp4 --depth runs/coach/overhead.depth.npz --out runs/coach/report
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coach", help="report on one billiards shot from its video: cue, speeds, cut, events, pots",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", metavar="FILE", help="the shot's video (mp4), with FILE's .calib.json sidecar beside it")
    p.add_argument("--depth", metavar="FILE",
                   help="depth frames matching the video: .npy or .npz (key 'depth'), float [T, H, W] metres")
    p.add_argument("--calib", metavar="FILE", help="the camera sidecar, when it is not beside the video")
    p.add_argument("--aimed", metavar="BALL", help="the ball the player meant to pot (overrides the sidecar's)")
    p.add_argument("--out", metavar="DIR", help="where report.json, report.txt, table.png and annotated.mp4 go")
    p.add_argument("--no-cue", action="store_true", help="skip the cue tracker (faster; no cue direction or elevation)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    p.add_argument("--ask", metavar="QUESTION", action="append", default=[],
                   help="then ask the agent this about the shot (repeatable), e.g. --ask \"when was the "
                   "red ball potted?\"; answered from the report where it can")
    demo = p.add_argument_group("a shot to try")
    demo.add_argument("--record-demo", metavar="DIR",
                      help="simulate and record a scripted pot (red into the top-right pocket) into DIR; "
                      "with --out, analyse it right away")
    demo.add_argument("--camera", default="overhead", choices=("overhead", "player"),
                      help="camera of --record-demo (default: overhead)")
    demo.add_argument("--size", default="640x480", metavar="WxH", help="video size of --record-demo (default: 640x480)")
    demo.add_argument("--depth-demo", action="store_true",
                      help="also record depth with --record-demo (<camera>.depth.npz; always on when --out is given)")
    p.set_defaults(func=_coach)


def _coach(args: argparse.Namespace) -> int:
    from agent.coach import CoachError, coach_shot

    video, depth = args.video, args.depth
    if args.record_demo:
        if video:
            raise CoachError("give either --video or --record-demo, not both")
        video, depth = _record_demo(args)
        if not args.out:
            return 0
    if not video:
        raise CoachError("give --video FILE (and --out DIR), or --record-demo DIR to record a shot to try")
    if not args.out:
        raise CoachError("give --out DIR for the report files")
    result = coach_shot(video, args.out, depth=depth, calib=args.calib, aimed_ball=args.aimed,
                        read_cue=not args.no_cue)
    if not args.json:
        print(result.text)
        print("wrote " + ", ".join(str(p) for p in result.files.values()), flush=True)
    answers = ask_about_shot(result.report, args.ask, echo=not args.json)
    if args.json:
        facts = result.report.to_dict()
        if answers:
            facts["answers"] = answers
        print(json.dumps(facts, indent=1))
    return 0


def ask_about_shot(report, questions: list[str], echo: bool = True) -> list[dict]:
    """Ask the agent ``questions`` about the shot in ``report``; print ``operator>``/``agent>``
    lines when ``echo``. The agent has no live view here: what the report cannot answer, it says."""
    if not questions:
        return []
    from agent.agent import Agent

    agent = Agent(None, shot=report)
    answers = []
    for question in questions:
        reply = agent.respond(question)
        if echo:
            print(f"operator> {question}\nagent>    {reply.text}", flush=True)
        answers.append({"question": question, "answer": reply.text, **reply.data})
    return answers


def _record_demo(args: argparse.Namespace):
    from sim.billiards.demo_shot import record_demo_shot
    from sim.collect import parse_size

    with_depth = bool(args.depth_demo or args.out)
    shot = record_demo_shot(args.record_demo, camera=args.camera, size=parse_size(args.size), depth=with_depth)
    print(f"recorded {shot.video} ({len(shot.record.times)} frames), sidecar {shot.sidecar}"
          + (f", depth {shot.depth}" if shot.depth else ""))
    if not args.out:
        cmd = f"embodied coach --video {shot.video}" + (f" --depth {shot.depth}" if shot.depth else "")
        print(f"analyse it with: {cmd} --out {shot.video.parent / 'report'}")
    return shot.video, shot.depth
