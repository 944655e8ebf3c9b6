"""Long-stream memory: an unbounded stream kept in a fixed number of segments.

Every pushed frame becomes a one-frame segment (its embedding from a frame–text encoder, a small
keyframe thumbnail, its time). When there are more than ``slots`` segments, the two ADJACENT
segments whose embeddings are most alike are merged into one (time span joined, embedding averaged
by frame count, the keyframe of the longer one kept). Long still stretches thus collapse into one
segment each, while a short distinctive event, unlike its neighbours, keeps its own segment: the
older past is summarised into fewer tokens, and memory never grows with the stream.

At question time the query-adaptive sampler (``perception.sampling``) picks the ``budget`` segments
most relevant to the question (with some coverage), and their keyframes and times go to the
VideoLM: the context is ``budget * tokens_per_frame`` visual tokens whatever the stream length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from video_qa.errors import VideoQAError


@dataclass
class Segment:
    t0: float  # first frame's time (s)
    t1: float  # last frame's time (s)
    count: int  # frames merged into this segment
    embedding: np.ndarray  # mean unit embedding of its frames [D]
    keyframe: np.ndarray  # uint8 [h, w, 3] thumbnail shown to the model
    key_time: float  # time of the keyframe

    @property
    def time(self) -> float:
        return self.key_time


class StreamMemory:
    """``push(image, t)`` forever; ``context(question, budget)`` -> the segments to look at."""

    def __init__(self, encoder: Any, slots: int = 64, thumb_size: int = 128,
                 batch: int = 64) -> None:
        """``thumb_size``: the longest side a keyframe is kept at; the VideoLM's frames are 128 px
        (a billiards ball is ~2 px wide there), so smaller thumbnails would lose what it reads."""
        if slots < 2:
            raise VideoQAError(f"memory needs at least 2 slots, got {slots}")
        self.encoder = encoder  # encode_images(list) -> [N, D]; encode_text(list) -> [N, D]
        self.slots = slots
        self.thumb_size = thumb_size
        self.batch = batch
        self.segments: list[Segment] = []
        self._pending: list[tuple[np.ndarray, float]] = []
        self.frames_seen = 0

    # ------------------------------------------------------------------ writing
    def push(self, image: np.ndarray, t: float) -> None:
        """Add one frame (encoded in small batches, so pushing is cheap per frame)."""
        self._pending.append((self._thumb(image), float(t)))
        self.frames_seen += 1
        if len(self._pending) >= self.batch:
            self.flush()

    def extend(self, frames: Iterable[tuple[np.ndarray, float]]) -> None:
        for image, t in frames:
            self.push(image, t)
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        images = [im for im, _ in self._pending]
        emb = np.asarray(self.encoder.encode_images(images), np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-8
        for (im, t), e in zip(self._pending, emb):
            self.segments.append(Segment(t, t, 1, e, im, t))
            if len(self.segments) > self.slots:
                self._merge_most_similar()
        self._pending.clear()

    def _thumb(self, image: np.ndarray) -> np.ndarray:
        """The keyframe kept: at most ``thumb_size`` on its longer side, resampled as every
        encoder's input is (``perception.image``)."""
        from perception.image import fit_within

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise VideoQAError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
        return fit_within(image, self.thumb_size)

    def _merge_most_similar(self) -> None:
        emb = np.stack([s.embedding for s in self.segments])
        sim = (emb[:-1] * emb[1:]).sum(1)
        i = int(np.argmax(sim))
        a, b = self.segments[i], self.segments[i + 1]
        n = a.count + b.count
        e = (a.embedding * a.count + b.embedding * b.count) / n
        e /= np.linalg.norm(e) + 1e-8
        keep = a if a.count >= b.count else b
        self.segments[i:i + 2] = [Segment(a.t0, b.t1, n, e, keep.keyframe, keep.key_time)]

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.segments) + len(self._pending)

    def nbytes(self) -> int:
        """Bytes held by the memory (keyframes + embeddings): flat in the stream length."""
        return sum(s.keyframe.nbytes + s.embedding.nbytes for s in self.segments) + \
            sum(im.nbytes for im, _ in self._pending)

    def relevance(self, question: str) -> np.ndarray:
        self.flush()
        q = np.asarray(self.encoder.encode_text([question]), np.float32)[0]
        emb = np.stack([s.embedding for s in self.segments])
        return emb @ (q / (np.linalg.norm(q) + 1e-8))

    def context(self, question: str | None, budget: int) -> list[Segment]:
        """``budget`` segments in time order: query-adaptive when there is a question."""
        from perception.sampling import get_sampler

        self.flush()
        if not self.segments:
            raise VideoQAError("the memory is empty: nothing has been seen yet")
        budget = min(budget, len(self.segments))
        emb = np.stack([s.embedding for s in self.segments])
        if question is None:
            idx = get_sampler("uniform").select(emb, budget)
        else:
            q = np.asarray(self.encoder.encode_text([question]), np.float32)[0]
            idx = get_sampler("query", encoder=self.encoder).select(emb, budget, query=q)
        return [self.segments[i] for i in np.sort(idx)]

    def locate(self, question: str) -> Segment:
        """The single most relevant segment (e.g. "when did X appear?")."""
        rel = self.relevance(question)
        return self.segments[int(np.argmax(rel))]
