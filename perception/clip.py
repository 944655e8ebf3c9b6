"""A small CLIP-style frame–text encoder, trained here on simulator frames with generated captions.

Two towers map a frame and a sentence into one unit-norm embedding space; training pulls each
frame towards its caption and away from the others in the batch (symmetric InfoNCE, as in CLIP).
Captions come from simulator ground truth, so many frames share a caption: targets are spread
over every matching caption instead of pretending those are negatives.

The text tower reads either a bag of caption words learned here (``text="words"``) or the
pretrained MiniLM sentence encoder (``text="minilm"``, :mod:`perception.text_encoder`, frozen and
cached per string) through a learned projection: captions generated from ground truth are a few
fixed sentences, and only a pretrained encoder carries them over to a person's wording ("when do
two balls collide" for the caption "two balls collide"). The image tower reads one frame
(``input="rgb"``) or a frame with its differences to neighbouring frames (``input="motion"``):
an event such as a collision or a pot is a change between frames, which one still frame can
hardly show.

The same interface wraps a real CLIP loaded from a local directory (``transformers``
``CLIPModel.from_pretrained(path)``): :func:`load_encoder` picks whichever the directory holds.
Used by the query-adaptive sampler, ``video_qa`` and ``policy``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from perception.errors import PerceptionError
from perception.image import preprocess_images, resize_images
from perception.text import Tokenizer, load_tokenizer, word_tokenizer, words_of


@dataclass
class ClipConfig:
    image_size: int = 64  # thumbnails: a billiard ball is still a few pixels, encoding stays cheap
    embed_dim: int = 64  # shared space; small because captions come from a small vocabulary
    width: int = 32  # channels of the first conv layer (doubled twice)
    max_words: int = 16  # captions are short sentences
    vocab_size: int = 2  # filled from the training captions' words (+ padding and unknown)
    input: str = "rgb"  # "rgb": each frame alone; "motion": grey frame + its differences to the
    # frames ``lags`` before and after, so "when does the cue strike" can see movement (the images
    # given to encode_images are then read as one consecutive clip)
    lags: tuple[int, ...] = (1,)  # motion input: frame distances of the differences
    text: str = "words"  # "words": bag of caption words learned here; "minilm": the pretrained
    # MiniLM (perception.text_encoder) + a learned projection, so questions worded unlike the
    # captions still land near them
    text_encoder: dict | None = None  # minilm: the weights trained with (EncoderId), checked at load

    def __post_init__(self) -> None:
        self.lags = tuple(int(k) for k in self.lags)  # a JSON round trip gives a list
        if self.input not in ("rgb", "motion"):
            raise PerceptionError(f"unknown frame-text encoder input {self.input!r}; valid: rgb, motion")
        if self.text not in ("words", "minilm"):
            raise PerceptionError(f"unknown frame-text encoder text side {self.text!r}; valid: words, minilm")
        if not self.lags or min(self.lags) < 1:
            raise PerceptionError(f"motion lags must be >= 1 frame, got {self.lags}")

    @property
    def in_channels(self) -> int:
        return 3 if self.input == "rgb" else 1 + 2 * len(self.lags)


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
            nn.Conv2d(cfg.in_channels, w, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),
            # max, not mean: a moving ball is a few pixels, and averaging would drown it
            nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(16 * w, d),
        )
        self.text_kind = cfg.text
        if cfg.text == "words":
            self.words = nn.Embedding(cfg.vocab_size, d, padding_idx=0)
            # word order matters little for generated captions; a position-free bag of words + MLP
            self.text = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        else:  # the learned projection of MiniLM's sentence vector into the shared space
            from perception.text_encoder import DIM

            self.text = nn.Sequential(nn.Linear(DIM, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
            # MiniLM's sentence vectors share one large common direction (cosines of unrelated
            # captions are far above 0), so the projection starts from vectors centred and scaled
            # by the training wordings' statistics (set by train_clip, saved with the weights):
            # without it every caption projected to nearly one point and training stalled.
            self.register_buffer("text_mean", torch.zeros(DIM))
            self.register_buffer("text_scale", torch.ones(()))
        self.logit_scale = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(x), dim=-1)

    def encode_text(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: word ids ``[N, max_words]`` ("words") or MiniLM sentence vectors ``[N, 384]``."""
        if self.text_kind == "words":
            mask = (x > 0).float().unsqueeze(-1)
            x = (self.words(x) * mask).sum(1) / mask.sum(1).clamp(min=1)
        else:
            x = (x - self.text_mean) * self.text_scale
        return F.normalize(self.text(x), dim=-1)


def minilm_vectors(texts: Sequence[str]) -> torch.Tensor:
    """MiniLM's pooled sentence vectors ``[N, 384]`` from the process-wide encoder (each distinct
    string is encoded once per process: the questions of a video repeat)."""
    from perception.text_encoder import shared_text_encoder

    return shared_text_encoder().encode(list(texts)).pooled.float().cpu()


def text_inputs(cfg: ClipConfig, tokenizer: Tokenizer | None, texts: Sequence[str]) -> torch.Tensor:
    """What the text tower eats for ``texts``: word ids or MiniLM vectors."""
    if cfg.text == "minilm":
        return minilm_vectors(texts)
    return caption_ids(tokenizer, texts, cfg.max_words)


def preprocess(images: Any, size: int, mode: str = "rgb", lags: Sequence[int] = (1,),
               lengths: Sequence[int] | None = None) -> torch.Tensor:
    """RGB uint8 images (any size) -> float tensor ``[N, C, size, size]`` in [-0.5, 0.5]: the
    shared ``perception.image`` preprocessing, then this model's centring. Motion input reads
    the images as consecutive clips of ``lengths`` frames (default: one clip), so no difference
    is taken across the cut between two videos."""
    if mode != "motion":
        return preprocess_images(images, size).sub_(0.5)
    small = resize_images(images, size)
    cuts = np.cumsum([0, *(lengths if lengths is not None else [len(small)])])
    if cuts[-1] != len(small):
        raise PerceptionError(f"clip lengths add up to {cuts[-1]}, not the {len(small)} images")
    parts = [motion_channels(small[a:b], lags=lags) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    # to_tensor's scaling, on any number of channels
    return torch.from_numpy(np.concatenate(parts)).float().div_(255.0).movedim(-1, -3).sub_(0.5)


def motion_channels(clip: np.ndarray, gain: float = 4.0, lags: Sequence[int] = (1,)) -> np.ndarray:
    """``[T, S, S, 3]`` RGB thumbnails of one clip -> ``[T, S, S, 1 + 2 len(lags)]``: grey, then
    for each lag k |grey - grey k frames before| and |grey k frames after - grey| (clamped at the
    clip's ends), differences amplified by ``gain``: the picture and which way things move. A
    collision or a bounce shows as motion that changes between before and after."""
    grey = clip.astype(np.float32).mean(3)
    t = np.arange(len(grey))
    chans = [grey]
    for k in lags:
        chans.append(np.abs(grey - grey[np.maximum(t - k, 0)]) * gain)
        chans.append(np.abs(grey[np.minimum(t + k, len(grey) - 1)] - grey) * gain)
    return np.minimum(np.stack(chans, 3), 255).astype(np.uint8)


class FrameTextEncoder:
    """Trained :class:`TinyClip` with its tokenizer (none for MiniLM text): numpy in, unit-norm
    numpy embeddings out."""

    def __init__(self, model: TinyClip, cfg: ClipConfig, tokenizer: Tokenizer | None) -> None:
        self.model, self.cfg, self.tokenizer = model.eval(), cfg, tokenizer

    @torch.no_grad()
    def encode_images(self, images: Any, batch: int = 256) -> np.ndarray:
        x = preprocess(images, self.cfg.image_size, self.cfg.input, self.cfg.lags)  # S x S thumbnails
        out = [self.model.encode_image(x[i:i + batch]) for i in range(0, len(x), batch)]
        return torch.cat(out).numpy()

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str]) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.model.encode_text(text_inputs(self.cfg, self.tokenizer, texts)).numpy()

    def save(self, path: str | Path) -> None:
        """``model.safetensors``, ``clip_config.json`` and the ``tokenizer/`` directory (words
        text side; a MiniLM one records the encoder's id instead of copying its weights)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.model.state_dict(), str(path / "model.safetensors"))
        (path / "clip_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        if self.tokenizer is not None:
            self.tokenizer.save(path / "tokenizer")

    @classmethod
    def load(cls, path: str | Path) -> "FrameTextEncoder":
        """What :meth:`save` wrote; an older save keeps its word list in ``clip_config.json``."""
        from safetensors.torch import load_file

        path = Path(path)
        raw = json.loads((path / "clip_config.json").read_text())
        tokenizer: Tokenizer | None = None
        if "vocab" in raw:  # saved before perception.text: the sorted caption words
            tokenizer = word_tokenizer(raw.pop("vocab"))
            raw["vocab_size"] = tokenizer.vocab_size
        elif raw.get("text", "words") == "words":
            tokenizer = load_tokenizer(path / "tokenizer")
        cfg = ClipConfig(**raw)
        if cfg.text == "minilm":
            from perception.text_encoder import encoder_id

            encoder_id().check(cfg.text_encoder, what=f"the frame-text encoder {path}")
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
               train: ClipTrainConfig | None = None, log: Any = None,
               paraphrases: dict[str, Sequence[str]] | None = None,
               lengths: Sequence[int] | None = None) -> FrameTextEncoder:
    """Fit a :class:`TinyClip` on ``(image, caption)`` pairs; returns the ready encoder.

    ``paraphrases``: other wordings of a caption; each step shows each caption in one of its
    wordings, chosen at random, so the text side learns the meaning rather than one sentence.
    ``lengths``: for motion input, the images are consecutive clips of these lengths."""
    if len(images) != len(captions) or len(images) == 0:
        raise PerceptionError("need as many captions as images (and at least one)")
    train = train or ClipTrainConfig()
    saved = torch.get_num_threads()
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    try:
        return _train(images, captions, cfg, train, log, paraphrases or {}, lengths)
    finally:
        torch.set_num_threads(saved)


def _train(images, captions, cfg, train, log, paraphrases, lengths) -> FrameTextEncoder:
    cfg = cfg or ClipConfig()
    uniq, cap_id = np.unique(np.asarray(captions), return_inverse=True)
    wordings = [[str(u), *[p for p in paraphrases.get(str(u), ()) if p != u]] for u in uniq]
    flat = [w for ws in wordings for w in ws]
    first = torch.tensor(np.cumsum([0] + [len(ws) for ws in wordings])[:-1])
    count = torch.tensor([len(ws) for ws in wordings])
    tok: Tokenizer | None = None
    if cfg.text == "words":
        tok = word_tokenizer(words_of(flat))
        cfg = replace(cfg, vocab_size=tok.vocab_size)
    else:
        from perception.text_encoder import encoder_id

        cfg = replace(cfg, text_encoder=encoder_id().to_dict())
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    model = TinyClip(cfg)
    x_all = preprocess(images, cfg.image_size, cfg.input, cfg.lags, lengths)
    text_all = text_inputs(cfg, tok, flat)  # every wording, encoded once
    if cfg.text == "minilm":
        centred = text_all - text_all.mean(0)
        model.text_mean.copy_(text_all.mean(0))
        model.text_scale.fill_(float(1.0 / centred.pow(2).sum(1).mean().sqrt().clamp_min(1e-6)))
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
        pick = first[texts] + (torch.rand(len(texts)) * count[texts]).long()  # one wording each
        txt = model.encode_text(text_all[pick])
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
