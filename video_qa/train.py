"""The training loop: a VideoLM trained on generated QA, saved and scored on held-out episodes.

``train(cfg, model_cfg)`` generates (or reuses) the cached data, pretrains the frame encoder on
the training clips' cell labels (unless one is given), trains for ``cfg.steps`` AdamW steps on
training clips with training templates, saves ``run_dir/checkpoint`` (with ``qa_train.json``: the
sampler, the data directory and the data recipe) and writes ``run_dir/eval.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import write_json
from common.runs import RunLog, new_run_dir
from common.schedule import warmup_cosine
from video_qa.configuration_train import TRAIN_META, TrainQAConfig
from video_qa.configuration_videolm import VideoLMConfig
from video_qa.dataset import DataRecipe, QADataset, generate
from video_qa.errors import VideoQAError
from video_qa.evaluate import evaluate
from video_qa.frame_encoder import FrameEncoderConfig, pretrain
from video_qa.inputs import clip_views, example_for, multi_turn
from video_qa.questions import QA, questions_for
from video_qa.subtitles import facts_from_summary, subtitles


def fresh_questions(dataset: QADataset, clip: str, n: int, rng: np.random.Generator,
                    extended: bool = False, summary: dict[str, Any] | None = None) -> list[QA]:
    """``n`` new questions (training templates only) about ``clip`` (or about ``summary``, a
    renamed version of it): rounds of :func:`~video_qa.questions.questions_for` with a fresh
    ``rng`` ask about other objects, pairs and times each time; see
    ``TrainQAConfig.fresh_questions``."""
    summary = summary if summary is not None else dataset.summary(clip)
    out: list[QA] = []
    while len(out) < n:
        out += [q for q in questions_for(summary, clip, "train", rng, extended) if not q.heldout]
    return [out[int(i)] for i in rng.permutation(len(out))[:n]]


def renamed_events(summary: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A billiards summary whose events, pots and first contact name a random permutation of the
    object balls (the cue ball keeps its name); the frames, tracks and layout stay as they were
    (``TrainQAConfig.event_rename``)."""
    balls = [b for b in summary["ball_names"] if b != "cue"]
    to = dict(zip(balls, (balls[int(i)] for i in rng.permutation(len(balls)))))
    name = lambda b: to.get(b, b)  # noqa: E731 - the cue ball, the cue stick, pockets keep theirs
    return {**summary, "first_hit": name(summary["first_hit"]) if summary["first_hit"] else None,
            "pot_times": {name(b): t for b, t in summary["pot_times"].items()},
            "events": [{**e, "a": name(e["a"]), "b": name(e["b"]) if e.get("b") else e.get("b")}
                       for e in summary["events"]]}


def _draw(dataset: QADataset, clip: str, cfg: TrainQAConfig, model_cfg: VideoLMConfig,
          views: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One training example of fresh questions about ``clip``; a billiards shot's events renamed
    (subtitles and answers alike) for a share ``cfg.event_rename`` of the draws."""
    summary = None
    if (model_cfg.subtitles == "events" and cfg.event_rename > 0 and clip.startswith("billiards")
            and rng.random() < cfg.event_rename):
        summary = renamed_events(dataset.summary(clip), rng)
    qas = fresh_questions(dataset, clip, cfg.questions_per_clip, rng, cfg.extra_phrasings, summary)
    ex = multi_turn(dataset, qas, cfg.sampler, model_cfg.num_frames, views)
    if summary is not None:
        ex["texts"] = subtitles(facts_from_summary(summary), ex["times"])
    return ex


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
    import torch

    from video_qa.modeling_videolm import VideoLM

    directory = Path(checkpoint)
    base = VideoLM.from_pretrained(directory)  # validates the directory, one-line errors
    tokenizer, lm_arch = _grown_vocabulary(base, model_cfg)
    model = VideoLM(model_cfg, tokenizer, _arch={"vision": base.vision.config_dict(), "lm": lm_arch})
    own = model.state_dict()
    fits = {k: v for k, v in base.state_dict().items() if k in own and own[k].shape == v.shape}
    for k, v in base.state_dict().items():  # vocabulary rows: the old ids keep their rows
        if k in own and k not in fits and v.dim() == own[k].dim() and v.shape[1:] == own[k].shape[1:] \
                and v.shape[0] < own[k].shape[0]:
            fits[k] = torch.cat([v, own[k][v.shape[0]:]])
    model.load_state_dict(fits, strict=False)
    fresh = sorted(k for k in own if k not in fits)
    if log:
        log(f"warm start from {directory}: {len(fits)} tensors loaded, {len(fresh)} fresh"
            + (f" ({', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''})" if fresh else ""))
    return model


def _grown_vocabulary(base: Any, model_cfg: VideoLMConfig) -> tuple[Any, dict[str, Any]]:
    """The tokenizer and LM architecture a warm start builds on: the checkpoint's, or, when the
    new model reads questions with the pretrained encoder and the checkpoint did not, the same
    vocabulary plus the ``<q>`` slot (ours is a deterministic BPE, so the new tokenizer keeps
    every old id and appends one)."""
    import copy

    from video_qa.processor_videolm import tokenizer_for

    if not model_cfg.pretrained_text or base.cfg.pretrained_text or "config" not in base._lm_arch:
        return base.tokenizer, base._lm_arch
    grown = tokenizer_for(replace(base.cfg, text_encoder=model_cfg.text_encoder))
    probe = "How many balls were potted? 3.1s the red cube"
    if grown.vocab_size != base.tokenizer.vocab_size + 1 or grown.encode(probe) != base.tokenizer.encode(probe):
        raise VideoQAError("cannot warm-start a pretrained-text model from this checkpoint: its "
                           "vocabulary is not the one this code builds; train from scratch")
    arch = copy.deepcopy(base._lm_arch)
    arch["config"]["vocab_size"] = grown.vocab_size
    return grown, arch


def train(cfg: TrainQAConfig, model_cfg: VideoLMConfig, run_dir: str | Path | None = None,
          log: Any = print) -> Path:
    """Train ``model_cfg`` as ``cfg`` says in ``run_dir`` (a new one under ``cfg.runs_root`` by
    default); returns the run directory."""
    import torch

    from video_qa.modeling_videolm import VideoLM

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    recipe = DataRecipe(cfg.data_seed, cfg.n_billiards, cfg.n_tabletop)
    generate(cfg.data_dir, cfg.n_billiards, cfg.n_tabletop, cfg.data_seed, log=log, workers=cfg.workers)
    dataset = QADataset(cfg.data_dir)
    train_qas = dataset.select("train", heldout=False)
    if not train_qas:
        raise VideoQAError(f"no training questions in {cfg.data_dir}")
    run_dir = Path(run_dir) if run_dir else new_run_dir("train_qa", cfg.runs_root)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if model_cfg.pretrained_lm:  # dequantized once into the cache: say so, it takes a while
        from perception.pretrained_lm import resolve_lm

        resolve_lm(model_cfg.pretrained_lm, log=log)
    if cfg.init:
        model = warm_start(cfg.init, model_cfg, log).to(device)
    else:
        if model_cfg.vision_path is None and cfg.encoder_steps > 0:
            model_cfg = replace(model_cfg, vision_path=str(pretrain_encoder(cfg, model_cfg, run_dir, log)))
        model = VideoLM(model_cfg).to(device)  # batches, features and generation follow the model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        return cfg.lr * warmup_cosine(step, cfg.steps, cfg.warmup_steps)

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
                examples = [_draw(dataset, c, cfg, model_cfg, views, rng) for c in clips]
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
        write_json(ckpt / TRAIN_META, {"sampler": cfg.sampler, "data_dir": cfg.data_dir,
                                       "data": recipe.to_dict()})
        result = evaluate(model, dataset, cfg.sampler, "test", limit=cfg.eval_limit or None,
                          views=views)
        result["train_seconds"] = round(time.time() - t0, 1)
        write_json(run_dir / "eval.json", result)
        runlog.log(event="eval", overall=result["overall"],
                   overall_non_descriptive=result["overall_non_descriptive"])
    if log:
        log(f"overall {result['overall']:.3f} (non-descriptive "
            f"{result['overall_non_descriptive']:.3f}); run dir {run_dir}")
    return run_dir
