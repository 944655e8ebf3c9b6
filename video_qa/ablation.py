"""The ablation: same data, steps, seed and visual-token budget, two ways to pick and pool frames.

Uniform sampling + mean pooling against motion sampling + TokenMining, each arm a full
:func:`video_qa.train.train` run; one table in ``ablation.json``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_json
from common.runs import new_run_dir
from video_qa.configuration_train import TrainQAConfig
from video_qa.configuration_videolm import VideoLMConfig
from video_qa.dataset import generate
from video_qa.train import pretrain_encoder, train

ABLATION_ARMS = {"uniform+mean": ("uniform", "mean"), "motion+mining": ("motion", "mining")}
EVENT_TYPES = ("counting", "ordering", "attribute", "timestamp", "yesno", "state")


def ablation(cfg: TrainQAConfig, model_cfg: VideoLMConfig, log: Any = print) -> Path:
    """Both arms, same data, steps, seed and visual-token budget; one table in ``ablation.json``."""
    root = new_run_dir("ablation_qa", cfg.runs_root)
    if model_cfg.vision_path is None and cfg.encoder_steps > 0:  # one encoder for both arms
        generate(cfg.data_dir, cfg.n_billiards, cfg.n_tabletop, cfg.data_seed, log=log,
                 workers=cfg.workers)
        model_cfg = replace(model_cfg, vision_path=str(pretrain_encoder(cfg, model_cfg, root, log)))
    table: dict[str, Any] = {}
    for name, (sampler, pooling) in ABLATION_ARMS.items():
        run = train(replace(cfg, sampler=sampler), replace(model_cfg, pooling=pooling),
                    run_dir=root / name.replace("+", "_"), log=log)
        res = json.loads((run / "eval.json").read_text())
        table[name] = {"sampler": sampler, "pooling": pooling,
                       "visual_tokens": res["visual_tokens"], "accuracy": res["accuracy"],
                       "overall": res["overall"], "timestamp_mae_s": res["timestamp_mae_s"],
                       "overall_non_descriptive": res["overall_non_descriptive"],
                       "by_source": res["by_source"],
                       "event_and_timestamp": float(np.mean([res["accuracy"][k] for k in EVENT_TYPES
                                                             if k in res["accuracy"]]))}
    # With grounding on, questions also read every cell of the sampled frames (not through the
    # K tokens), so the pooling matters less; --no-grounding isolates sampling + pooling.
    out = {"arms": table, "steps": cfg.steps, "grounding": model_cfg.grounding,
           "tokens_per_frame": model_cfg.tokens_per_frame,
           "num_frames": model_cfg.num_frames, "event_types": list(EVENT_TYPES)}
    write_json(root / "ablation.json", out)
    if log:
        log(json.dumps(out, indent=2))
    return root
