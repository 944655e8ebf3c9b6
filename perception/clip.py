"""A small CLIP-style frame–text encoder, trained here on simulator frames with generated captions.

Two towers map a frame and a sentence into one unit-norm embedding space; training pulls each
frame towards its caption and away from the others in the batch (symmetric InfoNCE, as in CLIP).
Captions come from simulator ground truth, so many frames share a caption: targets are spread
over every matching caption instead of pretending those are negatives.

The same interface wraps a real CLIP loaded from a local directory (``transformers``
``CLIPModel.from_pretrained(path)``): :func:`load_encoder` picks whichever the directory holds.
Used by the query-adaptive sampler, ``video_qa`` and ``policy``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from perception.errors import PerceptionError
from perception.image import preprocess_images, resize_images, to_tensor
from perception.text import Tokenizer, load_tokenizer, word_tokenizer, words_of


@dataclass
class ClipConfig:
    image_size: int = 64  # thumbnails: a billiard ball is still a few pixels, encoding stays cheap
    embed_dim: int = 64  # shared space; small because captions come from a small vocabulary
    width: int = 32  # channels of the first conv layer (doubled twice)
    max_words: int = 16  # captions are short sentences
    vocab_size: int = 2  # filled from the training captions' words (+ padding and unknown)
    input: str = "rgb"  # "rgb": each frame alone; "motion": grey frame + its differences to the
    # previous and next frames, so "when does the cue strike" can see movement (the images given
    # to encode_images are then read as one consecutive clip)


def caption_ids(tokenizer: Tokenizer, texts: Sequence[str], max_words: int) -> torch.Tensor:
    """Captions -> ``[N, max_words]`` word ids (``perception.text.word_tokenizer``: lower-case
    words, 1 for an unknown one), right-padded with 0, cut after ``max_words`` words."""
    out = torch.full((len(texts), max_words), tokenizer.pad_id, dtype=torch.long)
    for i, t in enumerate(texts):
        ids = tokenizer.encode(t)[:max_words]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


class TinyClip(nn.Module):
    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        w, d = cfg.width, cfg.embed_dim
        self.image = nn.Sequential(
            nn.Conv2d(3, w, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),
            # max, not mean: a moving ball is a few pixels, and averaging would drown it
            nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(16 * w, d),
        )
        self.words = nn.Embedding(cfg.vocab_size, d, padding_idx=0)
        # word order matters little for generated captions; a position-free bag of words + MLP
        self.text = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(x), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).float().unsqueeze(-1)
        bag = (self.words(ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return F.normalize(self.text(bag), dim=-1)


def preprocess(images: Any, size: int, mode: str = "rgb") -> torch.Tensor:
    """RGB uint8 images (any size) -> float tensor ``[N, 3, size, size]`` in [-0.5, 0.5]: the
    shared ``perception.image`` preprocessing, then this model's centring."""
    if mode != "motion":
        return preprocess_images(images, size).sub_(0.5)
    return to_tensor(motion_channels(resize_images(images, size))).sub_(0.5)


def motion_channels(clip: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """``[T, S, S, 3]`` RGB thumbnails of one clip -> (grey, |grey - previous|, |next - grey|),
    differences amplified by ``gain``: the picture and which way things are moving."""
    grey = clip.astype(np.float32).mean(3)
    prev = np.abs(np.diff(grey, axis=0, prepend=grey[:1]))
    nxt = np.abs(np.diff(grey, axis=0, append=grey[-1:]))
    out = np.stack([grey, np.minimum(prev * gain, 255), np.minimum(nxt * gain, 255)], 3)
    return out.astype(np.uint8)


class FrameTextEncoder:
    """Trained :class:`TinyClip` with its tokenizer: numpy in, unit-norm numpy embeddings out."""

    def __init__(self, model: TinyClip, cfg: ClipConfig, tokenizer: Tokenizer) -> None:
        self.model, self.cfg, self.tokenizer = model.eval(), cfg, tokenizer

    @torch.no_grad()
    def encode_images(self, images: Any, batch: int = 256) -> np.ndarray:
        x = preprocess(images, self.cfg.image_size, self.cfg.input)  # small: S x S thumbnails
        out = [self.model.encode_image(x[i:i + batch]) for i in range(0, len(x), batch)]
        return torch.cat(out).numpy()

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str]) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.model.encode_text(caption_ids(self.tokenizer, texts, self.cfg.max_words)).numpy()

    def save(self, path: str | Path) -> None:
        """``model.safetensors``, ``clip_config.json`` and the ``tokenizer/`` directory."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.model.state_dict(), str(path / "model.safetensors"))
        (path / "clip_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        self.tokenizer.save(path / "tokenizer")

    @classmethod
    def load(cls, path: str | Path) -> "FrameTextEncoder":
        """What :meth:`save` wrote; an older save keeps its word list in ``clip_config.json``."""
        from safetensors.torch import load_file

        path = Path(path)
        raw = json.loads((path / "clip_config.json").read_text())
        if "vocab" in raw:  # saved before perception.text: the sorted caption words
            tokenizer = word_tokenizer(raw.pop("vocab"))
            raw["vocab_size"] = tokenizer.vocab_size
        else:
            tokenizer = load_tokenizer(path / "tokenizer")
        cfg = ClipConfig(**raw)
        model = TinyClip(cfg)
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        return cls(model, cfg, tokenizer)


class HFClipEncoder:
    """A real CLIP from a local directory (no downloads), behind the same two methods."""

    def __init__(self, path: str | Path) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.model = CLIPModel.from_pretrained(str(path), local_files_only=True).eval()
        self.processor = CLIPProcessor.from_pretrained(str(path), local_files_only=True)

    @torch.no_grad()
    def encode_images(self, images: Any, batch: int = 64) -> np.ndarray:
        outs = []
        for i in range(0, len(images), batch):
            inp = self.processor(images=list(images[i:i + batch]), return_tensors="pt")
            outs.append(F.normalize(self.model.get_image_features(**inp), dim=-1))
        return torch.cat(outs).numpy()

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str]) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        inp = self.processor(text=texts, return_tensors="pt", padding=True)
        return F.normalize(self.model.get_text_features(**inp), dim=-1).numpy()


def load_encoder(path: str | Path) -> FrameTextEncoder | HFClipEncoder:
    """Our trained encoder (``clip_config.json``) or a transformers CLIP (``config.json``)."""
    path = Path(path)
    if (path / "clip_config.json").exists():
        return FrameTextEncoder.load(path)
    if (path / "config.json").exists():
        return HFClipEncoder(path)
    raise PerceptionError(f"no frame-text encoder in {path} (expected clip_config.json or a "
                          "transformers CLIP directory with config.json)")


@dataclass
class ClipTrainConfig:
    steps: int = 300  # enough for a few hundred frames and a dozen caption kinds
    batch: int = 64  # in-batch negatives; captions repeat, so bigger batches add little
    lr: float = 1e-3  # 3e-3 collapsed the image tower on sim frames (measured); 1e-3 learns
    seed: int = 0  # repeatable training
    threads: int = 1  # torch threads: this model is too small to share out; on a busy CPU,
    # threads waiting on each other made training 10x slower (measured); 0 keeps torch's setting


def train_clip(images: Any, captions: Sequence[str], cfg: ClipConfig | None = None,
               train: ClipTrainConfig | None = None, log: Any = None) -> FrameTextEncoder:
    """Fit a :class:`TinyClip` on ``(image, caption)`` pairs; returns the ready encoder."""
    if len(images) != len(captions) or len(images) == 0:
        raise PerceptionError("need as many captions as images (and at least one)")
    train = train or ClipTrainConfig()
    saved = torch.get_num_threads()
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    try:
        return _train(images, captions, cfg, train, log)
    finally:
        torch.set_num_threads(saved)


def _train(images, captions, cfg, train, log) -> FrameTextEncoder:
    tok = word_tokenizer(words_of(captions))
    cfg = ClipConfig(**{**asdict(cfg or ClipConfig()), "vocab_size": tok.vocab_size})
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    model = TinyClip(cfg)
    x_all = preprocess(images, cfg.image_size, cfg.input)
    uniq, cap_id = np.unique(np.asarray(captions), return_inverse=True)
    ids_all = caption_ids(tok, list(uniq), cfg.max_words)
    cap_id = torch.from_numpy(cap_id)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, train.lr, total_steps=train.steps)
    model.train()
    # Balanced batches: generated captions are very uneven (most frames of a shot are "balls
    # rolling"), and uniform batches teach little beyond the caption prior.
    counts = np.bincount(cap_id.numpy())
    p = 1.0 / counts[cap_id.numpy()]
    p = p / p.sum()
    for step in range(train.steps):
        b = torch.from_numpy(rng.choice(len(x_all), min(train.batch, len(x_all)), replace=False,
                                        p=p))
        x = x_all[b]
        x = x + 0.03 * torch.randn_like(x)  # sensor noise: the sampler sees encoded video
        cid = cap_id[b]
        texts, inv = torch.unique(cid, return_inverse=True)
        img = model.encode_image(x)
        txt = model.encode_text(ids_all[texts])
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T  # [B, unique captions]
        loss_i = F.cross_entropy(logits, inv)
        # text -> image: each caption's positives are all frames that carry it
        pos = (inv[None, :] == torch.arange(len(texts))[:, None]).float()
        loss_t = -(pos / pos.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
        loss = 0.5 * (loss_i + loss_t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 50 == 0 or step == train.steps - 1):
            log(step=step, loss=float(loss.detach()))
    return FrameTextEncoder(model, cfg, tok)
