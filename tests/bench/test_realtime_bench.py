"""`embodied bench realtime`: its metrics and its reading of issue 27's criteria, on made-up
episodes (the closed-loop run itself is real time, so it is run by hand, not here)."""

import numpy as np

from bench import realtime_bench
from policy.base import BasePolicy


class Stub(BasePolicy):
    def predict_chunk(self, observations, instructions):
        return np.zeros((len(observations), 4, 7), np.float32)

    def describe(self):
        return {"chunk": 4, "replan": 3}


def test_jumps_are_split_at_chunk_boundaries_and_reaction_counts_from_the_observation():
    actions = np.zeros((5, 7))
    actions[:, 0] = [0.0, 0.1, 0.2, 0.6, 0.7]  # the jump 0.2 -> 0.6 is where chunk 2 takes over
    actions[:, 6] = [0, 0, 1, 1, 1]  # gripper steps are meant: not counted
    ep = {"t_obs": np.array([0.0, 0.1, 0.2, 0.3, 0.4]), "t_cmd": np.array([0.01, 0.11, 0.21, 0.31, 0.41]),
          "actions": actions, "sources": [1, 1, 1, 2, 2], "born_tick": {1: 0, 2: 1}}
    m = realtime_bench.episode_metrics(ep)
    assert np.allclose(m["interval"], 0.1) and np.allclose(m["act"], 0.01) and len(m["act"]) == 4
    assert np.allclose(m["boundary"], [0.4])
    assert np.allclose(m["within"], [0.1, 0.1, 0.1])
    # chunk 1 (observed at tick 0) first played at 0.01; chunk 2 (observed at tick 1) at 0.31
    assert np.allclose(m["reaction"], [0.01, 0.21])


def test_done_when_compares_async_at_200_ms_with_sync():
    def cell(jitter, boundary, within, success, ci=(0.8, 1.0)):
        return {"jitter_p99": jitter, "boundary_jump": boundary, "within_chunk_jump": within,
                "success_rate": success, "ci95": list(ci)}

    table = {"sync": {"0": cell(0.02, 0.03, 0.02, 0.96), "200": cell(2.5, 0.03, 0.02, 0.96)},
             "async": {"200": cell(0.05, 0.019, 0.0, 0.84)}}
    verdict = realtime_bench._done_when(table, 200.0)
    assert verdict["async_jitter_under_10pct"] and verdict["sync_stalls"]
    # the reference is the policy's own within-chunk jump (sync, 0 ms), not async's holds (0.0)
    assert verdict["within_chunk_jump"] == 0.02 and verdict["boundary_not_larger"]
    assert verdict["success_within_ci_of_sync_0ms"]
    table["async"]["200"]["success_rate"] = 0.76
    assert not realtime_bench._done_when(table, 200.0)["success_within_ci_of_sync_0ms"]
    assert realtime_bench._done_when({"async": table["async"]}, 200.0) == {}  # cells missing
    # The guided blend plays the belief's mean: sync-mean's within-chunk jump is also read.
    table["async"]["200"]["blend"] = "guided"
    table["sync-mean"] = {"200": cell(0.02, 0.03, 0.021, 0.96)}
    verdict = realtime_bench._done_when(table, 200.0)
    assert verdict["within_chunk_jump_same_decoding"] == 0.021 and verdict["boundary_not_larger_same_decoding"]
    table["sync-mean"]["200"]["within_chunk_jump"] = 0.015
    assert not realtime_bench._done_when(table, 200.0)["boundary_not_larger_same_decoding"]


def test_modes_pick_the_executor_settings():
    ex = realtime_bench.make_executor("async", Stub(), 0.1, hold_steps=1)
    # a policy without a distribution falls back to prefix; with one, async is guided
    assert (ex.execution, ex.blend, ex.max_inflight, ex.hold_steps) == ("async", "prefix", 4, 1)
    believer = Stub()
    believer.describe = lambda: {"chunk": 4, "replan": 3, "distribution": True}
    assert realtime_bench.make_executor("async", believer, 0.1).blend == "guided"
    assert realtime_bench.make_executor("sync-mean", believer, 0.1).execution == "open_loop"
    assert realtime_bench.make_executor("async-crossfade", Stub(), 0.1).blend == "crossfade"
    assert realtime_bench.make_executor("async-serial", Stub(), 0.1).max_inflight == 1
    assert realtime_bench.make_executor("sync", Stub(), 0.1).execution == "open_loop"
    tuned = realtime_bench.make_executor("async-ensemble", Stub(), 0.1, margin_steps=8, ensemble_decay=-1.0)
    assert (tuned.margin, tuned.decay, tuned.blend) == (8, -1.0, "ensemble")


def test_mean_intervals_resample_whole_episodes():
    from common.stats import cluster_bootstrap_mean

    same = cluster_bootstrap_mean([[0.02, 0.02], [0.02], [0.02, 0.02, 0.02]])
    assert np.allclose(same, 0.02)  # no spread, no width
    lo, hi = cluster_bootstrap_mean([[0.01] * 5, [0.03] * 5, [0.01] * 5, [0.03] * 5])
    assert 0.01 <= lo < 0.02 < hi <= 0.03  # four episodes of two kinds: the pooled mean is unsure
    assert cluster_bootstrap_mean([[], []]) is None
    assert np.allclose(cluster_bootstrap_mean([[1.0, 3.0]], seed=1), 2.0)  # one episode: its mean


def test_the_committed_mode_asks_one_chunk_at_a_time_of_a_policy_trained_for_it():
    import pytest

    from policy.errors import PolicyError

    class Committing(Stub):
        def describe(self):
            return {"chunk": 8, "replan": 3, "committed_steps": 4}

    ex = realtime_bench.make_executor("async-committed", Committing(), 0.1)
    assert (ex.blend, ex.max_inflight, ex.committed_steps) == ("committed", 1, 4)
    with pytest.raises(PolicyError, match="committed_steps"):
        realtime_bench.make_executor("async-committed", Stub(), 0.1)


def test_sync_mean_plays_the_beliefs_mean_and_the_executor_agrees():
    from policy.base import ChunkDistribution
    from policy.executor import belief_mean

    values = np.tile(np.linspace(-1, 1, 5), (7, 1))
    log_probs = np.log(np.full((1, 2, 7, 5), 1e-12))
    log_probs[..., 3] = log_probs[..., 4] = np.log(0.5)  # half at 0.5, half at 1.0

    class Believer(Stub):
        def predict_chunk_distribution(self, observations, instructions):
            return ChunkDistribution(np.full((1, 2, 7), 1.0, np.float32), log_probs.astype(np.float32), values)

    chunk = realtime_bench.MeanDecoded(Believer()).predict_chunk([{}], ["go"])
    np.testing.assert_allclose(chunk[..., :6], 0.75, atol=1e-6)
    assert np.all(chunk[..., 6] == 1.0)  # the gripper stays the most likely value
    # with a prior around a previous command of -1, the nearer mode (0.5) weighs more
    pulled = belief_mean(np.ones(7), log_probs[0, 0], values, previous=np.full(7, -1.0), weight=1.0)
    assert 0.5 < pulled[0] < 0.75
