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
from video_qa.data import QA, QADataset, cell_labels, frame_labels, generate, questions_for
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
    # The fixed qa.jsonl holds one round of questions per clip (one yes/no pair, one spatial pair,
    # one time): ~10 per clip, too few for a tiny LM to learn which words of a question name which
    # thing in the frames. Fresh questions draw a new round about a random training clip for every
    # example (other objects, pairs, times; training templates only), so the clips, the expensive
    # part, are reused with far more varied questions. The test split is always the fixed file.
    fresh_questions: bool = field(default=True, metadata={"help": "draw new questions about the training clips for every batch (off = the fixed qa.jsonl training questions)"})
    # An answer is one or two tokens: a batch of single questions gives the LM very little to
    # learn from per step. Several questions about the same frames share one sequence (each sees
    # only the frames and itself), so a step supervises that many more answers for ~2x the cost.
    questions_per_clip: int = field(default=8, metadata={"help": "questions packed per clip and sequence when fresh questions are on (batch_size counts clips)"})
    # Billiards clips are a seventh of the data and the harder world (tiny balls, events between
    # frames); drawing them more often than their share trades tabletop practice for billiards.
    billiards_share: float = field(default=0.0, metadata={"help": "fraction of training clips drawn from billiards shots (0 = their share of the data)"})
    encoder_steps: int = field(default=3000, metadata={"help": "pretrain the frame encoder on the training clips' dense cell labels first (0 = keep it as built; ignored with --vision-path)"})
    init_from: str | None = field(default=None, metadata={"help": "start from this VideoLM checkpoint's weights (its encoder, LM and tokenizer; modules it lacks start fresh)"})
    eval_limit: int = field(default=0, metadata={"help": "questions per split to evaluate (0 = all)"})
    runs_root: str = "runs"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise VideoQAError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.steps < 1 or self.batch_size < 1 or self.questions_per_clip < 1:
            raise VideoQAError("steps, batch_size and questions_per_clip must be >= 1")
        if not 0.0 <= self.billiards_share < 1.0:
            raise VideoQAError(f"billiards_share must be in [0, 1), got {self.billiards_share}")


def frame_indices(frames: np.ndarray, sampler: str, budget: int) -> np.ndarray:
    from perception.sampling import get_sampler

    if len(frames) < budget:  # short clip: repeat frames rather than fail
        return np.linspace(0, len(frames) - 1, budget).round().astype(np.int64)
    return np.asarray(get_sampler(sampler).select(frames, budget), np.int64)


@dataclass
class ClipView:
    """What the model sees of one clip: the sampled frames' times and labels, and either the
    frames themselves or (frozen encoder) their patch features, computed once."""

    times: list[float]
    frame_labels: np.ndarray
    frame_mask: np.ndarray
    frames: np.ndarray | None = None
    patches: Any = None  # torch.Tensor [T, N, D]
    cells: np.ndarray | None = None  # uint8 [T, N, len(CELL_CLASSES)]: what is in each cell


def clip_views(dataset: QADataset, clips: Any, sampler: str, budget: int,
               model: Any | None = None) -> dict[str, ClipView]:
    """One :class:`ClipView` per clip. With a ``model`` whose encoder is frozen, the patch
    features are computed here and the clip's frames are dropped from memory (at 128 px a few
    thousand clips hold gigabytes of frames, their sampled features a few hundred megabytes)."""
    import torch

    frozen = model is not None and model.cfg.freeze_vision
    n_cells = model.vision.num_patches if model is not None else 0
    grid = math.isqrt(n_cells) if n_cells and math.isqrt(n_cells) ** 2 == n_cells else 0  # square grids only
    views: dict[str, ClipView] = {}
    for clip in sorted(set(clips)):
        frames, times, summary = dataset.clip(clip)
        idx = frame_indices(frames, sampler, budget)
        labels, mask = frame_labels(summary, times[idx])
        view = ClipView([float(times[i]) for i in idx], labels, mask)
        if grid and "track" in summary:
            view.cells = np.stack([cell_labels(summary, int(i), grid) for i in idx])
        if frozen:
            with torch.no_grad():
                view.patches = model.patches(model.preprocess(frames[idx])).cpu()
            dataset.forget(clip)
        else:
            view.frames = frames[idx]
        views[clip] = view
    return views


def example_for(dataset: QADataset, q: QA, sampler: str, budget: int,
                views: dict[str, ClipView] | None = None) -> dict[str, Any]:
    """The sampled frames (or their cached patch features), times and frame labels for one
    question."""
    view = views[q.clip] if views is not None and q.clip in views else \
        clip_views(dataset, [q.clip], sampler, budget)[q.clip]
    ex = {"times": view.times, "question": q.question, "answer": q.answer, "refs": q.refs,
          "frame_labels": view.frame_labels, "frame_mask": view.frame_mask}
    if view.cells is not None:
        ex["cells"] = view.cells
    if view.patches is not None:
        ex["patches"] = view.patches
    else:
        ex["frames"] = view.frames
    return ex


def fresh_questions(dataset: QADataset, clip: str, n: int, rng: np.random.Generator) -> list[QA]:
    """``n`` new questions (training templates only) about ``clip``: rounds of
    :func:`~video_qa.data.questions_for` with a fresh ``rng`` ask about other objects, pairs and
    times each time; see ``TrainQAConfig.fresh_questions``."""
    out: list[QA] = []
    while len(out) < n:
        out += [q for q in questions_for(dataset.summary(clip), clip, "train", rng) if not q.heldout]
    return [out[int(i)] for i in rng.permutation(len(out))[:n]]


def multi_turn(dataset: QADataset, qas: list[QA], sampler: str, budget: int,
               views: dict[str, ClipView]) -> dict[str, Any]:
    """One training example holding several questions about the same clip (see
    ``VideoLM.collate``)."""
    ex = example_for(dataset, qas[0], sampler, budget, views)
    ex.pop("question"), ex.pop("answer"), ex.pop("refs")
    return {**ex, "questions": [q.question for q in qas], "answers": [q.answer for q in qas],
            "refs": [q.refs for q in qas]}


def clip_weights(clips: list[str], billiards_share: float) -> np.ndarray:
    """Probability of drawing each training clip: uniform, or billiards shots together given
    ``billiards_share`` of the draws (uniform within each world)."""
    billiards = np.array([c.startswith("billiards") for c in clips])
    if billiards_share <= 0 or billiards.all() or not billiards.any():
        return np.full(len(clips), 1.0 / len(clips))
    return np.where(billiards, billiards_share / billiards.sum(), (1 - billiards_share) / (~billiards).sum())


def pretrain_encoder(cfg: TrainQAConfig, model_cfg: VideoLMConfig, run_dir: Path,
                     log: Any = print) -> Path:
    """The frame encoder ``model_cfg`` describes, pretrained on dense cell labels of the training
    clips (``video_qa.frame_encoder``), saved in ``run_dir/frame_encoder``."""
    from perception.encoders import build_vision_encoder
    from video_qa.frame_encoder import FrameEncoderConfig, pretrain

    encoder = build_vision_encoder(model_cfg.vision_family, image_size=model_cfg.image_size,
                                   patch_size=model_cfg.patch_size, hidden_size=model_cfg.vision_hidden,
                                   num_layers=model_cfg.vision_layers, num_heads=model_cfg.vision_heads)
    return pretrain(cfg.data_dir, run_dir / "frame_encoder", encoder,
                    FrameEncoderConfig(steps=cfg.encoder_steps, seed=cfg.seed), log=log)


def warm_start(checkpoint: str | Path, model_cfg: VideoLMConfig, log: Any = print) -> Any:
    """A VideoLM built from ``model_cfg`` on the architecture (encoder, LM, tokenizer) of
    ``checkpoint``, holding every one of its weights whose name and shape still fit. Why: a module
    added to a trained model (a new grounding feature) is tried in minutes of fine-tuning instead
    of the better part of an hour from scratch; the run's config records where it started."""
    from video_qa.modeling import VideoLM

    directory = Path(checkpoint)
    base = VideoLM.from_pretrained(directory)  # validates the directory, one-line errors
    model = VideoLM(model_cfg, base.tokenizer, _arch={"vision": base.vision.config_dict(),
                                                      "lm": base._lm_arch})
    own = model.state_dict()
    fits = {k: v for k, v in base.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    fresh = sorted(k for k in own if k not in fits)
    if log:
        log(f"warm start from {directory}: {len(fits)} tensors loaded, {len(fresh)} fresh"
            + (f" ({', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''})" if fresh else ""))
    return model


def train(cfg: TrainQAConfig, model_cfg: VideoLMConfig, run_dir: str | Path | None = None,
          log: Any = print) -> Path:
    import torch

    from common.runs import RunLog, new_run_dir
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
    if cfg.init_from:
        model = warm_start(cfg.init_from, model_cfg, log).to(device)
    else:
        if model_cfg.vision_path is None and cfg.encoder_steps > 0:
            model_cfg = replace(model_cfg, vision_path=str(pretrain_encoder(cfg, model_cfg, run_dir, log)))
        model = VideoLM(model_cfg).to(device)  # batches, features and generation follow the model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))

    train_clips = sorted({q.clip for q in train_qas})
    clip_p = clip_weights(train_clips, cfg.billiards_share)
    model.train()
    views = clip_views(dataset, {q.clip for q in dataset.qas}, cfg.sampler, model_cfg.num_frames,
                       model)
    if log:
        log(f"sampled {model_cfg.num_frames} frames of {len(views)} clips"
            + (" and cached their frozen features" if model_cfg.freeze_vision else ""))
    config = {"train": asdict(cfg), "model": model_cfg.to_dict(), "train_questions": len(train_qas)}
    t0 = time.time()
    with RunLog(run_dir, config) as runlog:
        model.train()
        for step in range(cfg.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            if cfg.fresh_questions:
                # uniform draws keep the random stream (and so the shipped run) as it was
                picks = (rng.choice(len(train_clips), size=cfg.batch_size, p=clip_p)
                         if cfg.billiards_share > 0 else rng.integers(len(train_clips), size=cfg.batch_size))
                clips = [train_clips[int(i)] for i in picks]
                examples = [multi_turn(dataset, fresh_questions(dataset, c, cfg.questions_per_clip, rng),
                                       cfg.sampler, model_cfg.num_frames, views) for c in clips]
            else:
                examples = [example_for(dataset, train_qas[int(i)], cfg.sampler, model_cfg.num_frames,
                                        views) for i in rng.integers(len(train_qas), size=cfg.batch_size)]
            batch = model.collate(examples)
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
        result = evaluate(model, dataset, cfg.sampler, "test", limit=cfg.eval_limit or None,
                          views=views)
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
    from common.runs import new_run_dir

    root = new_run_dir("ablation_qa", cfg.runs_root)
    if model_cfg.vision_path is None and cfg.encoder_steps > 0:  # one encoder for both arms
        generate(cfg.data_dir, cfg.n_billiards, cfg.n_tabletop, log=log, workers=cfg.workers)
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
    (root / "ablation.json").write_text(json.dumps(out, indent=2))
    if log:
        log(json.dumps(out, indent=2))
    return root
