"""`embodied train`, `embodied eval`, `embodied dagger` and `embodied export`: the policy's subcommands
(heavy imports inside)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from common.config import add_dataclass_args
    from policy.dagger import DaggerConfig
    from policy.evaluate import EvalConfig
    from policy.export import ExportConfig
    from policy.train_config import add_arguments

    p = sub.add_parser("train", help="train or fine-tune the VLA policy on a LeRobot dataset",
                       description="Train the OpenVLA-style policy (full or --lora), resumable; "
                       "multi-GPU/multi-node with `torchrun --nproc_per_node N -m policy.train ...`.")
    add_arguments(p)
    p.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a policy checkpoint closed-loop in the sim",
                       description="Success rate per task with a 95 % Wilson interval over fixed "
                       "held-out seeds, mean episode length, rollout videos and a JSON.")
    add_dataclass_args(e, EvalConfig)
    e.set_defaults(func=_eval)

    d = sub.add_parser("dagger", help="policy-driven, expert-labelled episodes (DAgger) into a dataset",
                       description="The checkpoint drives the sim while the scripted expert labels every "
                       "frame with what it would do there; failed rollouts are kept. Point --out at a "
                       "directory of expert demonstrations to aggregate both, then fine-tune with "
                       "`embodied train --dataset DIR --init CKPT`. Re-running resumes.")
    add_dataclass_args(d, DaggerConfig)
    d.set_defaults(func=_dagger)

    x = sub.add_parser("export", help="export a policy checkpoint to ONNX (optionally int8) for ONNX Runtime",
                       description="Writes one ONNX graph of the whole per-step computation (uint8 camera "
                       "images, state and the instruction's token ids in; the un-normalised action chunk "
                       "out; dynamic batch), the tokenizer, the statistics and manifest.json. Run it with "
                       "`embodied eval|serve --backend onnx`. Parallel-decoding checkpoints only. A "
                       "--text-encoder minilm checkpoint also gets MiniLM as a second graph "
                       "(text_encoder.onnx, run once per instruction) with its tokenizer. "
                       "--format checkpoint instead copies the checkpoint with its text encoder "
                       "bundled, for a self-contained torch deployment.")
    add_dataclass_args(x, ExportConfig)
    x.set_defaults(func=_export)


def _train(args: argparse.Namespace) -> int:
    from policy.train import run_from_args

    return run_from_args(args)


def _eval(args: argparse.Namespace) -> int:
    import json

    from common.config import from_args
    from common.jsonable import to_jsonable
    from policy.evaluate import EvalConfig, evaluate

    result = evaluate(from_args(EvalConfig, args))
    print(json.dumps(to_jsonable({k: v for k, v in result.items() if k != "config"}), indent=2))
    return 0


def _dagger(args: argparse.Namespace) -> int:
    import json

    from common.config import from_args
    from policy.dagger import DaggerConfig, run_dagger

    summary = run_dagger(from_args(DaggerConfig, args))
    print(json.dumps(summary, indent=2))
    return 0 if summary["complete"] else 1


def _export(args: argparse.Namespace) -> int:
    import json

    from common.config import from_args
    from policy.export import ExportConfig, export_checkpoint, read_manifest

    cfg = from_args(ExportConfig, args)
    out = export_checkpoint(cfg.checkpoint, cfg.out, fmt=cfg.format, quantize=cfg.quantize,
                            opset=cfg.opset)
    if cfg.format == "checkpoint":
        print(json.dumps({"out": str(out), "bundled": "text_encoder"}, indent=2))
        return 0
    manifest = read_manifest(out)
    print(json.dumps({"out": str(out), "graphs": manifest["graphs"],
                      "export_check": manifest["export_check"]}, indent=2))
    return 0
