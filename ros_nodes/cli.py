"""`embodied serve` (the ZeroMQ inference server) and `embodied ros ...` (nodes, graphs, the demo)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="serve a policy to robots over ZeroMQ",
        description="Runs the models on this machine for robots elsewhere. Binds 127.0.0.1 by default: "
        "pass --bind tcp://0.0.0.0:5555 to expose it, ideally with CURVE keys (--curve-secret, "
        "--curve-authorized). Robots use ros_nodes.zmq_client.RemotePolicy (numpy+pyzmq+msgpack only).")
    serve.add_argument("--policy", required=True, metavar="CKPT",
                       help="policy checkpoint directory (or, with --backend onnx, an `embodied export` directory)")
    serve.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                       help="torch (eager) or onnx (ONNX Runtime on the exported graph; a checkpoint is "
                            "exported once into the cache) (default: %(default)s)")
    serve.add_argument("--quantize", choices=("none", "int8"), default="none",
                       help="with --backend onnx: run the int8 graph (default: %(default)s)")
    serve.add_argument("--bind", default="tcp://127.0.0.1:5555",
                       help="ZeroMQ endpoint, tcp://HOST:PORT (default: %(default)s). Keep the port below "
                            "the kernel's ephemeral range (Linux: 32768 and up): a robot that keeps "
                            "reconnecting to a stopped server on an ephemeral port can take that port "
                            "itself, and the restarted server cannot bind it")
    serve.add_argument("--max-batch", type=int, default=8,
                       help="requests batched per forward pass, at least 1 (default: %(default)s)")
    serve.add_argument("--curve-secret", metavar="FILE", help="server secret key file (zmq certificate)")
    serve.add_argument("--curve-authorized", metavar="DIR", help="directory of allowed client public keys")
    serve.add_argument("--curve-encrypt-only", action="store_true",
                       help="CURVE without --curve-authorized: encrypt, but accept any client key")
    serve.set_defaults(func=_serve)

    ros = sub.add_parser("ros", help="ROS 2: run nodes, launch graphs, the closed-loop demo",
                         description="The stack as ROS 2 nodes (real rclpy). Topics: camera/<cam>/image_raw, "
                         "camera/<cam>/camera_info, robot/cmd_twist, robot/cmd_gripper, robot/instruction, "
                         "camera/<cam>/depth, camera/<cam>/pose, sim/episode, policy/status, "
                         "perception/objects (the JSON object list), perception/markers, diagnostics, "
                         "perception/cue_pose, perception/keyframes, agent/command, "
                         "qa/question -> qa/answer, agent/request -> agent/reply (JSON with request ids).")
    rsub = ros.add_subparsers(dest="ros_command", metavar="<ros-command>")
    up = rsub.add_parser("up", help="start a graph of nodes from a TOML/JSON file; Ctrl-C stops them all")
    up.add_argument("--config", required=True, metavar="FILE", help="[[node]] entries: node, name, params")
    up.set_defaults(func=_up)
    node = rsub.add_parser("node", help="run one node in the foreground")
    node.add_argument("name", help="sim_robot | policy | camera | perception | qa | agent | recorder")
    node.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                      help="a node parameter (value parsed as JSON/YAML; KEY:=VALUE as in ros2 run also works), repeatable")
    node.set_defaults(func=_node)
    record = rsub.add_parser(
        "record", help="record topics to a rosbag2 directory (what the camera node replays)",
        description="Records the named topics, as they were on the wire and stamped on arrival, into a new rosbag2 "
        "directory (sqlite3; the rosbags library, no ros2 CLI needed) until Ctrl-C or --duration. Replay it with "
        "`embodied ros node camera -p source:=BAG`: an RGB-D recording of camera/<cam>/{image_raw, depth, "
        "camera_info, pose} feeds the perception node as the live cameras did.")
    record.add_argument("--out", required=True, metavar="BAG", help="the recording's directory (must not exist)")
    record.add_argument("--topics", required=True, nargs="+", metavar="TOPIC",
                        help="topics to record, e.g. camera/agentview/image_raw camera/agentview/depth "
                             "camera/agentview/camera_info camera/agentview/pose")
    record.add_argument("--duration", type=float, default=0.0, metavar="S",
                        help="stop after S seconds (default: 0, until Ctrl-C)")
    record.set_defaults(func=_record)
    demo = rsub.add_parser("demo", help="sim robot <-> policy through ROS topics; prints task success",
                           description="Runs the same held-out seeds as `embodied eval`, in lock-step, so the "
                           "success rate through ROS should equal the in-process one.")
    demo.add_argument("--checkpoint", default="checkpoints/vla-default", help="policy checkpoint (default: %(default)s)")
    demo.add_argument("--server", default="", help="use an `embodied serve` endpoint instead of a local model")
    demo.add_argument("--task", default="PickUp",
                      help="tabletop task family the sim robot runs (default: %(default)s)")
    demo.add_argument("--episodes", type=int, default=10,
                      help="episodes to run, one seed each from --seed on (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=100000, help="first held-out seed (default: %(default)s)")
    demo.add_argument("--out", metavar="FILE.json", help="write the result JSON here")
    demo.set_defaults(func=_demo)
    ros.set_defaults(func=lambda args: ros.print_help() or 2)


def inference_threads() -> int:
    """Torch threads for a server: all cores but one, which the receive loop keeps (on 2 cores,
    2 torch threads made each ZeroMQ round trip 4 ms slower than 1; `embodied bench ros`)."""
    import os

    return max(1, (os.cpu_count() or 2) - 1)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from ros_nodes.zmq_server import InferenceServer, ServerConfig

    # Settings first: a typo in --bind should not wait for a model to load.
    cfg = ServerConfig(endpoint=args.bind, max_batch=args.max_batch, curve_secret_key=args.curve_secret,
                       curve_authorized_dir=args.curve_authorized, curve_encrypt_only=args.curve_encrypt_only)

    from policy.backends import load_policy
    from ros_nodes.services import PolicyService

    if args.backend == "torch":
        import torch

        torch.set_num_threads(inference_threads())
    policy = load_policy(args.policy, backend=args.backend, quantize=args.quantize,
                         threads=inference_threads())
    services = [PolicyService(policy, {"checkpoint": args.policy, "backend": args.backend,
                                       "quantize": args.quantize})]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    with InferenceServer(services, cfg) as server:
        print(f"serving {', '.join(server.services)} on {server.endpoint} (Ctrl-C to stop)", flush=True)
        try:
            while not stop.is_set():
                if server.failed.wait(0.5):
                    # Exit non-zero so a supervisor (systemd, Docker, k8s) restarts the process.
                    print(f"error: the inference server stopped serving: {server.failure}", file=sys.stderr,
                          flush=True)
                    return 1
        except KeyboardInterrupt:
            pass
    return 0


def _up(args: argparse.Namespace) -> int:
    import time

    from ros_nodes.launch import Graph, load_graph

    graph = Graph(load_graph(args.config)).start()
    slow = graph.not_ready()
    note = f" ({', '.join(slow)} still starting)" if slow else ""
    print(f"started {len(graph.procs)} node(s){note}; Ctrl-C stops them", flush=True)
    try:
        while len(graph.poll()) < len(graph.procs):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    codes = graph.stop()
    print("stopped: " + ", ".join(f"{k}={v}" for k, v in codes.items()))
    return 0


def _node(args: argparse.Namespace) -> int:
    import importlib
    import json

    from ros_nodes.launch import NODES, LaunchError, NodeSpec, ros_args

    if args.name not in NODES:
        raise LaunchError(f"unknown node {args.name!r}; known nodes: {', '.join(NODES)}")
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        key = key[:-1] if key.endswith(":") else key  # ROS's own spelling, KEY:=VALUE, too
        if not sep or not key:
            raise LaunchError(f"--param takes KEY=VALUE (or KEY:=VALUE), got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    module = importlib.import_module(NODES[args.name])
    return module.main(["embodied", *ros_args(NodeSpec(args.name, params=params))])


def _record(args: argparse.Namespace) -> int:
    from ros_nodes.launch import NodeSpec, ros_args
    from ros_nodes.recorder import main

    spec = NodeSpec("recorder", params={"out": args.out, "topics": list(args.topics), "duration_s": args.duration})
    return main(["embodied", *ros_args(spec)])


def _demo(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ros_nodes.demo import RosDemoConfig, run_ros_demo
    from common.atomic import write_json

    if not args.server and not Path(args.checkpoint).is_dir():
        from ros_nodes.launch import LaunchError

        raise LaunchError(f"no policy checkpoint at {args.checkpoint} (train one with `embodied train`)")
    cfg = RosDemoConfig(checkpoint="" if args.server else args.checkpoint, server=args.server, task=args.task,
                        episodes=args.episodes, seed=args.seed)
    result = run_ros_demo(cfg)
    print(f"{result['task']}: success {result['success_rate']:.0%} over {result['episodes']} episodes "
          f"(95% CI {result['ci95'][0]:.0%}-{result['ci95'][1]:.0%}) through ROS 2")
    if args.out:
        write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("task", "episodes", "success_rate", "ci95")}))
    return 0
