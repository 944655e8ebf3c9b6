"""Top-level commands that belong to no single package: `embodied demo` and `embodied agent`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the end-to-end demo on the embedded default (MuJoCo sim, small models)",
        description="Runs every stage in order, writing all artefacts under --out: an expert rollout "
        "video, a recorded dataset read back, the policy evaluated closed-loop, perception and video "
        "QA, and a short operator conversation with the agent.",
    )
    p.add_argument("--out", default="runs/demo", help="where the artefacts go (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="the smallest sizes, for a smoke test")
    p.set_defaults(func=_demo)

    a = sub.add_parser("agent", help="talk to the operator's agent (questions and commands)")
    asub = a.add_subparsers(dest="agent_command", metavar="<agent-command>")
    chat = asub.add_parser("chat", help="an interactive prompt in the terminal",
                           description="Type a question (\"what do you see?\", \"where is the red cube?\") or a "
                           "command (\"pick up the red cube\"). Ctrl-C stops a running command; Ctrl-D or "
                           "'quit' leaves.")
    chat.add_argument("--checkpoint", default="checkpoints/vla-default", help="policy checkpoint directory (default: checkpoints/vla-default)")
    chat.add_argument("--qa", default="", help="video-QA checkpoint directory (optional)")
    chat.add_argument("--task", default="PickUp", help="the starting scene's task family (default: PickUp)")
    chat.add_argument("--seed", type=int, default=0, help="the scene's seed (default: 0)")
    chat.set_defaults(func=_chat)
    a.set_defaults(func=lambda args: a.print_help() or 2)


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(args.out, quick=args.quick)


def build_agent(checkpoint: str, qa: str, task: str, seed: int):
    """An Agent over a fresh SimWorld with whatever models exist (missing ones are reported)."""
    from pathlib import Path

    from agent.agent import Agent
    from agent.world import SimWorld

    policy = None
    if checkpoint and Path(checkpoint).is_dir():
        from policy.predict import Policy

        policy = Policy.from_pretrained(checkpoint)
    qa_model = None
    if qa:
        from video_qa.ask import load_qa

        qa_model = load_qa(qa)
    return Agent(SimWorld(task, seed=seed), policy=policy, qa=qa_model)


def _chat(args: argparse.Namespace) -> int:
    import signal

    agent = build_agent(args.checkpoint, args.qa, args.task, args.seed)
    if agent.policy is None:
        print(f"(no policy at {args.checkpoint}: I can answer questions but not move)")
    print("Ask a question or give a command; 'quit' leaves.")
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *a: agent.stop())  # Ctrl-C stops the robot, not the program
    try:
        while True:
            try:
                text = input("you> ")
            except EOFError:
                print()
                break
            if text.strip().lower() in ("quit", "exit", "bye"):
                break
            if not text.strip():
                continue
            print("agent> " + agent.handle(text).text, flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
        agent.world.close()
    return 0
