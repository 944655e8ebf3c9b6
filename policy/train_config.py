"""Training settings and their flags, kept free of torch so `embodied --help` stays instant.

Both dataclasses become flags through ``common.config``: ``TrainConfig`` (the loop) and
``VLAConfig`` (the model built from scratch), so every flag's help is the field's own.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from common.config import add_dataclass_args, from_args
from policy.configuration_vla import VLAConfig

# VLAConfig fields the data (state, action and image sizes) or the trainer decide; not user flags (LoRA's rank is ``--lora-rank``
# of TrainConfig, applied by the trainer).
_DERIVED = ("state_dim", "action_dim", "obs_image_size", "lora_rank", "lora_alpha")
# Where the data comes from: a dataset, or the run being resumed (its config names the dataset).
_SOURCE = ("dataset", "resume")


@dataclass
class TrainConfig:
    dataset: str = field(default="", metadata={"help": "LeRobot v3 dataset directory (required unless --resume)", "metavar": "DIR"})
    out: str = field(default="", metadata={"help": "run directory (default runs/policy/<time>)"})
    init: str = field(default="", metadata={"help": "checkpoint to fine-tune (its stats are validated against the dataset)"})
    resume: str = field(default="", metadata={"help": "run directory to continue from its latest checkpoint, with its own settings", "metavar": "RUN_DIR"})
    steps: int = field(default=1500, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "global batch (all ranks, all accumulation steps)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step and rank"})
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate; tiny models take a high one"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decoupled weight decay"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up from 0"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine floor as a fraction of lr"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters on the LM's linear layers only"})
    lora_rank: int = field(default=0, metadata={"help": "LoRA rank: with --lora (0 = 32), and of the adapters on a pretrained LM (--lm smollm2; 0 = 8)", "aliases": ("--lora-r",)})
    augment: bool = field(default=False, metadata={"help": "random resized crop + colour jitter; off by default because with fixed cameras a pixel's place is a place on the table, and a 0.85-area crop moves it by ~5 cm (what the policy must resolve)"})
    drop_noops: bool = field(default=True, metadata={"help": "drop idle frames (no motion, no gripper change)"})
    early_frames: int = field(default=0, metadata={"help": "with --early-repeat: the first N kept frames of each episode are drawn more often (where the policy decides which object to go for)"})
    early_repeat: int = field(default=1, metadata={"help": "times each early frame appears per epoch (1 = uniform)"})
    max_episodes: int = field(default=0, metadata={"help": "use only the first N episodes (0 = all)"})
    holdout_episodes: int = field(default=0, metadata={"help": "hold the dataset's last N episodes out of training; the checkpoint records the split, and `embodied eval --dataset DIR --episodes held-out` scores the policy on them (offline, for robots we cannot simulate)", "metavar": "N"})
    camera_map: str = field(default="", metadata={"help": "feed dataset cameras to model inputs of other names, DATASET=MODEL pairs: top=agentview,gripper=wrist (with --init, the checkpoint's inputs); without it each model input (--cameras) reads the dataset camera of the same name", "metavar": "MAP"})
    rechunk: int = field(default=0, metadata={"help": "with --init: predict K actions per chunk instead of the checkpoint's own number; the actions it predicted stay as they were (the LM is causal), added ones start as copies of its last, so a short fine-tune teaches them (0 = keep its chunk)", "metavar": "K"})
    restat: bool = field(default=False, metadata={"help": "with --init: adopt the dataset's stats instead of failing on a mismatch"})
    stop_after: int = field(default=0, metadata={"help": "stop at this step although the schedule spans --steps (time-boxed runs; resume later)"})
    save_every: int = field(default=500, metadata={"help": "checkpoint every N steps (and at the end)"})
    log_every: int = field(default=25, metadata={"help": "metrics line every N steps"})
    bundle_text_encoder: bool = field(default=False, metadata={"help": "with --text-encoder minilm: copy the encoder's files (91 MB) into the final checkpoint, so it loads where the package is not installed; off by default: the checkpoint names the encoder (package, version, weight hash) and stays small"})
    seed: int = field(default=0, metadata={"help": "model init, data order and augmentation"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads; 1 because oversubscribed cores on a shared 2-core box run 5x slower (0 = torch default)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})


# --- flags ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``embodied train``'s flags: the loop's, then the model's (one spelling each)."""
    source = parser.add_mutually_exclusive_group(required=True)
    add_dataclass_args(source, TrainConfig,
                       skip=[f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SOURCE])
    add_dataclass_args(parser, TrainConfig, skip=_SOURCE)
    group = parser.add_argument_group("model (ignored with --init/--resume, except --film, which "
                                      "adds FiLM to the checkpoint being fine-tuned, and "
                                      "--committed-steps, which teaches it real-time chunking; "
                                      "--text-encoder minilm conditions on pretrained MiniLM; "
                                      "--lm smollm2 builds on pretrained SmolLM2 under LoRA)")
    add_dataclass_args(group, VLAConfig, skip=_DERIVED)
    # older spellings, accepted for one release (--lm DIR became --lm-path DIR: --lm now names a
    # pretrained base, as in `embodied train-qa`)
    group.add_argument("--vision", dest="vision_path", default=None, help=argparse.SUPPRESS)


def model_config_from_args(args: argparse.Namespace) -> VLAConfig:
    """The model flags only: ``--lora-rank`` is the trainer's and must not reach VLAConfig.lora_rank
    (which says the checkpoint already carries adapters)."""
    flags = {k: v for k, v in vars(args).items() if k not in _DERIVED}
    return from_args(VLAConfig, argparse.Namespace(**flags))
