"""sim.stats: incremental statistics against exact numpy ones, bounded state, order-exact merging."""

import numpy as np

from sim.stats import (COMPRESSION, NumericSummary, QuantileDigest, RunningStats, aggregate_stats,
                       histogram_stats, image_histogram, numeric_stats)

# The stated tolerance of the merged q01/q99 on a large dataset: 0.5 % of the exact q99 - q01 span
# (the action tokenizer's 256 bins are 0.4 % each), and the estimate's rank within 0.1 point of q.
SPAN_TOL = 0.005
RANK_TOL = 0.001


def _episodes(n_eps, seed=0):
    """Episodes unlike each other (shifted, bimodal, clipped, integer, constant columns), as the
    four task families of a mixed dataset are."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n_eps):
        n = int(rng.integers(5, 120))
        side = 0.02 if e % 2 else -0.02
        x = np.stack([
            rng.normal(rng.normal(0, 0.5), 1.0, n),                      # per-episode offset
            np.full(n, side) + rng.normal(0, 0.002, n),                 # bimodal over episodes
            np.clip(rng.normal(0, 0.03, n), -0.05, 0.05),               # clipped: many at the bounds
            np.full(n, 1.0),                                            # constant
            np.full(n, float(e)),                                       # an index column
            rng.standard_cauchy(n),                                     # heavy tails
        ], 1).astype(np.float32)
        out.append(x)
    return out


def _fold(episodes):
    run = None
    for x in episodes:
        s = NumericSummary.from_values(x)
        run = s if run is None else run.merge(s)
    return run


def test_small_data_is_exactly_numpy():
    eps = _episodes(6)
    got, exact = _fold(eps).to_json(), numeric_stats(np.concatenate(eps))
    assert got["count"] == exact["count"]
    for key in ("min", "max"):
        assert got[key] == exact[key]
    for key in ("mean", "std", "q01", "q99"):
        np.testing.assert_allclose(got[key], exact[key], rtol=1e-12, atol=1e-15)


def test_large_data_within_the_stated_tolerance():
    eps = _episodes(2000)
    x = np.concatenate(eps).astype(np.float64)
    run = _fold(eps)
    got, exact = run.to_json(), numeric_stats(x)
    assert got["count"] == [len(x)] and len(x) > 100_000
    assert got["min"] == exact["min"] and got["max"] == exact["max"]
    np.testing.assert_allclose(got["mean"], exact["mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["std"], exact["std"], rtol=1e-9, atol=1e-12)
    span = np.subtract(exact["q99"], exact["q01"])
    for name, q in (("q01", 0.01), ("q99", 0.99)):
        err = np.abs(np.subtract(got[name], exact[name]))
        assert np.all(err <= SPAN_TOL * span + 1e-12), (name, err / np.maximum(span, 1e-12))
        for d in (0, 1, 5):  # continuous columns: the estimate sits at rank q
            assert abs((x[:, d] < got[name][d]).mean() - q) < RANK_TOL
    # the bimodal column: the 1 % point of the data, not the mean of the episodes' 1 % points
    # (LeRobot's weighted-mean rule would give about 0 for both)
    assert got["q01"][1] < -0.019 and got["q99"][1] > 0.019


def test_state_stays_bounded_whatever_the_count():
    run = _fold(_episodes(300))
    sizes_300 = run.digest.sizes()
    for x in _episodes(1700, seed=1):
        run = run.merge(NumericSummary.from_values(x))
    sizes_2000 = run.digest.sizes()
    assert sizes_2000.max() <= COMPRESSION + 1
    assert sizes_2000.sum() <= 1.3 * sizes_300.sum() + 6 * 50  # not proportional to 6x the data
    assert run.digest.counts().tolist() == [run.count] * 6


def test_digest_of_single_points_is_numpy_quantile_and_merging_keeps_weight():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    d = QuantileDigest.from_values(x)
    assert d.sizes().tolist() == [40, 40, 40]  # small: every point its own centroid
    for q in (0.0, 0.01, 0.37, 0.5, 0.99, 1.0):
        assert d.quantile(q, x.min(0), x.max(0)).tolist() == np.quantile(x, q, axis=0).tolist()
    big = QuantileDigest.from_values(rng.normal(size=(50_000, 3)))
    assert big.sizes().max() <= COMPRESSION + 1
    merged = big.merge(d)
    assert merged.counts().tolist() == [50_040] * 3 and np.all(np.diff(merged.dims) >= 0)
    for k in range(3):
        assert np.all(np.diff(merged.means[merged.dims == k]) >= 0)


def test_incremental_equals_batch_bit_for_bit_and_images_are_exact():
    rng = np.random.default_rng(0)
    eps = [{"action": x, "index": np.arange(len(x))} for x in _episodes(50)]
    frames = [rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8) for _ in eps]
    hists = [{"observation.images.cam": image_histogram(f)} for f in frames]
    running = RunningStats()
    for numeric, h in zip(eps, hists):
        running.add_episode(numeric, h)
    assert running.to_json() == aggregate_stats(eps, hists)  # the writer and the reader agree exactly
    assert running.episodes == 50
    assert running.to_json()["observation.images.cam"] == histogram_stats(
        image_histogram(np.concatenate(frames)))
