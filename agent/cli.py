"""The `embodied` command line.

Each package contributes its own subcommands through a ``register(subparsers)`` function in its
``cli`` module, so this file stays a thin dispatcher and ``embodied --help`` never imports torch or
MuJoCo: handlers import what they need when they run.

Errors meant for users (bad flags, missing files, unknown names) are ``common.errors.UserError``s
(or carry a truthy ``user_error`` attribute); they print as one line and exit with status 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from common.errors import is_user_error

# Module paths whose ``register(subparsers)`` adds subcommands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "agent.commands",
    "agent.coach_cli",
    "sim.cli",
    "perception.cli",
    "policy.cli",
    "video_qa.cli",
    "ros_nodes.cli",
    "bench.cli",
)

DESCRIPTION = """\
An embodied-agent and robotics control stack: MuJoCo worlds, streaming perception,
video question answering, an OpenVLA-style policy, ROS 2 nodes and a ZeroMQ server.

Start with `embodied demo`; every subcommand has its own --help.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embodied",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("embodied: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `embodied dataset info DIR | head`: the reader went away, which is not an error. Point
        # stdout at devnull so the interpreter's final flush does not raise again (the recipe in
        # Python's signal module documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - user errors become one line, bugs re-raise
        if is_user_error(exc):
            print(f"embodied {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
