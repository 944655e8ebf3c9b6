"""The action-chunk executor on its own, driven by a tiny real ``BasePolicy`` subclass whose every
action says which robot, which model call and which chunk position it came from."""

import numpy as np
import pytest

from policy.base import BasePolicy
from policy.errors import PolicyError
from policy.executor import ChunkExecutor


class LabelPolicy(BasePolicy):
    """Chunk of K actions; action j of the n-th call for robot r is ``[r, n, j, 0, 0, 0, grip]``.

    The gripper is 1 on odd calls, so tests can see which chunk the gripper follows.
    """

    def __init__(self, chunk: int = 4, replan: int | None = None) -> None:
        self.chunk = chunk
        self.replan = replan
        self.calls: list[list[int]] = []  # the robots sent in each predict_chunk call
        self.resets = 0

    def predict_chunk(self, observations, instructions):
        n = len(self.calls)
        self.calls.append([int(o["robot"][0]) for o in observations])
        out = np.zeros((len(observations), self.chunk, 7), np.float32)
        for b, obs in enumerate(observations):
            out[b, :, 0] = obs["robot"][0]
            out[b, :, 1] = n
            out[b, :, 2] = np.arange(self.chunk)
            out[b, :, 6] = n % 2
        return out

    def reset(self):
        self.resets += 1

    def describe(self):
        return {"chunk": self.chunk} | ({"replan": self.replan} if self.replan is not None else {})


def obs(robot: int) -> dict:
    return {"robot": np.array([robot], np.float32)}


def labels(actions: np.ndarray) -> list[tuple[int, int, int]]:
    """(robot, call, position in chunk) of each action."""
    return [(int(a[0]), int(a[1]), int(a[2])) for a in actions]


def test_open_loop_plays_replan_actions_of_each_chunk_in_order():
    policy = LabelPolicy(chunk=4, replan=3)
    ex = ChunkExecutor(policy)
    played = [labels(ex.act([obs(0)], ["go"]))[0] for _ in range(7)]
    assert played == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0), (0, 1, 1), (0, 1, 2), (0, 2, 0)]
    assert len(policy.calls) == 3


def test_open_loop_without_replan_plays_the_whole_chunk():
    ex = ChunkExecutor(LabelPolicy(chunk=3))
    played = [labels(ex.act([obs(0)], ["go"]))[0] for _ in range(4)]
    assert played == [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]


def test_ensemble_weights_older_chunks_more_and_takes_the_newest_gripper():
    policy = LabelPolicy(chunk=3)
    ex = ChunkExecutor(policy, execution="ensemble", ensemble_decay=0.5)
    actions = [ex.act([obs(0)], ["go"])[0] for _ in range(4)]
    assert len(policy.calls) == 4  # a model call every step
    # Step 2 is covered by call 0 (position 2), call 1 (position 1) and call 2 (position 0).
    w = np.exp(-0.5 * np.arange(3))
    assert actions[2][1] == pytest.approx((w * [0, 1, 2]).sum() / w.sum(), abs=1e-6)
    assert actions[2][2] == pytest.approx((w * [2, 1, 0]).sum() / w.sum(), abs=1e-6)
    # Step 3: call 0's chunk has run out; calls 1, 2, 3 remain.
    assert actions[3][1] == pytest.approx((w * [1, 2, 3]).sum() / w.sum(), abs=1e-6)
    assert actions[0][1] == 0.0  # a single chunk is played as is
    # The gripper is the newest chunk's, never a blend: call 2 says 0, call 3 says 1.
    assert [a[6] for a in actions] == [0.0, 1.0, 0.0, 1.0]
    assert all(a.dtype == np.float32 for a in actions)


def test_several_robots_share_one_call_and_keep_their_own_queues():
    policy = LabelPolicy(chunk=2)
    ex = ChunkExecutor(policy)
    first = ex.act([obs(5), obs(9)], ["a", "b"], indices=[5, 9])
    assert first.shape == (2, 7) and labels(first) == [(5, 0, 0), (9, 0, 0)]
    assert policy.calls == [[5, 9]]  # one batched call
    # Robot 9 pauses a step; robot 5 plays its queue, then both need a chunk again.
    assert labels(ex.act([obs(5)], ["a"], indices=[5])) == [(5, 0, 1)]
    assert labels(ex.act([obs(5), obs(9)], ["a", "b"], indices=[5, 9])) == [(5, 1, 0), (9, 0, 1)]
    assert policy.calls == [[5, 9], [5]]  # only robot 5 needed the model


def test_reset_one_index_forgets_only_that_robot():
    policy = LabelPolicy(chunk=3)
    ex = ChunkExecutor(policy)
    ex.act([obs(0), obs(1)], ["a", "b"])
    ex.reset(1)
    assert policy.resets == 0  # one robot's new episode does not reset the shared policy
    assert labels(ex.act([obs(0), obs(1)], ["a", "b"])) == [(0, 0, 1), (1, 1, 0)]
    assert policy.calls[-1] == [1]
    ex.reset()
    assert policy.resets == 1
    assert labels(ex.act([obs(0), obs(1)], ["a", "b"])) == [(0, 2, 0), (1, 2, 0)]


def test_ensemble_reset_restarts_the_step_count():
    policy = LabelPolicy(chunk=3)
    ex = ChunkExecutor(policy, execution="ensemble")
    ex.act([obs(0)], ["go"])
    ex.act([obs(0)], ["go"])
    ex.reset(0)
    again = ex.act([obs(0)], ["go"])[0]
    assert labels([again]) == [(0, 2, 0)]  # the fresh chunk alone, from its first action


def test_bad_settings_and_indices_are_policy_errors():
    with pytest.raises(PolicyError, match="execution"):
        ChunkExecutor(LabelPolicy(), execution="closed_loop")
    ex = ChunkExecutor(LabelPolicy())
    with pytest.raises(PolicyError, match="index"):
        ex.act([obs(0), obs(1)], ["a", "b"], indices=[3, 3])
    with pytest.raises(PolicyError, match="index"):
        ex.act([obs(0)], ["a"], indices=[0, 1])


def test_base_policy_must_implement_predict_chunk():
    class Nothing(BasePolicy):
        pass

    with pytest.raises(TypeError):
        Nothing()
    assert LabelPolicy().describe() == {"chunk": 4}


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_actions_of_a_chunk_older_than_max_age_are_dropped_not_played():
    policy, clock = LabelPolicy(chunk=4), FakeClock()
    ex = ChunkExecutor(policy, max_age_s=0.2, clock=clock)
    assert labels(ex.act([obs(0)], ["go"])) == [(0, 0, 0)]
    assert ex.chunk_time(0) == 100.0
    clock.t += 0.15
    assert labels(ex.act([obs(0)], ["go"])) == [(0, 0, 1)]  # 150 ms old: still played
    clock.t += 0.1
    # 250 ms old: positions 2 and 3 are dropped, a new chunk is requested and its first action played.
    assert labels(ex.act([obs(0)], ["go"])) == [(0, 1, 0)]
    assert ex.expired == 1 and ex.chunk_time(0) == pytest.approx(100.25)


def test_a_dead_model_cannot_be_hidden_by_queued_actions():
    class DiesAfterOneCall(LabelPolicy):
        def predict_chunk(self, observations, instructions):
            if self.calls:
                raise TimeoutError("server gone")
            return super().predict_chunk(observations, instructions)

    clock = FakeClock()
    ex = ChunkExecutor(DiesAfterOneCall(chunk=8), max_age_s=0.2, clock=clock)
    ex.act([obs(0)], ["go"])
    clock.t += 0.3
    with pytest.raises(TimeoutError):  # the queue still holds 7 actions, but all are too old
        ex.act([obs(0)], ["go"])


def test_ensemble_drops_chunks_older_than_max_age():
    policy, clock = LabelPolicy(chunk=4), FakeClock()
    ex = ChunkExecutor(policy, execution="ensemble", max_age_s=0.2, clock=clock)
    ex.act([obs(0)], ["go"])
    clock.t += 0.1
    ex.act([obs(0)], ["go"])
    clock.t += 0.15  # call 0 is now 250 ms old: only calls 1 and 2 vote
    third = ex.act([obs(0)], ["go"])[0]
    w = np.exp(-0.1 * np.arange(2))
    assert third[1] == pytest.approx((w * [1, 2]).sum() / w.sum(), abs=1e-6)
    assert ex.expired == 1 and ex.chunk_time(0) == pytest.approx(100.1)


@pytest.mark.parametrize("execution", ["open_loop", "ensemble"])
def test_non_finite_state_is_refused_even_with_actions_queued(execution):
    policy = LabelPolicy(chunk=4)
    ex = ChunkExecutor(policy, execution=execution)
    ex.act([{**obs(0), "state": np.zeros(3, np.float32)}], ["go"])
    calls = len(policy.calls)
    with pytest.raises(PolicyError, match="NaN or infinity"):
        ex.act([{**obs(0), "state": np.array([0.0, np.nan, 0.0], np.float32)}], ["go"])
    assert len(policy.calls) == calls  # the model never saw it
    # The queue was voided: the next good observation gets a fresh chunk, not a stale action.
    assert labels(ex.act([{**obs(0), "state": np.zeros(3, np.float32)}], ["go"])) == [(0, calls, 0)]


def test_max_age_must_be_positive():
    with pytest.raises(PolicyError, match="max_age_s"):
        ChunkExecutor(LabelPolicy(), max_age_s=0)
