"""Query-adaptive sampling (BOLT's inverse-transform sampling, VideoTree's relevance-guided tree).

Frames are embedded once per stream (the embeddings are cached, so asking five questions about
one video encodes it once), scored by cosine relevance to the question's text embedding, and
the budget is spent where relevance is high:

- ``mode="cdf"`` (BOLT): relevance -> softmax weights mixed with a little uniform mass ->
  the inverse CDF gives one frame per equal-weight slice. Relevant stretches get many frames,
  the rest still a few (so "what happened before X" keeps its context).
- ``mode="tree"`` (VideoTree): k-means clusters of the embeddings, the budget shared across
  clusters by their relevance (every cluster keeps one frame for coverage), then the same
  inverse-CDF inside each cluster.

Without a query the sampler falls back to coverage: one frame per embedding cluster.

``prior`` is the sampler's belief before the question: every frame alike (``"uniform"``) or
frames where things move (``"motion"``, MGSampler's frame-difference weights): in a video of a
game most frames show a still table, and the questions asked are about something happening.
The question's relevance reweights the prior (``prior * softmax(relevance / temperature)``), and
the ``uniform_mix`` share follows the prior alone; with the uniform prior this is the plain
softmax above. Relevance still decides which of the moving stretches get the budget. ``smooth`` averages relevance
over a few neighbouring frames: an event spans a few frames and one noisy score should not grab
a pick.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception.errors import PerceptionError
from perception.sampling.base import (Sampler, as_images, check_budget, inverse_cdf_pick,
                                      is_features, unique_sorted)
from perception.sampling.motion import MotionSampler


def _fingerprint(images: Any) -> str:
    """A cheap key for a stream: its length and a few sparse pixels of a few frames."""
    n = len(images)
    h = hashlib.sha1(str(n).encode())
    for i in sorted({0, n // 3, n // 2, 2 * n // 3, n - 1}):
        im = np.asarray(images[i])
        h.update(str(im.shape).encode())
        h.update(np.ascontiguousarray(im[::17, ::13]).tobytes())
    return h.hexdigest()


def kmeans(x: np.ndarray, k: int, iters: int = 20, seed: int = 0) -> np.ndarray:
    """Plain k-means (k-means++ seeding) returning the label of each row."""
    rng = np.random.default_rng(seed)
    n = len(x)
    k = min(k, n)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d = np.min(((x[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        p = d / d.sum() if d.sum() > 0 else np.full(n, 1 / n)
        centres.append(x[rng.choice(n, p=p)])
    c = np.array(centres)
    labels = np.zeros(n, np.int64)
    for _ in range(iters):
        labels = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return labels


@dataclass
class QueryAdaptiveSampler(Sampler):
    encoder: Any = None  # anything with encode_images / encode_text (perception.clip)
    mode: str = "cdf"  # "cdf" (BOLT inverse transform) or "tree" (VideoTree clusters)
    temperature: float = 0.05  # softmax over cosine relevance: CLIP-style similarities are close
    uniform_mix: float = 0.15  # share of the budget's mass spread evenly: keep some context
    clusters: int = 8  # tree mode: first-level clusters (capped by the budget)
    prior: str = "uniform"  # frames before the question: "uniform" (alike) or "motion" (moving)
    smooth: int = 1  # box filter over relevance, in frames (1: none)
    cache_size: int = 8  # streams whose frame embeddings (and motion weights) are kept
    _cache: "OrderedDict[str, dict]" = field(default_factory=OrderedDict, repr=False)

    name = "query"

    def __post_init__(self) -> None:
        if self.prior not in ("uniform", "motion"):
            raise PerceptionError(f"unknown query-sampler prior {self.prior!r}; valid: uniform, motion")

    def _entry(self, frames_or_features: Any) -> dict:
        """The cache entry of a stream (features are not cached: they cost nothing)."""
        if is_features(frames_or_features):
            return {"emb": np.asarray(frames_or_features, np.float32)}
        key = _fingerprint(as_images(frames_or_features))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        entry: dict = {}
        self._cache[key] = entry
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    def embed(self, frames_or_features: Any) -> np.ndarray:
        entry = self._entry(frames_or_features)
        if "emb" not in entry:
            if self.encoder is None:
                raise PerceptionError("the query sampler needs an encoder for images "
                                      "(or precomputed embeddings [T, D])")
            images = as_images(frames_or_features)
            entry["emb"] = np.asarray(self.encoder.encode_images(images), np.float32)
        return entry["emb"]

    def prior_weights(self, frames_or_features: Any) -> np.ndarray:
        """The prior over frames (sums to 1): even, or by motion (cached per stream)."""
        n = len(frames_or_features)
        if self.prior == "uniform":
            return np.full(n, 1.0 / n)
        entry = self._entry(frames_or_features)
        if "motion" not in entry:
            m = MotionSampler().weights(frames_or_features)
            entry["motion"] = m / m.sum()
        return entry["motion"]

    def relevance(self, emb: np.ndarray, query: Any) -> np.ndarray:
        if isinstance(query, str):
            if self.encoder is None:
                raise PerceptionError("a text query needs an encoder")
            q = np.asarray(self.encoder.encode_text([query]), np.float32)[0]
        else:
            q = np.asarray(query, np.float32).reshape(-1)
        e = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-8)
        return e @ (q / (np.linalg.norm(q) + 1e-8))

    def weights(self, rel: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        if self.smooth > 1 and len(rel) > self.smooth:
            rel = np.convolve(np.pad(rel, self.smooth // 2, mode="edge"),
                              np.ones(self.smooth) / self.smooth, mode="valid")[:len(rel)]
        prior = np.full(len(rel), 1.0 / len(rel)) if prior is None else prior
        # relevance reweights the prior (evenly: a plain softmax), and the uniform_mix share
        # follows the prior alone
        w = np.exp((rel - rel.max()) / self.temperature) * prior
        w = w / w.sum()
        return (1 - self.uniform_mix) * w + self.uniform_mix * prior

    def select(self, frames_or_features: Any, budget: int, query: Any = None) -> np.ndarray:
        n = len(frames_or_features)
        budget = check_budget(n, budget)
        emb = self.embed(frames_or_features)
        if query is None:
            return self._coverage(emb, budget)
        w = self.weights(self.relevance(emb, query), self.prior_weights(frames_or_features))
        if self.mode == "cdf":
            return inverse_cdf_pick(w, budget)
        if self.mode == "tree":
            return self._tree(emb, w, budget)
        raise PerceptionError(f"unknown query-sampler mode {self.mode!r}; valid: cdf, tree")

    def _coverage(self, emb: np.ndarray, budget: int) -> np.ndarray:
        labels = kmeans(emb, budget)
        picks = []
        for j in np.unique(labels):
            members = np.flatnonzero(labels == j)
            centre = emb[members].mean(0)
            picks.append(members[np.argmin(((emb[members] - centre) ** 2).sum(1))])
        return unique_sorted(np.array(picks), len(emb)) if len(picks) == budget else \
            unique_sorted(np.concatenate([picks, np.linspace(0, len(emb) - 1, budget - len(picks))
                                          .astype(np.int64)]), len(emb))

    def _tree(self, emb: np.ndarray, w: np.ndarray, budget: int) -> np.ndarray:
        k = max(1, min(self.clusters, budget))
        labels = kmeans(emb, k)
        ids = np.unique(labels)
        mass = np.array([w[labels == j].sum() for j in ids])
        # one frame per cluster for coverage, the rest by relevance mass (largest remainders)
        share = np.ones(len(ids), np.int64)
        extra = budget - len(ids)
        raw = mass / mass.sum() * extra
        share += np.floor(raw).astype(np.int64)
        rest = budget - share.sum()
        share[np.argsort(-(raw - np.floor(raw)))[:rest]] += 1
        picks = []
        for j, s in zip(ids, share):
            members = np.flatnonzero(labels == j)
            s = min(int(s), len(members))
            picks.extend(members[inverse_cdf_pick(w[members], s)])
        return unique_sorted(np.array(picks), len(emb))
