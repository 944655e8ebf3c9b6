"""`embodied train`, `embodied eval`, `embodied dagger` and `embodied export`: the policy's subcommands
(heavy imports inside)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from common.config import add_dataclass_args
    from policy.dagger import DaggerConfig
    from policy.evaluate import EvalConfig
    from policy.export import ExportConfig
    from policy.offline_eval import OfflineEvalConfig
    from policy.train_config import add_arguments

    p = sub.add_parser("train", help="train or fine-tune the VLA policy on a LeRobot dataset",
                       description="Train the OpenVLA-style policy (full or --lora), resumable; "
                       "multi-GPU/multi-node with `torchrun --nproc_per_node N -m policy.train ...`.")
    add_arguments(p)
    p.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a policy checkpoint closed-loop in the sim, or offline "
                       "on a dataset's held-out episodes (--dataset)",
                       description="Closed loop: success rate per task with a 95 % Wilson interval "
                       "over fixed held-out seeds, mean episode length, rollout videos and a JSON. "
                       "Offline (--dataset DIR --episodes held-out), for robots we cannot simulate: "
                       "action L1 (raw and normalised, per dimension) and action-token accuracy of "
                       "the predicted chunks against the recorded ones, on the episodes the training "
                       "run held out (--holdout-episodes); same JSON conventions.")
    add_dataclass_args(e, EvalConfig, skip=["episodes"])
    offline = e.add_argument_group("offline evaluation on a dataset")
    add_dataclass_args(offline, OfflineEvalConfig, skip=_SHARED_EVAL_FLAGS)
    # One --episodes for both modes: a count in the sim, a selection of recorded episodes offline.
    e.add_argument("--episodes", default=None, metavar="N|held-out|all|3,4",
                   help="closed loop: episodes per task (default: 50); with --dataset: held-out "
                   "(the episodes the training run held out, the default), all, or indices such as "
                   "3,4 or 2-5")
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


# Flags both evaluations read; the offline group adds only what is its own (--dataset, --batch-size).
_SHARED_EVAL_FLAGS = ("checkpoint", "episodes", "out", "device")


def _eval(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from common.config import from_args
    from common.jsonable import to_jsonable
    from policy.errors import PolicyError
    from policy.evaluate import EvalConfig, evaluate

    if args.dataset:
        from policy.offline_eval import OfflineEvalConfig, evaluate_offline

        closed_only = [f.name for f in dataclasses.fields(EvalConfig)
                       if f.name not in _SHARED_EVAL_FLAGS and getattr(args, f.name, None) is not None]
        if closed_only:
            flag = "--" + closed_only[0].replace("_", "-")
            raise PolicyError(f"{flag} applies to the closed-loop evaluation in the sim, not with --dataset")
        result = evaluate_offline(from_args(OfflineEvalConfig, args))
    else:
        if args.batch_size is not None:
            raise PolicyError("--batch-size applies to offline evaluation (with --dataset DIR)")
        episodes = EvalConfig.episodes
        if args.episodes is not None:
            try:
                episodes = int(args.episodes)
            except ValueError:
                raise PolicyError(f"--episodes {args.episodes}: the closed-loop evaluation takes a "
                                  "number of episodes per task; held-out, all and indices need "
                                  "--dataset DIR") from None
        result = evaluate(from_args(EvalConfig, args, episodes=episodes))
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
