"""Training settings and their flags, kept free of torch so `embodied --help` stays instant."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from policy.configuration_vla import VLAConfig

# VLAConfig fields the data or the trainer decide; not user flags.
_DERIVED = {"state_dim", "obs_image_size", "lora_rank", "lora_alpha"}


@dataclass
class TrainConfig:
    dataset: str = field(default="", metadata={"help": "LeRobot v3 dataset directory"})
    out: str = field(default="", metadata={"help": "run directory (default runs/policy/<time>)"})
    init: str = field(default="", metadata={"help": "checkpoint to fine-tune (its stats are validated against the dataset)"})
    resume: str = field(default="", metadata={"help": "run directory to continue from its latest checkpoint"})
    steps: int = field(default=1500, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "global batch (all ranks, all accumulation steps)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step and rank"})
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate; tiny models take a high one"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decoupled weight decay"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up from 0"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine floor as a fraction of lr"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters on the LM's linear layers only"})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank"})
    augment: bool = field(default=False, metadata={"help": "random resized crop + colour jitter; off by default because with fixed cameras a pixel's place is a place on the table, and a 0.85-area crop moves it by ~5 cm (what the policy must resolve)"})
    drop_noops: bool = field(default=True, metadata={"help": "drop idle frames (no motion, no gripper change)"})
    early_frames: int = field(default=0, metadata={"help": "with --early-repeat: the first N kept frames of each episode are drawn more often (where the policy decides which object to go for)"})
    early_repeat: int = field(default=1, metadata={"help": "times each early frame appears per epoch (1 = uniform)"})
    max_episodes: int = field(default=0, metadata={"help": "use only the first N episodes (0 = all)"})
    restat: bool = field(default=False, metadata={"help": "with --init: adopt the dataset's stats instead of failing on a mismatch"})
    stop_after: int = field(default=0, metadata={"help": "stop at this step although the schedule spans --steps (time-boxed runs; resume later)"})
    save_every: int = field(default=500, metadata={"help": "checkpoint every N steps (and at the end)"})
    log_every: int = field(default=25, metadata={"help": "metrics line every N steps"})
    seed: int = field(default=0, metadata={"help": "model init, data order and augmentation"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads; 1 because oversubscribed cores on a shared 2-core box run 5x slower (0 = torch default)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})


# --- flags ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from common.config import add_dataclass_args

    add_dataclass_args(parser, TrainConfig)
    group = parser.add_argument_group("model (ignored with --init/--resume, except --film, which "
                                       "adds FiLM to the checkpoint being fine-tuned)")
    for f in dataclasses.fields(VLAConfig):
        if f.name in _DERIVED:
            continue
        typ = {"int": int, "float": float, "str": str, "bool": bool}.get(str(f.type), f.type)
        flag = "--" + f.name.replace("_", "-")
        if typ is bool:
            group.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                               help=f"{f.metadata.get('help', '')} (default: {f.default})")
        else:
            group.add_argument(flag, dest=f.name, type=typ, default=None,
                               help=f"{f.metadata.get('help', '')} (default: {f.default})")
    parser.add_argument("--vision", dest="vision_path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--lm", dest="lm_path", default=None, help=argparse.SUPPRESS)


