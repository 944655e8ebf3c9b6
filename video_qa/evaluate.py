"""Exact-match evaluation per question type, timestamp error, held-out templates apart.

Answers are compared after normalisation (case, surrounding spaces, a final full stop). A
timestamp answer counts as correct within ``TIME_TOLERANCE`` seconds: the model sees a handful of
sampled frames, so it can only place an event between two of them; the strict string match and the
mean absolute error are reported beside it.

:func:`evaluate_checkpoint` is `embodied eval-qa`: where the data a checkpoint was trained on are
not on this machine (a fresh clone), it simulates the test clips again from the recipe recorded
with the checkpoint, once, and scores on those.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from video_qa.configuration_train import TRAIN_META, read_train_meta
from video_qa.dataset import HELDOUT_ROOT, DataRecipe, QADataset, heldout_data
from video_qa.errors import VideoQAError
from video_qa.inputs import Facts, clip_views, example_for, truth_facts
from video_qa.questions import QA, TYPES, parse_time
from video_qa.subtitles import FACT_SOURCES

TIME_TOLERANCE = 0.3  # s
DESCRIPTIVE = ("description",)


def normalise(text: str) -> str:
    return text.strip().lower().rstrip(".").strip()


def is_correct(kind: str, pred: str, gold: str) -> bool:
    if normalise(pred) == normalise(gold):
        return True
    if kind == "timestamp":
        p, g = parse_time(pred), parse_time(gold)
        return p is not None and g is not None and abs(p - g) <= TIME_TOLERANCE
    return False


def score(qas: Sequence[QA], preds: Sequence[str]) -> dict[str, Any]:
    """Accuracy by type, ``overall``, ``overall_non_descriptive``, timestamp errors, counts."""
    hits: dict[str, list[bool]] = defaultdict(list)
    strict: list[bool] = []
    errors: list[float] = []
    for q, p in zip(qas, preds):
        hits[q.type].append(is_correct(q.type, p, q.answer))
        if q.type == "timestamp":
            strict.append(normalise(p) == normalise(q.answer))
            pt, gt = parse_time(p), parse_time(q.answer)
            if gt is not None:
                errors.append(abs(pt - gt) if pt is not None else float("nan"))
    acc = {k: float(np.mean(v)) for k, v in sorted(hits.items())}
    all_hits = [h for v in hits.values() for h in v]
    nd = [h for k, v in hits.items() if k not in DESCRIPTIVE for h in v]
    finite = [e for e in errors if e == e]
    return {
        "accuracy": acc,
        "overall": float(np.mean(all_hits)) if all_hits else 0.0,
        "overall_non_descriptive": float(np.mean(nd)) if nd else 0.0,
        "timestamp_mae_s": float(np.mean(finite)) if finite else None,
        "timestamp_answered_without_time": int(sum(1 for e in errors if e != e)),
        "timestamp_strict_exact": float(np.mean(strict)) if strict else None,
        "count": {k: len(v) for k, v in sorted(hits.items())},
    }


def by_source(qas: Sequence[QA], preds: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`score`'s accuracy per type and non-descriptive accuracy for each world apart:
    billiards and tabletop questions differ in difficulty (1-2 px balls vs ~6 px objects), and
    one overall number hides which world the model fails on."""
    out = {}
    for source in sorted({q.clip.split("_")[0] for q in qas}):
        pairs = [(q, p) for q, p in zip(qas, preds) if q.clip.startswith(source + "_")]
        sub = score([q for q, _ in pairs], [p for _, p in pairs])
        out[source] = {k: sub[k] for k in ("accuracy", "overall_non_descriptive")}
    return out


def predict(model: Any, dataset: QADataset, qas: Sequence[QA], sampler: str,
            batch_size: int = 64, views: dict[str, Any] | None = None,
            facts: Facts = truth_facts) -> list[str]:
    """Greedy answers; ``views`` (``video_qa.inputs.clip_views``) reuses sampled frames or cached
    features, else every clip is sampled (and, with a frozen encoder, encoded) once here."""
    import torch

    missing = {q.clip for q in qas} - set(views or {})
    if missing:
        views = {**(views or {}), **clip_views(dataset, missing, sampler, model.cfg.num_frames, model, facts)}
    preds: list[str] = []
    for i in range(0, len(qas), batch_size):
        exs = [example_for(dataset, q, sampler, model.cfg.num_frames, views) for q in qas[i:i + batch_size]]
        texts = [e.get("texts") for e in exs]
        if all("patches" in e for e in exs):
            preds += model.generate(None, [e["times"] for e in exs], [e["question"] for e in exs],
                                    texts, patches=torch.stack([e["patches"] for e in exs]))
        else:
            preds += model.generate([e["frames"] for e in exs], [e["times"] for e in exs],
                                    [e["question"] for e in exs], texts)
    return preds


def evaluate(model: Any, dataset: QADataset, sampler: str, split: str = "test",
             limit: int | None = None, views: dict[str, Any] | None = None,
             facts: Facts = truth_facts, facts_source: str = "truth") -> dict[str, Any]:
    """Scores on ``split`` for training templates, and separately for held-out templates. A model
    with subtitles reads them from ``facts`` (``facts_source`` names where they came from)."""
    result: dict[str, Any] = {"split": split, "sampler": sampler, "pooling": model.cfg.pooling,
                              "tokens_per_frame": model.cfg.tokens_per_frame,
                              "num_frames": model.cfg.num_frames,
                              "visual_tokens": model.cfg.tokens_per_frame * model.cfg.num_frames,
                              "subtitles": facts_source if model.cfg.subtitles != "none" else None}
    seen = dataset.select(split, heldout=False)[:limit]
    held = dataset.select(split, heldout=True)[:limit]
    seen_preds = predict(model, dataset, seen, sampler, views=views, facts=facts)
    result.update(score(seen, seen_preds), by_source=by_source(seen, seen_preds))
    held_preds = predict(model, dataset, held, sampler, views=views, facts=facts)
    result["heldout_templates"] = {**score(held, held_preds), "by_source": by_source(held, held_preds)}
    result["examples"] = [{"clip": q.clip, "type": q.type, "q": q.question, "gold": q.answer,
                           "pred": p} for q, p in list(zip(seen, seen_preds))[:: max(1, len(seen) // 24)]]
    result["types"] = list(TYPES)
    return result


def data_for(checkpoint: str | Path, data_dir: str | Path | None = None, split: str = "test",
             workers: int = 1, heldout_root: str | Path = HELDOUT_ROOT,
             log: Callable[[str], None] | None = print, resimulate: bool = False) -> Path:
    """The QA data to score ``checkpoint`` on: ``data_dir`` if given, else the data it was trained
    on if they are here, else its test clips simulated again from its recorded recipe."""
    if data_dir is not None:
        return Path(data_dir)
    meta = read_train_meta(checkpoint)
    trained_on = meta.get("data_dir")
    if trained_on and (Path(trained_on) / "qa.jsonl").is_file():
        return Path(trained_on)
    if "data" not in meta:
        raise VideoQAError(f"no --data-dir given, and {Path(checkpoint) / TRAIN_META} names neither "
                           "data that exist here nor the recipe to simulate them")
    if split != "test":
        raise VideoQAError(f"only the test split can be simulated again; the {split} data "
                           f"({trained_on}) are not here: pass --data-dir")
    return heldout_data(DataRecipe.from_dict(meta["data"]), heldout_root, workers=workers, log=log,
                        resimulate=resimulate)


def evaluate_checkpoint(checkpoint: str | Path, data_dir: str | Path | None = None,
                        split: str = "test", sampler: str | None = None, limit: int | None = None,
                        workers: int = 1, heldout_root: str | Path = HELDOUT_ROOT,
                        log: Callable[[str], None] | None = print, resimulate: bool = False,
                        facts_source: str = "perceived") -> dict[str, Any]:
    """Load ``checkpoint`` and :func:`evaluate` it (its training sampler unless ``sampler``).
    A model with subtitles reads, by default, what the tracker perceives of each billiards clip
    (``video_qa.perceived``); ``facts_source="truth"`` gives it the simulator's events instead
    (an upper bound, reported as such)."""
    from video_qa.modeling_videolm import VideoLM

    if facts_source not in FACT_SOURCES:
        raise VideoQAError(f"unknown facts source {facts_source!r}; valid: {', '.join(FACT_SOURCES)}")
    data = data_for(checkpoint, data_dir, split, workers, heldout_root, log, resimulate)
    model = VideoLM.from_pretrained(checkpoint)
    meta = read_train_meta(checkpoint)
    sampler = sampler or meta.get("sampler", "motion")
    dataset = QADataset(data)
    facts: Facts = truth_facts
    if model.cfg.subtitles != "none" and facts_source == "perceived":
        from video_qa.perceived import perceived_facts

        seed = DataRecipe.from_dict(meta["data"]).seed if "data" in meta else 0
        facts = perceived_facts(dataset, seed, {q.clip for q in dataset.select(split)}, log)
    result = evaluate(model, dataset, sampler, split, limit=limit, facts=facts, facts_source=facts_source)
    result["checkpoint"] = str(checkpoint)
    result["data_dir"] = str(data)
    return result
