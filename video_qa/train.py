"""Train a VideoLM on generated QA, evaluate it on held-out episodes, and run the ablation.

``train(cfg, model_cfg)`` generates (or reuses) the cached data, trains for ``cfg.steps`` AdamW steps
on training clips with training templates, saves ``run_dir/checkpoint`` and writes
``run_dir/eval.json``. ``ablation(cfg, model_cfg)`` trains two models with the same visual-token
budget and steps: uniform sampling + mean pooling vs motion sampling + TokenMining, and writes one
table.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from video_qa.configuration import VideoLMConfig
from video_qa.data import QA, QADataset, frame_labels, generate
from video_qa.errors import VideoQAError

SAMPLERS = ("uniform", "motion")
TRAIN_META = "qa_train.json"  # beside the checkpoint: which sampler chose its frames


@dataclass
class TrainQAConfig:
    data_dir: str = field(default="runs/video_qa/data", metadata={"help": "cached clips + qa.jsonl (generated if missing)"})
    n_billiards: int = field(default=80, metadata={"help": "shots to simulate (~3 s each on one core)"})
    n_tabletop: int = field(default=80, metadata={"help": "expert episodes (~1 s each)"})
    workers: int = field(default=1, metadata={"help": "processes simulating clips when data are generated"})
    sampler: str = field(default="motion", metadata={"help": "keyframes per clip: \"motion\" (MGSampler) or \"uniform\""})
    steps: int = field(default=1500, metadata={"help": "tiny model: ~10 min on one CPU core"})
    batch_size: int = 32
    lr: float = field(default=2e-3, metadata={"help": "tiny models from scratch like a high rate; cosine to 0"})
    warmup: int = 50
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = field(default=1, metadata={"help": "torch threads: on a shared 2-core box one thread is fastest"})
    log_every: int = 25
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present) | cpu | cuda"})
    eval_limit: int = field(default=0, metadata={"help": "questions per split to evaluate (0 = all)"})
    runs_root: str = "runs"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise VideoQAError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise VideoQAError("steps and batch_size must be >= 1")


_INDEX_CACHE: dict[tuple[str, str, str, int], np.ndarray] = {}


def frame_indices(frames: np.ndarray, sampler: str, budget: int) -> np.ndarray:
    from perception.sampling import get_sampler

    if len(frames) < budget:  # short clip: repeat frames rather than fail
        return np.linspace(0, len(frames) - 1, budget).round().astype(np.int64)
    return np.asarray(get_sampler(sampler).select(frames, budget), np.int64)


def example_for(dataset: QADataset, q: QA, sampler: str, budget: int,
                features: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sampled frames (or their cached patch features) and times for one question; indices
    are cached per clip and sampler."""
    frames, times, _ = dataset.clip(q.clip)
    key = (str(dataset.root), q.clip, sampler, budget)
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = frame_indices(frames, sampler, budget)
    idx = _INDEX_CACHE[key]
    ex = {"frames": frames[idx], "times": [float(times[i]) for i in idx],
          "question": q.question, "answer": q.answer}
    ex["frame_labels"], ex["frame_mask"] = frame_labels(dataset.clip(q.clip)[2], times[idx])
    if features is not None:
        ex["patches"] = features[q.clip][idx]
    return ex


def clip_features(model: Any, dataset: QADataset, clips: set[str]) -> dict[str, Any]:
    """Frozen-encoder patch features of every frame of ``clips``, computed once."""
    import torch

    out = {}
    with torch.no_grad():
        for clip in sorted(clips):
            frames = dataset.clip(clip)[0]
            out[clip] = torch.cat([model.patches(model.preprocess(frames[i:i + 64]))
                                   for i in range(0, len(frames), 64)])
    return out


def train(cfg: TrainQAConfig, model_cfg: VideoLMConfig, run_dir: str | Path | None = None,
          log: Any = print) -> Path:
    import torch

    from sim.runs import RunLog, new_run_dir
    from video_qa.evaluate import evaluate
    from video_qa.modeling import VideoLM

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generate(cfg.data_dir, cfg.n_billiards, cfg.n_tabletop, log=log, workers=cfg.workers)
    dataset = QADataset(cfg.data_dir)
    train_qas = dataset.select("train", heldout=False)
    if not train_qas:
        raise VideoQAError(f"no training questions in {cfg.data_dir}")
    run_dir = Path(run_dir) if run_dir else new_run_dir("train_qa", cfg.runs_root)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = VideoLM(model_cfg).to(device)  # batches, features and generation follow the model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))

    features = None
    if model_cfg.freeze_vision:
        features = clip_features(model, dataset, {q.clip for q in train_qas})
        if log:
            log(f"cached frozen patch features of {len(features)} clips")
    config = {"train": asdict(cfg), "model": model_cfg.to_dict(), "train_questions": len(train_qas)}
    t0 = time.time()
    with RunLog(run_dir, config) as runlog:
        model.train()
        for step in range(cfg.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            batch_qas = [train_qas[i] for i in rng.integers(len(train_qas), size=cfg.batch_size)]
            batch = model.collate([example_for(dataset, q, cfg.sampler, model_cfg.num_frames,
                                               features) for q in batch_qas])
            loss = model(**batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                row = {"step": step, "loss": round(float(loss.detach()), 4),
                       "lr": lr_at(step), "elapsed_s": round(time.time() - t0, 1)}
                runlog.log(**row)
                if log:
                    log(json.dumps(row))
        ckpt = model.save_pretrained(run_dir / "checkpoint")
        (ckpt / TRAIN_META).write_text(json.dumps({"sampler": cfg.sampler,
                                                   "data_dir": cfg.data_dir}, indent=2))
        result = evaluate(model, dataset, cfg.sampler, "test", limit=cfg.eval_limit or None)
        result["train_seconds"] = round(time.time() - t0, 1)
        (run_dir / "eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
        runlog.log(event="eval", overall=result["overall"],
                   overall_non_descriptive=result["overall_non_descriptive"])
    if log:
        log(f"overall {result['overall']:.3f} (non-descriptive "
            f"{result['overall_non_descriptive']:.3f}); run dir {run_dir}")
    return run_dir


ABLATION_ARMS = {"uniform+mean": ("uniform", "mean"), "motion+mining": ("motion", "mining")}
EVENT_TYPES = ("counting", "ordering", "attribute", "timestamp", "yesno", "state")


def ablation(cfg: TrainQAConfig, model_cfg: VideoLMConfig, log: Any = print) -> Path:
    """Both arms, same data, steps, seed and visual-token budget; one table in ``ablation.json``."""
    from sim.runs import new_run_dir

    root = new_run_dir("ablation_qa", cfg.runs_root)
    table: dict[str, Any] = {}
    for name, (sampler, pooling) in ABLATION_ARMS.items():
        run = train(replace(cfg, sampler=sampler), replace(model_cfg, pooling=pooling),
                    run_dir=root / name.replace("+", "_"), log=log)
        res = json.loads((run / "eval.json").read_text())
        table[name] = {"sampler": sampler, "pooling": pooling,
                       "visual_tokens": res["visual_tokens"], "accuracy": res["accuracy"],
                       "overall": res["overall"], "timestamp_mae_s": res["timestamp_mae_s"],
                       "event_and_timestamp": float(np.mean([res["accuracy"][k] for k in EVENT_TYPES
                                                             if k in res["accuracy"]]))}
    out = {"arms": table, "steps": cfg.steps, "tokens_per_frame": model_cfg.tokens_per_frame,
           "num_frames": model_cfg.num_frames, "event_types": list(EVENT_TYPES)}
    (root / "ablation.json").write_text(json.dumps(out, indent=2))
    if log:
        log(json.dumps(out, indent=2))
    return root
