"""What the model sees of a clip: keyframes chosen by a sampler, their times and labels, and the
examples (one question, or several about the same frames) that training and evaluation batch.

Kept apart from the training loop so that evaluation and ``embodied ask`` prepare clips exactly
as training did without importing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from video_qa.dataset import QADataset
from video_qa.labels import cell_labels, frame_labels
from video_qa.questions import QA
from video_qa.subtitles import facts_from_summary, subtitles

# A clip's facts for its subtitles: (clip id, summary) -> facts dict, or None for no subtitles.
Facts = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]


def truth_facts(clip: str, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The simulator's ground truth of a billiards clip (training); tabletop clips say nothing."""
    return facts_from_summary(summary) if summary.get("source") == "billiards" else None


def frame_indices(frames: np.ndarray, sampler: str, budget: int) -> np.ndarray:
    """``budget`` keyframe indices of ``frames`` chosen by ``sampler`` (``perception.sampling``)."""
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
    texts: list[str] | None = None  # per-frame subtitles (a model with subtitles="events")


def clip_views(dataset: QADataset, clips: Iterable[str], sampler: str, budget: int,
               model: Any | None = None, facts: Facts = truth_facts) -> dict[str, ClipView]:
    """One :class:`ClipView` per clip. With a ``model`` whose encoder is frozen, the patch
    features are computed here and the clip's frames are dropped from memory (at 128 px a few
    thousand clips hold gigabytes of frames, their sampled features a few hundred megabytes).
    A model with subtitles gets them from ``facts`` (the simulator's truth unless told: training;
    evaluation passes the tracker's)."""
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
        if model is not None and model.cfg.subtitles == "events":
            view.texts = subtitles(facts(clip, summary), view.times)
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
    if view.texts is not None:
        ex["texts"] = view.texts
    if view.patches is not None:
        ex["patches"] = view.patches
    else:
        ex["frames"] = view.frames
    return ex


def multi_turn(dataset: QADataset, qas: list[QA], sampler: str, budget: int,
               views: dict[str, ClipView]) -> dict[str, Any]:
    """One training example holding several questions about the same clip (see
    ``VideoLM.collate``)."""
    ex = example_for(dataset, qas[0], sampler, budget, views)
    ex.pop("question"), ex.pop("answer"), ex.pop("refs")
    return {**ex, "questions": [q.question for q in qas], "answers": [q.answer for q in qas],
            "refs": [q.refs for q in qas]}
