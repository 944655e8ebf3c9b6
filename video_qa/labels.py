"""Dense labels from a clip's ground truth: per-frame visual facts and where each thing is.

Two kinds, both free from the simulator: per-frame facts (what is on the table, what is lifted,
which side of the frame each object is on) for the optional auxiliary losses on each frame's
tokens, and per-cell classes (which things have their centre in each cell of the encoder's grid)
that pretrain the frame encoder and teach the question grounding where a named thing is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from video_qa.errors import VideoQAError

# ---------------------------------------------------------------------------- frame labels
# Per-frame visual facts from the ground truth, for an auxiliary training loss on each frame's
# tokens: trained only on answers, the tiny model learns text priors and ignores what the frames
# show (attribute accuracy stays at chance); as the policy's grounding loss did, a per-frame target
# makes the frame tokens carry colours, presence and state. Fixed vocabulary, one bit each.
AUX_BALLS = ("cue", "yellow", "blue", "red", "purple", "orange", "green", "maroon", "black")
AUX_COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink")
AUX_SHAPES = ("cube", "cylinder")
AUX_LABELS: tuple[str, ...] = (
    tuple(f"on_table:{b}" for b in AUX_BALLS)
    + tuple(f"present:{c} {s}" for c in AUX_COLORS for s in AUX_SHAPES)
    + ("lifted",) + tuple(f"lifted:{c}" for c in AUX_COLORS))


# Where things are, for the spatial questions ("was the red cube left of the bowl?"): each object's
# image column at the start as a thermometer code over fixed fractions of the width, so one frame
# token can carry "left of a quarter / half / three quarters". A separate head (aux_spatial_weight)
# reads them: checkpoints trained before it existed keep loading.
SPATIAL_CUTS = (0.25, 0.5, 0.75)
SPATIAL_THINGS = tuple(f"{c} {s}" for c in AUX_COLORS for s in AUX_SHAPES) + ("bowl", "plate")
SPATIAL_LABELS: tuple[str, ...] = tuple(f"left_of:{name}@{cut}" for name in SPATIAL_THINGS
                                        for cut in SPATIAL_CUTS)
TABLETOP_WIDTH = 64  # px: simulate_tabletop's default size, for clips cached before "width"
_AUX_INDEX = {name: i for i, name in enumerate(AUX_LABELS)}
_SPATIAL_INDEX = {name: i for i, name in enumerate(SPATIAL_LABELS)}


def spatial_labels(summary: dict[str, Any], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, mask)`` float32 ``[T, len(SPATIAL_LABELS)]``: tabletop objects and receptacle
    (billiards balls move, and their spatial question is about the first frame only: masked)."""
    labels = np.zeros((n_frames, len(SPATIAL_LABELS)), np.float32)
    mask = np.zeros_like(labels)
    if summary["source"] != "tabletop":
        return labels, mask
    width = float(summary.get("width", TABLETOP_WIDTH))
    things = [(o["name"], o["u"]) for o in summary["objects"]]
    if summary.get("receptacle"):
        things.append((summary["receptacle"]["kind"], summary["receptacle"]["u"]))
    for name, u in things:
        for cut in SPATIAL_CUTS:
            j = _SPATIAL_INDEX.get(f"left_of:{name}@{cut}")
            if j is not None:
                mask[:, j] = 1.0
                labels[:, j] = float(u < cut * width)
    return labels, mask


def frame_labels(summary: dict[str, Any], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, mask)`` float32 ``[T, len(AUX_LABELS) + len(SPATIAL_LABELS)]`` for frames at
    ``times``; the mask is 0 where a label does not apply (billiards bits on tabletop frames and
    the reverse)."""
    labels, mask = _fact_labels(summary, times)
    spatial, spatial_mask = spatial_labels(summary, len(labels))
    return np.concatenate([labels, spatial], 1), np.concatenate([mask, spatial_mask], 1)


def _fact_labels(summary: dict[str, Any], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, np.float64)
    labels = np.zeros((len(times), len(AUX_LABELS)), np.float32)
    mask = np.zeros_like(labels)
    index = _AUX_INDEX
    if summary["source"] == "billiards":
        pots = summary["pot_times"]
        for ball in AUX_BALLS:
            j = index[f"on_table:{ball}"]
            mask[:, j] = 1.0
            labels[:, j] = times < pots[ball] if ball in pots else 1.0
        return labels, mask
    mask[:, len(AUX_BALLS):] = 1.0
    for obj in summary["objects"]:
        key = f"present:{obj['name']}"
        if key in index:
            labels[:, index[key]] = 1.0
    lift = summary.get("lift_time")
    if lift is not None:
        target = next(o for o in summary["objects"] if o["is_target"])
        up = times >= lift
        labels[:, index["lifted"]] = up
        if f"lifted:{target['color']}" in index:
            labels[:, index[f"lifted:{target['color']}"]] = up
    return labels, mask


# ---------------------------------------------------------------------------- cell labels
# Where each thing is, per cell of a frame's grid: the frame encoder is pretrained on these, and a
# question's grounding is trained to find the thing it names. One channel per thing a question can
# name, then "the lifted object is here".
CELL_CLASSES: tuple[str, ...] = SPATIAL_THINGS + tuple(f"ball:{b}" for b in AUX_BALLS) + ("lifted",)
_CLASS_INDEX = {name: i for i, name in enumerate(CELL_CLASSES)}


def cell_of(u: float, v: float, width: float, height: float, grid: int) -> int | None:
    """Row-major cell index of pixel (u, v) in a ``width`` x ``height`` frame; None off-frame."""
    if not (0 <= u < width and 0 <= v < height):
        return None
    return int(v / height * grid) * grid + int(u / width * grid)


def cell_labels(summary: dict[str, Any], frame: int, grid: int) -> np.ndarray:
    """uint8 ``[grid*grid, len(CELL_CLASSES)]``: which things have their centre in each cell at
    ``frame`` (needs a version-2 summary with per-frame ``track``)."""
    return cell_targets(summary, frame, grid)[0]


def cell_targets(summary: dict[str, Any], frame: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, offsets)``: :func:`cell_labels` and, float16 ``[grid*grid, C, 2]``, where in its
    cell each thing's centre lies (0..1 across, 0..1 down; 0 where the thing is not).

    The offsets matter for "left of" between two things in the same column of cells (7 % of
    the tabletop spatial questions at 8 columns)."""
    if "track" not in summary:
        raise VideoQAError("this clip has no per-frame positions; regenerate the QA data")
    out = np.zeros((grid * grid, len(CELL_CLASSES)), np.uint8)
    offsets = np.zeros((grid * grid, len(CELL_CLASSES), 2), np.float16)
    w, h = float(summary.get("width", 128)), float(summary.get("height", summary.get("width", 128)))

    def mark(name: str, uv: list[float] | None) -> int | None:
        cell = None if uv is None else cell_of(uv[0], uv[1], w, h, grid)
        if cell is not None and name in _CLASS_INDEX:
            c = _CLASS_INDEX[name]
            out[cell, c] = 1
            offsets[cell, c] = (uv[0] / w * grid % 1.0, uv[1] / h * grid % 1.0)
        return cell

    if summary["source"] == "billiards":
        for ball, track in summary["track"].items():
            mark(f"ball:{ball}", track[frame])
        return out, offsets
    target = next(o["name"] for o in summary["objects"] if o["is_target"])
    for name, track in summary["track"].items():
        cell = mark(name, track[frame])
        if name == target and summary["lifted"][frame] and cell is not None:
            out[cell, _CLASS_INDEX["lifted"]] = 1
            offsets[cell, _CLASS_INDEX["lifted"]] = offsets[cell, _CLASS_INDEX[name]]
    rec = summary.get("receptacle")
    if rec:
        mark(rec["kind"], rec["uv"])
    return out, offsets

