"""`embodied bench <name>`: a registry of benchmark modules, each with ``add_arguments`` and ``run``.

A benchmark module exposes ``DESCRIPTION``, optional ``add_arguments(parser)`` and
``run(args) -> dict`` (the results without the machine record); this file adds the shared flags and
hands the result to :func:`bench.common.emit`.
"""

from __future__ import annotations

import argparse
import importlib

# name -> module path, in the order `embodied bench --help` lists them.
BENCHMARKS: dict[str, str] = {
    "sim": "bench.sim_bench",
    "sampling": "bench.sampling_bench",
    "pose": "bench.pose_bench",
    "policy": "bench.policy_bench",
    "niah": "bench.niah_bench",
    "ros": "bench.ros_bench",
    "world": "bench.world_bench",
    "realtime": "bench.realtime_bench",
    "billiards-physics": "bench.billiards_physics_bench",
    "billiards": "bench.billiards_bench",
    "agent": "bench.agent_bench",
}


def _load(name: str):
    # Benchmark modules import their heavy dependencies inside ``run``, so this stays cheap.
    return importlib.import_module(BENCHMARKS[name])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark and write its JSON",
                       description="Benchmarks print ratios against a baseline measured in the "
                       "same run; the JSON result is the last thing printed.")
    bsub = p.add_subparsers(dest="bench_name", metavar="<benchmark>")
    for name in BENCHMARKS:
        module = _load(name)
        bp = bsub.add_parser(name, help=getattr(module, "DESCRIPTION", name))
        bp.add_argument("--quick", action="store_true", help="small sizes; about a minute")
        bp.add_argument("--out", metavar="FILE.json", help="also write the JSON result here")
        if hasattr(module, "add_arguments"):
            module.add_arguments(bp)
        bp.set_defaults(func=_run_one, bench_module=module)
    allp = bsub.add_parser("all", help="run every available benchmark")
    allp.add_argument("--quick", action="store_true", help="small sizes; about a minute each")
    allp.add_argument("--out-dir", metavar="DIR", help="write NAME.json per benchmark here")
    allp.set_defaults(func=_run_all)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _run_one(args: argparse.Namespace) -> int:
    from bench.common import emit

    result = args.bench_module.run(args)
    emit(args.bench_name, result, args.out, args.quick)
    return 0


def _run_all(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.common import emit

    for name in BENCHMARKS:
        module = _load(name)
        ns = argparse.Namespace(quick=args.quick, out=None, bench_name=name)
        parser = argparse.ArgumentParser()
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
        ns = parser.parse_args([], namespace=ns)
        out = Path(args.out_dir) / f"{name}.json" if args.out_dir else None
        emit(name, module.run(ns), out, args.quick)
    return 0
