"""Top-level commands that belong to no single package: `embodied demo` and `embodied agent`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import UserError

if TYPE_CHECKING:
    from agent.agent import Agent, AgentConfig

POLICY_CHECKPOINT = "checkpoints/vla-default"  # the shipped models, relative to the repository root
QA_CHECKPOINT = "checkpoints/videoqa-default"


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
                           description="Type a question (\"what do you see?\", \"where is the red cube?\", "
                           "\"what did the robot just do?\", a question about the video) or a command "
                           "(\"pick up the red cube\"). The shipped policy and video-QA model load by default. "
                           "A request that fails is answered with an error line and the conversation goes on. "
                           "Ctrl-C stops a running command; Ctrl-D or 'quit' leaves.")
    chat.add_argument("--checkpoint", default=POLICY_CHECKPOINT, metavar="DIR",
                      help=f"policy checkpoint directory (default: {POLICY_CHECKPOINT})")
    chat.add_argument("--no-policy", action="store_true",
                      help="load no policy: the agent answers questions but refuses commands")
    chat.add_argument("--qa", default=QA_CHECKPOINT, metavar="DIR",
                      help=f"video-QA checkpoint directory (default: {QA_CHECKPOINT})")
    chat.add_argument("--no-qa", action="store_true",
                      help="load no video-QA model: questions about the video are declined")
    chat.add_argument("--task", default="PickUp", help="the starting scene's task family (default: PickUp)")
    chat.add_argument("--seed", type=int, default=0, help="the scene's seed (default: 0)")
    chat.add_argument("--world-source", choices=("perception", "ground-truth"), default="perception",
                      help="where the agent's knowledge of the objects comes from: the scene perceiver on "
                      "the cameras' RGB-D frames, or the simulator's true state (for debugging) "
                      "(default: perception)")
    chat.add_argument("--model-deadline-ms", type=float, default=None, metavar="MS",
                      help="a policy call slower than this stops the robot; raise it on a slow or "
                      "shared CPU (default: 2000, AgentConfig.model_deadline_ms)")
    chat.add_argument("--shot", default=None, metavar="DIR",
                      help="a billiards shot's report (the --out of `embodied coach`, or its report.json): "
                      "questions such as \"which ball did the cue ball hit first?\" are answered from it")
    chat.set_defaults(func=_chat)
    a.set_defaults(func=lambda args: a.print_help() or 2)


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(args.out, quick=args.quick)


def build_agent(checkpoint: str | None = POLICY_CHECKPOINT, qa: str | None = QA_CHECKPOINT,
                task: str = "PickUp", seed: int = 0, config: "AgentConfig | None" = None,
                world_source: str = "perception") -> "Agent":
    """An Agent over a fresh SimWorld with the named models (None or "" loads none).

    A named checkpoint that is not there is the operator's mistake, said at once (UserError), not a
    chat that later refuses every command. The world renders at its own size for the video memory;
    the agent gives the policy its frames at the policy's size.
    """
    from agent.agent import Agent
    from agent.world import SimWorld

    policy = None
    if checkpoint:
        _need_dir(checkpoint, "policy", "--no-policy")
        from policy.predict import Policy

        policy = Policy.from_pretrained(checkpoint)
    qa_model = None
    if qa:
        _need_dir(qa, "video-QA", "--no-qa")
        from video_qa.ask import load_qa

        qa_model = load_qa(qa)
    world = SimWorld(task, seed=seed, world_source=world_source)
    return Agent(world, policy=policy, qa=qa_model, config=config)


def _need_dir(path: str, what: str, flag: str) -> None:
    if not Path(path).is_dir():
        raise UserError(f"no {what} checkpoint at {path} (name one, or pass {flag})")


def _chat(args: argparse.Namespace) -> int:
    import signal

    from agent.agent import AgentConfig

    config = AgentConfig()
    if args.model_deadline_ms is not None:
        config.model_deadline_ms = args.model_deadline_ms
    agent = build_agent(None if args.no_policy else args.checkpoint, None if args.no_qa else args.qa,
                        args.task, args.seed, config, args.world_source)
    if args.shot:
        agent.load_shot(args.shot)  # a missing or foreign report is one line (BilliardsQAError)
    loaded = [f"policy {args.checkpoint}" if agent.policy is not None else "no policy (questions only)",
              f"video-QA {args.qa}" if agent.qa is not None else "no video-QA model"]
    if args.shot:
        loaded.append(f"billiards shot report {args.shot}")
    print(f"Loaded {'; '.join(loaded)}. Scene: {args.task}, seed {args.seed}; objects from "
          f"{'the cameras (perception)' if args.world_source == 'perception' else 'the simulator state'}.")
    print("Ask a question or give a command; Ctrl-C stops a running command, 'quit' or Ctrl-D leaves.")
    running = False

    def on_interrupt(signum: int, frame: object) -> None:
        # Ctrl-C stops the robot, never the conversation. At the prompt it does nothing: the model
        # libraries' threads may take the signal, so it often reaches Python only once the line is
        # typed, and a late hint there would read as a reply to that line.
        if running:
            agent.stop()

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, on_interrupt)
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
            running = True
            try:
                reply = agent.respond(text)
            finally:
                running = False
            print(f"agent> {reply.text}", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
        agent.world.close()
    return 0
