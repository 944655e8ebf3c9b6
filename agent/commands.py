"""Top-level commands that belong to no single package: `embodied demo`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the end-to-end demo on the embedded default (MuJoCo sim, small models)",
        description="Runs every stage that has landed, in order, writing all artefacts under "
        "--out: an expert rollout video, a recorded dataset read back, and (as the stack grows) "
        "policy training, closed-loop evaluation, perception, video QA and the agent.",
    )
    p.add_argument("--out", default="runs/demo", help="where the artefacts go (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="the smallest sizes, for a smoke test")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(args.out, quick=args.quick)
