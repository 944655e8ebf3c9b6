"""A frame encoder for video QA, pretrained here with dense per-cell labels from the simulator.

Why: trained only through the answers (or through per-frame yes/no facts), the encoder never
learned *where* each thing is: spatial and yes/no questions stayed at chance. A detector-style
target does: every cell of the encoder's 8x8 grid predicts which things have their centre in it
(each coloured cube and cylinder, the bowl, the plate, each billiards ball) and whether the lifted
object is there. The simulator knows all of it for every frame, so the labels cost nothing, and
single frames train ~30x faster than the QA model end to end. The QA model then keeps the encoder
frozen and caches its features.

The result is saved like one of our policy checkpoints (``config.json`` with a ``"vision"``
entry, ``model.safetensors`` with ``vision.*`` weights), so
``perception.encoders.load_vision_encoder`` and ``VideoLMConfig.vision_path`` take it as is.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.atomic import atomic_dir
from common.schedule import warmup_cosine
from video_qa.dataset import QADataset, split_of
from video_qa.errors import VideoQAError
from video_qa.labels import CELL_CLASSES, cell_targets

WARMUP_STEPS = 100  # linear warm-up before the cosine decay


@dataclass
class FrameEncoderConfig:
    """How to pretrain; the encoder's architecture comes from ``VideoLMConfig``'s vision fields."""

    steps: int = field(default=3000, metadata={"help": "AdamW steps of 64 frames (~15 min on one core)"})
    batch_size: int = 64
    lr: float = 2e-3
    frame_every: int = field(default=2, metadata={"help": "use every n-th frame of each training clip (neighbours are near duplicates)"})
    pos_weight: float = field(default=10.0, metadata={"help": "a cell is empty far more often than not: weigh the rare positives up"})
    # Off by default: at 1.0 the offsets reached 0.5 px but tabletop presence fell from 0.97 to
    # 0.89 (5,000 steps), and the QA model reads presence, not sub-cell position.
    offset_weight: float = field(default=0.0, metadata={"help": "weight of the where-in-its-cell L1 loss (0 = off)"})
    seed: int = 0


def load_frames(dataset: QADataset, split: str, every: int, size: int, grid: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 [N, S, S, 3], labels uint8 [N, grid*grid, C], offsets float16
    [N, grid*grid, C, 2]) of every ``every``-th frame of the clips of ``split``."""
    from perception.image import resize_images

    clips = sorted({q.clip for q in dataset.qas})
    images, labels, offsets = [], [], []
    for clip in clips:
        if split_of(int(clip.rsplit("_", 1)[1])) != split:
            continue
        frames, _, summary = dataset.clip(clip)
        idx = np.arange(0, len(frames), every)
        images.append(resize_images(frames[idx], size))  # what VideoLM.preprocess sees
        targets = [cell_targets(summary, int(i), grid) for i in idx]
        labels.append(np.stack([t[0] for t in targets]))
        offsets.append(np.stack([t[1] for t in targets]))
        dataset.forget(clip)  # the QA model needs only cached features later
    if not images:
        raise VideoQAError(f"no {split} clips in {dataset.root}")
    return np.concatenate(images), np.concatenate(labels), np.concatenate(offsets)


class CellHead:
    """Factory for the per-cell head: a presence logit per class, then a (u, v) offset per class
    (kept out of the encoder, so the QA model loads only the encoder)."""

    @staticmethod
    def build(dim: int) -> Any:
        from torch import nn

        return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3 * len(CELL_CLASSES)))


def split_head(out: Any) -> tuple[Any, Any]:
    """Head output ``[..., 3C]`` -> presence logits ``[..., C]``, offset logits ``[..., C, 2]``."""
    c = len(CELL_CLASSES)
    return out[..., :c], out[..., c:].unflatten(-1, (c, 2))


def cell_metrics(logits: Any, labels: Any) -> dict[str, float]:
    """Per-frame presence accuracy (any cell > 0 vs truth) and cell-level precision/recall."""
    import torch

    pred = logits > 0
    lab = labels.bool()
    tp = (pred & lab).sum().item()
    present_pred, present_true = pred.any(1), lab.any(1)  # [N, C]
    return {"cell_precision": tp / max(1, pred.sum().item()),
            "cell_recall": tp / max(1, lab.sum().item()),
            "presence_accuracy": float((present_pred == present_true).float().mean()),
            "frames_all_presence_right": float((present_pred == present_true).all(1).float().mean()),
            "frames": int(labels.shape[0]), "positives": int(torch.as_tensor(lab.sum()))}


def pretrain(data_dir: str | Path, out: str | Path, encoder: Any,
             cfg: FrameEncoderConfig | None = None,
             log: Callable[[str], None] | None = print) -> Path:
    """Train ``encoder`` (a ``perception.encoders.VisionEncoder`` with a square patch grid) and a
    per-cell head on the training clips of ``data_dir``; save the encoder to ``out`` with its
    test-clip metrics. Returns ``out``."""
    import torch
    import torch.nn.functional as F

    from perception.image import to_tensor

    cfg = cfg or FrameEncoderConfig()
    grid = math.isqrt(encoder.num_patches)
    if grid * grid != encoder.num_patches:
        raise VideoQAError(f"the frame encoder needs a square grid of patches, got {encoder.num_patches}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dataset = QADataset(data_dir)
    size = encoder.image_size
    images, labels, offsets = load_frames(dataset, "train", cfg.frame_every, size, grid)
    test_images, test_labels, test_offsets = load_frames(dataset, "test", 4 * cfg.frame_every, size, grid)
    if log:
        log(f"frame encoder: {len(images)} training frames, {len(test_images)} test frames, "
            f"{grid}x{grid} cells, {len(CELL_CLASSES)} classes")
    head = CellHead.build(encoder.out_dim)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    pos_weight = torch.full((len(CELL_CLASSES),), cfg.pos_weight)

    def lr_at(step: int) -> float:
        return cfg.lr * warmup_cosine(step, cfg.steps, WARMUP_STEPS)

    t0 = time.time()
    history = []
    encoder.train()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        i = rng.integers(len(images), size=cfg.batch_size)
        logits, where = split_head(head(encoder(to_tensor(images[i]))))
        target = torch.from_numpy(labels[i]).float()
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        off = (where.sigmoid() - torch.from_numpy(offsets[i]).float()).abs().sum(-1)
        loss = loss + cfg.offset_weight * (off * target).sum() / target.sum().clamp(min=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log and (step % 100 == 0 or step == cfg.steps - 1):
            row = {"step": step, "loss": round(float(loss.detach()), 4), "elapsed_s": round(time.time() - t0, 1)}
            history.append(row)
            log(json.dumps(row))
    encoder.eval()
    with torch.no_grad():
        test_out = [split_head(head(encoder(to_tensor(test_images[j:j + 256]))))
                    for j in range(0, len(test_images), 256)]
    test_logits = torch.cat([o[0] for o in test_out])
    test_where = torch.cat([o[1] for o in test_out]).sigmoid()
    metrics = cell_metrics(test_logits, torch.from_numpy(test_labels))
    lab = torch.from_numpy(test_labels).bool()
    err = (test_where - torch.from_numpy(test_offsets).float()).abs()[lab]  # [positives, 2]
    metrics["offset_error_px"] = round(float(err.mean()) * size / grid, 2)
    metrics["train_seconds"] = round(time.time() - t0, 1)
    if log:
        log("frame encoder on test clips: " + json.dumps(metrics))
    save(encoder, head, out, {"pretrain": asdict(cfg), "classes": list(CELL_CLASSES), "grid": grid,
                              "test_metrics": metrics, "history": history})
    return Path(out)


def save(encoder: Any, head: Any, out: str | Path, meta: dict[str, Any]) -> Path:
    """Our checkpoint layout (see the module docstring), committed whole or not at all."""
    from safetensors.torch import save_file

    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text(json.dumps({"vision": encoder.config_dict(),
                                                     "frame_encoder": meta}, indent=2))
        weights = {f"vision.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
        weights.update({f"cell_head.{k}": v.contiguous() for k, v in head.state_dict().items()})
        save_file(weights, str(tmp / "model.safetensors"))
    return Path(out)
