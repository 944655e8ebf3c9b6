"""Dataset statistics that merge, so a recorder pays the same for its 5,000th episode as its first.

``meta/stats.json`` holds, per feature and dimension, min/max/mean/std/count/q01/q99. Recomputing
them over every frame after every episode costs O(dataset) per episode (quadratic in total).
Instead each episode is summarised once, at commit, and the summary is folded into a running
aggregate whose size does not depend on how many episodes it has seen:

* count, mean and the sum of squared deviations ``m2`` merge exactly with Chan et al.'s parallel
  update (``std = sqrt(m2 / count)``, numpy's population std); min and max merge exactly.
* images keep an exact per-channel 256-bin histogram, which merges by addition (see
  :func:`histogram_stats`).
* q01/q99 of numeric features come from a t-digest (Dunning & Ertl 2019, "Computing extremely
  accurate quantiles using t-digests"), one per dimension: :class:`QuantileDigest`.

Why a t-digest, not LeRobot's rule. LeRobot v3 (``compute_stats.aggregate_feature_stats``) merges
quantiles as the count-weighted mean of the per-episode quantiles. That is the mean of the
episodes' 1 % points, not the 1 % point of the data: on two episodes whose action x is -0.02 in one
and +0.02 in the other it gives q01 = q99 = 0, and for ``index`` it gives the middle of the
dataset. Our action tokenizer bins actions between q01 and q99, so that error would move every
bin. A t-digest is mergeable, bounded in size (at most ``compression + 1`` centroids per
dimension, whatever the count), keeps single points at the tails where q01/q99 live, and is exact
while it holds single points only: a small dataset gets numpy's ``np.quantile`` (linear
interpolation) to the last bit, a large one an estimate whose rank error near q01/q99 is a small
fraction of a percent (``tests/sim/test_stats.py`` states the tolerance; ``embodied bench sim``
measures it on a collected dataset).

Why written here. t-digest libraries exist (``fastdigest``, ``tdigest``; Apache DataSketches has
KLL, whose additive rank error of ~1 % at a usable size is as large as q01 itself), but each is a
new compiled dependency with its own interpolation rule; the ~60 numpy lines below give numpy's
exact quantile on small data (``tests/sim/test_dataset.py`` compares with ``np.quantile``), run
all dimensions of a feature in one vectorised pass, and are deterministic across resumes.

Determinism. Summaries merge in episode order with the same floating-point operations, so a
dataset collected in one run and one resumed after a crash get identical statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

QUANTILES = {"q01": 0.01, "q99": 0.99}
# t-digest compression (delta). 1000 gives centroids of at most ~0.06 % of the data near q01/q99
# (k1 scale: dk/dq = 1.6 * delta there) and at most delta + 1 centroids per dimension (delta / 2
# unit buckets, each holding one merged centroid, and at most one centroid straddling each boundary);
# merging one episode costs a sort of ~1,100 floats per dimension, ~0.15 ms.
COMPRESSION = 1000.0


# --------------------------------------------------------------------------- exact, one array

def numeric_stats(values: np.ndarray) -> dict[str, list]:
    """Exact min/max/mean/std/count/q01/q99 per dimension of ``[N, D]`` (or ``[N]``) values."""
    x = np.asarray(values, dtype=np.float64)
    x = x.reshape(len(x), -1)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": [len(x)]}
    for name, q in QUANTILES.items():
        out[name] = np.quantile(x, q, axis=0)
    return {k: np.asarray(v).tolist() for k, v in out.items()}


def image_histogram(frames: np.ndarray) -> np.ndarray:
    """Exact per-channel histogram ``int64[3, 256]`` of ``uint8[T, H, W, 3]`` frames."""
    flat = np.asarray(frames).reshape(-1, 3)
    return np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.int64)


def histogram_stats(hist: np.ndarray) -> dict[str, list]:
    """Image statistics in [0, 1] per channel, shape (3, 1, 1), from a merged histogram.

    Quantiles are the smallest level whose cumulative share reaches q
    (``np.quantile(..., method="inverted_cdf")``), exact whatever the number of frames.
    """
    hist = np.asarray(hist, dtype=np.int64)
    levels = np.arange(256) / 255.0
    count = hist.sum(1)
    mean = (hist * levels).sum(1) / count
    var = (hist * (levels - mean[:, None]) ** 2).sum(1) / count
    cdf = np.cumsum(hist, 1)
    out: dict[str, Any] = {
        "min": [levels[np.flatnonzero(h)[0]] for h in hist],
        "max": [levels[np.flatnonzero(h)[-1]] for h in hist],
        "mean": mean, "std": np.sqrt(var),
    }
    for name, q in QUANTILES.items():
        out[name] = [levels[np.searchsorted(cdf[c], q * count[c])] for c in range(3)]
    stats = {k: np.asarray(v, dtype=np.float64).reshape(3, 1, 1).tolist() for k, v in out.items()}
    stats["count"] = [int(count[0])]
    return stats


# --------------------------------------------------------------------------- t-digest

def _k1(q: np.ndarray, compression: float) -> np.ndarray:
    """The t-digest k1 scale: steep at the tails, so centroids there stay small."""
    return compression / (2 * np.pi) * np.arcsin(np.clip(2 * q - 1, -1.0, 1.0))


@dataclass(frozen=True)
class QuantileDigest:
    """Merging t-digests of the D dimensions of one feature, held flat so numpy does all D at once.

    ``means`` (sorted within each dimension) and ``weights`` are the centroids; ``dims`` says which
    dimension each belongs to (ascending). Compression merges neighbouring centroids that lie inside
    one unit of the k1 scale, all at once: a vectorised form of Dunning's merging digest, in which a
    merged centroid never spans more than one k unit and one that already straddles a unit
    boundary is left alone.
    """

    means: np.ndarray
    weights: np.ndarray
    dims: np.ndarray
    n_dims: int

    @classmethod
    def from_values(cls, values: np.ndarray, compression: float = COMPRESSION) -> "QuantileDigest":
        """Digests of the columns of ``[N, D]`` values."""
        x = np.asarray(values, dtype=np.float64)
        x = x.reshape(len(x), -1)
        n, d = x.shape
        means = np.sort(x, axis=0, kind="stable").T.reshape(-1)
        return cls(means, np.ones(n * d), np.repeat(np.arange(d), n), d).compress(compression)

    def __len__(self) -> int:
        return len(self.means)

    def sizes(self) -> np.ndarray:
        """Centroids per dimension."""
        return np.bincount(self.dims, minlength=self.n_dims)

    def counts(self) -> np.ndarray:
        """Values seen per dimension."""
        return np.bincount(self.dims, weights=self.weights, minlength=self.n_dims)

    def merge(self, other: "QuantileDigest", compression: float = COMPRESSION) -> "QuantileDigest":
        if other.n_dims != self.n_dims:
            raise ValueError(f"cannot merge a digest of {other.n_dims} dimensions into one of {self.n_dims}")
        means = np.concatenate([self.means, other.means])
        weights = np.concatenate([self.weights, other.weights])
        dims = np.concatenate([self.dims, other.dims])
        order = np.lexsort((means, dims))  # stable: by dimension, then value
        return QuantileDigest(means[order], weights[order], dims[order], self.n_dims).compress(compression)

    def _local_cumsum(self) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative weight within each dimension, and each centroid's dimension total.

        Weights are whole counts, so these float64 sums are exact.
        """
        cum = np.cumsum(self.weights)
        first = np.searchsorted(self.dims, np.arange(self.n_dims))
        before = cum[first] - self.weights[first]
        total = np.bincount(self.dims, weights=self.weights, minlength=self.n_dims)
        return cum - before[self.dims], total[self.dims]

    def compress(self, compression: float = COMPRESSION) -> "QuantileDigest":
        w = self.weights
        if len(w) < 2:
            return self
        cum, total = self._local_cumsum()
        k_left = np.floor(_k1((cum - w) / total, compression))
        k_right = np.ceil(_k1(cum / total, compression)) - 1  # a right edge on k = j belongs to unit j-1
        inside = k_left == k_right
        start = np.ones(len(w), dtype=bool)
        start[1:] = ~(inside[1:] & inside[:-1] & (k_left[1:] == k_left[:-1]) & (self.dims[1:] == self.dims[:-1]))
        if start.all():
            return self
        idx = np.flatnonzero(start)
        weights = np.add.reduceat(w, idx)
        means = np.add.reduceat(w * self.means, idx) / weights
        single = np.diff(np.append(idx, len(w))) == 1
        means[single] = self.means[idx[single]]  # a lone centroid keeps its mean bit for bit
        return QuantileDigest(means, weights, self.dims[idx], self.n_dims)

    def quantile(self, q: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per dimension, numpy's linear-interpolation quantile from the centroids and exact min/max.

        A centroid of weight w covering ranks a..a+w-1 stands at rank a + (w-1)/2, the minimum at
        rank 0 and the maximum at rank n-1; values between are interpolated linearly in rank with
        numpy's own formula, so with weight-1 centroids this is ``np.quantile(x, q, axis=0)`` to
        the last bit.
        """
        cum, _ = self._local_cumsum()
        centers = cum - self.weights + (self.weights - 1) / 2
        n = self.counts()
        target = q * (n - 1)
        # each dimension's centroids between its anchors (0, lo) and (n - 1, hi), in one flat array
        k = np.arange(self.n_dims)
        first = np.searchsorted(self.dims, k)
        start = first + 2 * k  # where each dimension's lo anchor lands
        stop = np.append(first[1:], len(self.dims)) + 2 * k + 1  # ... and its hi anchor
        size = len(self.dims) + 2 * self.n_dims
        ranks, values, dims = np.empty(size), np.empty(size), np.empty(size, dtype=np.int64)
        inner = np.arange(len(self.dims)) + 2 * self.dims + 1
        ranks[inner], values[inner], dims[inner] = centers, self.means, self.dims
        ranks[start], values[start], dims[start] = 0.0, lo, k
        ranks[stop], values[stop], dims[stop] = n - 1, hi, k
        # i: the last point at or below the target rank; j: the next one (or i itself at the end)
        i = start + np.bincount(dims, weights=ranks <= target[dims], minlength=self.n_dims).astype(int) - 1
        j = np.minimum(i + 1, stop)
        a, b = values[i], values[j]
        gap = ranks[j] - ranks[i]
        t = np.divide(target - ranks[i], gap, out=np.zeros_like(gap), where=gap > 0)
        out = np.where(t < 0.5, a + (b - a) * t, b - (b - a) * (1 - t))  # numpy's _lerp
        return np.clip(out, lo, hi)


# --------------------------------------------------------------------------- one numeric feature

@dataclass(frozen=True)
class NumericSummary:
    """Mergeable statistics of ``[N, D]`` values: exact moments and extremes, t-digest quantiles."""

    count: int
    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations from the mean
    min: np.ndarray
    max: np.ndarray
    digest: QuantileDigest

    @classmethod
    def from_values(cls, values: np.ndarray) -> "NumericSummary":
        x = np.asarray(values, dtype=np.float64)
        x = x.reshape(len(x), -1)
        mean = x.mean(0)
        return cls(len(x), mean, ((x - mean) ** 2).sum(0), x.min(0), x.max(0), QuantileDigest.from_values(x))

    def merge(self, other: "NumericSummary") -> "NumericSummary":
        """Chan et al. (1979) for mean and m2; t-digest merge for the quantiles."""
        if other.mean.shape != self.mean.shape:
            raise ValueError(f"cannot merge statistics of shape {other.mean.shape} into {self.mean.shape}")
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta ** 2 * (self.count * other.count / n)
        return NumericSummary(n, mean, m2, np.minimum(self.min, other.min), np.maximum(self.max, other.max),
                              self.digest.merge(other.digest))

    def to_json(self) -> dict[str, list]:
        """The ``stats.json`` entry, keys and order as :func:`numeric_stats`."""
        out: dict[str, Any] = {"min": self.min, "max": self.max, "mean": self.mean,
                               "std": np.sqrt(self.m2 / self.count), "count": [self.count]}
        for name, q in QUANTILES.items():
            out[name] = self.digest.quantile(q, self.min, self.max)
        return {k: np.asarray(v).tolist() for k, v in out.items()}


# --------------------------------------------------------------------------- a whole dataset

@dataclass
class RunningStats:
    """The dataset's statistics, one episode at a time.

    ``add_episode`` costs O(episode length + digest size): nothing it does depends on how many
    episodes came before. ``to_json`` is ``stats.json``.
    """

    numeric: dict[str, NumericSummary] = field(default_factory=dict)
    hists: dict[str, np.ndarray] = field(default_factory=dict)
    episodes: int = 0

    def add_episode(self, numeric: Mapping[str, np.ndarray], hists: Mapping[str, np.ndarray]) -> None:
        self.merge_summary(summarize_episode(numeric), hists)

    def merge_summary(self, summary: Mapping[str, NumericSummary], hists: Mapping[str, np.ndarray]) -> None:
        """Fold in an episode already summarised (so the work can happen before its commit)."""
        for key, s in summary.items():
            self.numeric[key] = self.numeric[key].merge(s) if key in self.numeric else s
        for key, h in hists.items():
            h = np.asarray(h, dtype=np.int64)
            self.hists[key] = self.hists[key] + h if key in self.hists else h.copy()
        self.episodes += 1

    def to_json(self) -> dict[str, Any]:
        stats: dict[str, Any] = {key: s.to_json() for key, s in self.numeric.items()}
        stats.update({key: histogram_stats(h) for key, h in self.hists.items()})
        return stats


def summarize_episode(numeric: Mapping[str, np.ndarray]) -> dict[str, NumericSummary]:
    return {key: NumericSummary.from_values(values) for key, values in numeric.items()}


def aggregate_stats(numeric: Sequence[Mapping[str, np.ndarray]],
                    hists: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """``stats.json`` of whole episodes, merged in order exactly as the recorder merges them."""
    running = RunningStats()
    for ep_numeric, ep_hists in zip(numeric, hists):
        running.add_episode(ep_numeric, ep_hists)
    return running.to_json()
