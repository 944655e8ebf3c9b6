"""The executor's async mode (real-time chunking) on its own: a stub ``BasePolicy`` whose calls the
test holds and releases, and a fake clock, so alignment, blending, the latency-adaptive threshold and
the staleness watchdog are checked exactly, with no wall-clock timing."""

import threading

import numpy as np
import pytest

from policy.base import BasePolicy, ChunkDistribution
from policy.errors import PolicyError
from policy.executor import ChunkExecutor


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class HeldPolicy(BasePolicy):
    """Chunks of K actions; action j of call n is ``[n, j, value, 0, 0, 0, n % 2]`` with
    ``value = 10 n + (observed step) + j``: each call's plan is a ramp, offset by 10 per call.
    While ``gate`` is cleared, calls wait in ``predict_chunk`` (a slow model) until it is set."""

    def __init__(self, chunk: int = 8, replan: int | None = None) -> None:
        self.chunk = chunk
        self.replan = replan
        self.gate = threading.Event()
        self.gate.set()
        self.asked_at: list[int] = []  # the observed step of each call
        self.fail = False

    def predict_chunk(self, observations, instructions):
        n = len(self.asked_at)
        self.asked_at.append(int(observations[0]["step"][0]))
        assert self.gate.wait(10), "the test never released the call"
        if self.fail:
            raise TimeoutError("server gone")
        out = np.zeros((len(observations), self.chunk, 7), np.float32)
        for b, obs in enumerate(observations):
            out[b, :, 0] = n
            out[b, :, 1] = np.arange(self.chunk)
            out[b, :, 2] = 10 * n + obs["step"][0] + np.arange(self.chunk)
            out[b, :, 6] = n % 2
        return out

    def describe(self):
        return {"chunk": self.chunk} | ({"replan": self.replan} if self.replan else {})


def obs(step: int) -> dict:
    return {"step": np.array([step], np.float32)}


class Loop:
    """Drives an executor one control step at a time, advancing the fake clock by the period."""

    def __init__(self, policy, period=0.1, **kwargs):
        self.policy, self.clock, self.period = policy, FakeClock(), period
        self.ex = ChunkExecutor(policy, execution="async", period_s=period, clock=self.clock, **kwargs)
        self.step = 0

    def act(self) -> np.ndarray:
        action = self.ex.act([obs(self.step)], ["go"])[0]
        settle(self.ex, self.policy)
        self.step += 1
        self.clock.t += self.period
        return action

    def release(self):
        """Let the held call answer now (at the fake clock's time) and wait until it has."""
        self.policy.gate.set()
        assert self.ex.join(10)


def settle(ex, policy):
    """Wait until every call the executor started has reached the policy (they run on threads)."""
    for _ in range(1000):
        if len(policy.asked_at) == ex.calls:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{ex.calls} calls started, {len(policy.asked_at)} reached the policy")


def label(action) -> tuple[int, int]:
    return int(action[0]), int(action[1])


def test_a_new_chunk_is_aligned_by_the_steps_played_while_it_was_computed():
    policy = HeldPolicy(chunk=8)
    loop = Loop(policy, blend="none", margin_steps=7)  # ask early: once fewer than 7 steps are covered
    assert label(loop.act()) == (0, 0)  # the first step waits for the first chunk
    assert loop.ex.waits == 1 and policy.asked_at == [0]
    policy.gate.clear()  # the next call is slow
    assert label(loop.act()) == (0, 1)  # 6 steps left after this one: ask, observing step 1
    assert policy.asked_at == [0, 1]
    assert [label(loop.act()) for _ in range(3)] == [(0, 2), (0, 3), (0, 4)]  # played meanwhile
    loop.release()
    # Steps 1-4 were played while call 1 was computed: its first four actions are stale, the
    # fifth (position 4, for step 5) is played now, without waiting.
    assert label(loop.act()) == (1, 4)
    assert loop.ex.waits == 1 and loop.ex.chunk_id(0) == 2  # call numbers count from 1


def test_crossfade_blends_the_new_chunk_in_over_the_overlap_without_a_jump():
    def run(blend):
        policy = HeldPolicy(chunk=8)
        loop = Loop(policy, blend=blend, margin_steps=7)
        played = [loop.act()]
        policy.gate.clear()
        played += [loop.act() for _ in range(4)]  # call 1 (observed step 1) is asked at step 1
        loop.release()
        policy.gate.clear()  # later calls stay out of the picture
        played += [loop.act() for _ in range(4)]
        loop.release()
        return np.array(played)

    cross, none = run("crossfade"), run("none")
    # Call 0 plans value s at step s; call 1 plans 10 + s. It arrives at step 5, where the old plan
    # still covers steps 5-7: weights 1/4, 2/4, 3/4 on the new chunk there, then the new alone.
    # The 10-unit jump between the plans becomes steps of 1 + 10/4.
    assert cross[:, 2].tolist() == pytest.approx([0, 1, 2, 3, 4, 7.5, 11, 14.5, 18])
    assert np.abs(np.diff(cross[:, 2])).max() == pytest.approx(3.5)
    assert np.abs(np.diff(none[:, 2])).max() == pytest.approx(11)  # replacing jumps by the offset
    assert cross[-1, 2] == none[-1, 2]  # after the overlap both play the new chunk
    assert cross[5:, 6].tolist() == [1, 1, 1, 1]  # the gripper follows the newest chunk, unblended


def test_ensemble_blend_keeps_each_overlapping_chunks_vote_oldest_first():
    policy = HeldPolicy(chunk=8)
    loop = Loop(policy, blend="ensemble", ensemble_decay=0.5, margin_steps=7)
    loop.act()
    policy.gate.clear()
    [loop.act() for _ in range(4)]
    loop.release()
    action = loop.act()  # step 5: call 0 says 5, call 1 says 15
    w = np.exp(-0.5 * np.arange(2))
    assert action[2] == pytest.approx((w * [5, 15]).sum() / w.sum())


def test_the_threshold_follows_the_measured_latency():
    policy = HeldPolicy(chunk=16)
    loop = Loop(policy, period=0.1, blend="none", margin_steps=1)
    loop.act()
    assert loop.ex.threshold_steps == 1  # the first call took no (fake) time: 0 steps + margin
    # Covered steps fall below 1 only at the end of the chunk: no call until step 15.
    [loop.act() for _ in range(14)]
    assert policy.asked_at == [0]
    policy.gate.clear()
    loop.act()  # step 15: nothing left after it: ask
    assert policy.asked_at == [0, 15]
    loop.clock.t += 0.25  # this call takes 350 ms in all (100 ms of the step, then 250 more)
    loop.release()
    loop.act()  # step 16 waits for nothing: call 1 covers steps 16-30
    assert loop.ex.threshold_steps == 5 and loop.ex.waits == 1  # ceil(0.35 / 0.1) + 1
    # The next call goes out as soon as fewer than 5 steps are covered: after step 26.
    while len(policy.asked_at) < 3:
        loop.act()
    assert policy.asked_at[-1] == 26


def test_the_control_period_is_measured_when_not_given():
    policy = HeldPolicy(chunk=4)
    clock = FakeClock()
    ex = ChunkExecutor(policy, execution="async", clock=clock, blend="none")

    def step(n):
        ex.act([obs(n)], ["go"])
        settle(ex, policy)
        assert ex.join(10)
        clock.t += 0.05  # 50 ms apart

    for n in range(6):
        step(n)
    assert ex.threshold_steps == 2  # calls that took no time: 0 steps + margin
    policy.gate.clear()
    n, calls = 6, ex.calls
    while ex.calls == calls:  # play on until the next call goes out (and is held)
        born = clock.t
        ex.act([obs(n)], ["go"])
        settle(ex, policy)
        clock.t += 0.05
        n += 1
    clock.t = born + 0.3  # this call takes 300 ms: six 50 ms periods
    policy.gate.set()
    assert ex.join(10)
    ex.act([obs(n)], ["go"])
    assert ex.threshold_steps == 6 + 2
    ex.close()


def test_the_watchdog_never_plays_a_chunk_older_than_max_age():
    policy = HeldPolicy(chunk=8)
    loop = Loop(policy, blend="none", max_age_s=0.3, margin_steps=1)
    loop.act()  # t=100.0: call 0
    policy.gate.clear()
    assert [label(loop.act()) for _ in range(3)] == [(0, 1), (0, 2), (0, 3)]  # ages 0.1-0.3 s
    assert policy.asked_at == [0, 3]  # asked when no young action was left after step 3
    # Step 4 (t=100.4): call 0 is 400 ms old. Nothing young covers the step: it waits for call 1
    # (released from another thread), and never plays call 0's queued position 4.
    threading.Timer(0.2, policy.gate.set).start()
    assert label(loop.act()) == (1, 1)
    assert loop.ex.expired >= 1 and loop.ex.waits == 2
    assert loop.ex.chunk_time(0) == pytest.approx(100.3)


def test_a_failed_background_call_stops_the_robot_instead_of_playing_on():
    policy = HeldPolicy(chunk=8)
    loop = Loop(policy, blend="none", margin_steps=7)
    loop.act()
    policy.gate.clear()
    loop.act()  # call 1 goes out
    policy.fail = True
    loop.release()
    with pytest.raises(TimeoutError):  # raised at the next step, though call 0 still covers it
        loop.act()
    with pytest.raises(TimeoutError):  # the plan was voided: the next step asks again, and fails
        loop.act()
    policy.fail = False
    assert label(loop.act())[0] == 3  # the model is back: a fresh chunk, played from its start
    assert label(loop.act())[1] == 1


def test_reset_drops_the_answer_of_a_call_made_in_the_previous_episode():
    policy = HeldPolicy(chunk=8)
    loop = Loop(policy, blend="none", margin_steps=7)
    loop.act()
    policy.gate.clear()
    loop.act()  # call 1, for the old episode
    loop.ex.reset(0)
    loop.release()
    assert label(loop.act()) == (2, 0)  # a new call for the new episode, from its first action
    assert loop.ex.waits == 2


def test_robots_share_one_call_and_a_nan_state_voids_only_its_plan():
    policy = HeldPolicy(chunk=4)
    ex = ChunkExecutor(policy, execution="async", period_s=0.1, clock=FakeClock(), blend="none")
    first = ex.act([obs(0), obs(0)], ["a", "b"], indices=[3, 7])
    assert first.shape == (2, 7) and len(policy.asked_at) == 1  # one batched call
    ex.join(10)
    bad = {**obs(1), "state": np.array([np.nan], np.float32)}
    with pytest.raises(PolicyError, match="NaN"):
        ex.act([bad], ["a"], indices=[3])
    calls = len(policy.asked_at)
    assert label(ex.act([obs(1)], ["b"], indices=[7])[0]) == (0, 1)  # robot 7 plays on
    assert label(ex.act([obs(1)], ["a"], indices=[3])[0])[1] == 0  # robot 3 starts a fresh chunk
    assert len(policy.asked_at) > calls
    ex.close()


def test_async_settings_are_checked():
    with pytest.raises(PolicyError, match="blend"):
        ChunkExecutor(HeldPolicy(), execution="async", blend="average")
    with pytest.raises(PolicyError, match="period_s"):
        ChunkExecutor(HeldPolicy(), execution="async", period_s=0.0)
    with pytest.raises(PolicyError, match="max_inflight"):
        ChunkExecutor(HeldPolicy(), execution="async", max_inflight=0)


def test_prefix_blend_rejoins_the_new_chunks_path_from_where_the_robot_really_is():
    policy = HeldPolicy(chunk=8)
    loop = Loop(policy, blend="prefix", margin_steps=7)
    played = [loop.act()]
    policy.gate.clear()
    played += [loop.act() for _ in range(4)]  # call 1 observes step 1; steps 1-4 play call 0
    loop.release()
    policy.gate.clear()  # later calls stay out of the picture
    played += [loop.act(), loop.act()]
    loop.release()
    # Call 1 planned 11, 12, 13, 14 for steps 1-4 (value 10 + 1 + j), where the robot played
    # call 0's 1, 2, 3, 4: its first fresh action (15, for step 5) makes up PREFIX_GAIN / 5 of
    # the 40 it missed (four steps missed); the next chunk would measure what is left.
    from policy.executor import PREFIX_GAIN

    assert [a[2] for a in played] == pytest.approx([0, 1, 2, 3, 4, 15 + 40 * PREFIX_GAIN / 5, 16])
    assert played[5][6] == 1 and played[6][6] == 1  # the gripper is not a path: never shifted


def test_a_late_chunk_is_bridged_by_holding_the_last_command_instead_of_stalling():
    policy = HeldPolicy(chunk=4)
    loop = Loop(policy, blend="none", margin_steps=1, hold_steps=1, max_age_s=0.5)
    assert [label(loop.act()) for _ in range(3)] == [(0, 0), (0, 1), (0, 2)]
    policy.gate.clear()
    last = loop.act()  # step 3, the chunk's last action: call 1 goes out, and is late
    assert policy.asked_at == [0, 3] and label(last) == (0, 3)
    held = loop.act()  # step 4: nothing covers it; the call is on its way: hold, no wait
    assert np.array_equal(held, last) and loop.ex.holds == 1 and loop.ex.waits == 1
    assert loop.ex.chunk_id(0) == 1  # the same chunk: not a boundary
    # Step 5: one hold was allowed; now it waits for call 1, then plays it aligned (position 2).
    threading.Timer(0.2, policy.gate.set).start()
    assert label(loop.act()) == (1, 2)
    assert loop.ex.waits == 2 and loop.ex.holds == 1


def test_holding_never_replays_a_command_older_than_max_age():
    policy = HeldPolicy(chunk=4)
    loop = Loop(policy, blend="none", margin_steps=1, hold_steps=3, max_age_s=0.35)
    [loop.act() for _ in range(3)]
    policy.gate.clear()
    loop.act()  # step 3 (t=100.3): its chunk was asked at t=100.0
    loop.clock.t += 0.1  # step 4 at t=100.5: that chunk is 500 ms old, past max_age
    threading.Timer(0.2, policy.gate.set).start()
    assert label(loop.act())[0] == 1  # it waited for the new chunk instead of holding
    assert loop.ex.holds == 0 and loop.ex.waits == 2


def test_time_spent_waiting_counts_toward_max_age():
    policy = HeldPolicy(chunk=4)
    loop = Loop(policy, blend="none", max_age_s=0.5, margin_steps=0)  # asks only when bare
    assert [label(loop.act()) for _ in range(4)] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    policy.gate.clear()

    def slow_answer():  # call 1 (asked at t=100.4) answers 600 ms later
        loop.clock.t += 0.6
        policy.gate.set()

    threading.Timer(0.2, slow_answer).start()
    # Step 4 waits for call 1; by then its chunk is older than max_age: never played. A fresh
    # call (2) is asked and played instead.
    assert label(loop.act()) == (2, 0)
    assert loop.ex.expired >= 1


class CommittingPolicy(HeldPolicy):
    """A policy trained for real-time chunking (``committed_steps``): records what it was told."""

    def __init__(self, chunk: int = 8, committed_steps: int = 3) -> None:
        super().__init__(chunk)
        self.committed_steps = committed_steps
        self.told: list[np.ndarray | None] = []

    def predict_chunk(self, observations, instructions):
        self.told.append(observations[0].get("committed"))
        return super().predict_chunk(observations, instructions)

    def describe(self):
        return super().describe() | {"committed_steps": self.committed_steps}


def test_committed_blend_tells_the_model_what_the_robot_will_play_and_keeps_it():
    policy = CommittingPolicy(chunk=8, committed_steps=3)
    loop = Loop(policy, blend="committed", margin_steps=7)
    assert label(loop.act()) == (0, 0) and policy.told == [None]  # a robot that waits commits nothing
    policy.gate.clear()
    loop.act()  # step 1: ask, observing step 1; no latency measured yet beyond 0: one step told
    assert policy.asked_at == [0, 1]
    np.testing.assert_array_equal(policy.told[1][:, :2], [[0, 1]])  # the command played at step 1
    [loop.act() for _ in range(3)]  # steps 2-4 while call 1 thinks
    loop.release()  # call 1 took 0.4 s (4 periods)
    assert label(loop.act()) == (1, 4)  # step 5, its first fresh action
    # Step 5 asks call 2: told the command just played and the plan's next two (3 = committed_steps,
    # under the 4 periods the last call took).
    assert policy.asked_at[-1] == 5
    np.testing.assert_array_equal(policy.told[2][:, :2], [[1, 4], [1, 5], [1, 6]])
    loop.release()
    # Call 2 (observed step 5) answers at once; steps 6 and 7 were told it as committed: they play
    # as planned, and its own actions take over at step 8 (its position 3).
    assert [label(loop.act()) for _ in range(3)] == [(1, 5), (1, 6), (2, 3)]


def test_committed_blend_needs_a_policy_trained_for_it_and_one_call_at_a_time():
    with pytest.raises(PolicyError, match="committed_steps"):
        ChunkExecutor(HeldPolicy(chunk=8), execution="async", blend="committed")
    with pytest.raises(PolicyError, match="max_inflight"):
        ChunkExecutor(CommittingPolicy(), execution="async", blend="committed", max_inflight=2)


class BeliefPolicy(BasePolicy):
    """Chunks of 2 whose distribution over dimension 2's five values (-2 .. 2) is peaked at 2 on
    the first call and split between -2 and 2 on every later one; the gripper (argmax) is closed."""

    values = np.tile(np.linspace(-2, 2, 5, dtype=np.float32), (7, 1))

    def __init__(self):
        self.asked_at = []
        self.gate = threading.Event()
        self.gate.set()
        self.values = self.values.copy()
        self.values[3:5] = 0.0  # constant dimensions: nothing to choose
        self.values[6] = [0, 0, 1, 1, 1]

    def predict_chunk(self, observations, instructions):
        return self.predict_chunk_distribution(observations, instructions).actions

    def predict_chunk_distribution(self, observations, instructions):
        first = not self.asked_at
        self.asked_at.append(int(observations[0]["step"][0]))
        p = np.full(5, 1e-9)
        p[[4] if first else [0, 4]] = 1.0
        log_probs = np.tile(np.log(p / p.sum()), (len(observations), 2, 7, 1)).astype(np.float32)
        actions = np.zeros((len(observations), 2, 7), np.float32)
        actions[..., :3], actions[..., 6] = 2.0, 1.0  # the most likely values
        return ChunkDistribution(actions, log_probs, self.values)

    def describe(self):
        return {"chunk": 2, "distribution": True}


@pytest.mark.parametrize("weight, second", [(0.0, 0.0), (5.0, 2.0)])
def test_guided_blend_plays_the_belief_under_a_prior_of_continuing_motion(weight, second):
    loop = Loop(BeliefPolicy(), blend="guided", guide_weight=weight, margin_steps=2)
    first = loop.act()  # nothing played yet: the plain mean of a belief peaked at 2
    np.testing.assert_allclose(first[:3], 2.0, atol=1e-6)
    assert first[6] == 1.0 and first[3] == first[4] == 0.0  # the gripper is the argmax's
    then = loop.act()  # the second call's belief: half at -2, half at 2
    # Without the prior its mean is 0, a motion neither mode means; with it, the mode the robot
    # is following wins.
    np.testing.assert_allclose(then[:3], second, atol=1e-3)
    assert then[6] == 1.0 and loop.ex.chunk_id(0) == 2


def test_guided_blend_needs_a_policy_that_gives_its_distribution():
    with pytest.raises(PolicyError, match="distribution"):
        ChunkExecutor(HeldPolicy(chunk=8), execution="async", blend="guided")
    with pytest.raises(PolicyError, match="guide_weight"):
        ChunkExecutor(BeliefPolicy(), execution="async", blend="guided", guide_weight=-1)


def test_a_malformed_or_nan_distribution_stops_the_robot_instead_of_becoming_a_command():
    class Broken(BeliefPolicy):
        def __init__(self, how):
            super().__init__()
            self.how = how

        def predict_chunk_distribution(self, observations, instructions):
            dist = super().predict_chunk_distribution(observations, instructions)
            log_probs = dist.log_probs.copy()
            if self.how == "nan":
                log_probs[0, 0, 2, 1] = np.nan
            elif self.how == "empty":
                log_probs[0, 0, 1] = -np.inf
            else:
                log_probs = log_probs[..., :3]
            return ChunkDistribution(dist.actions, log_probs, dist.values)

    for how in ("nan", "empty", "shape"):
        loop = Loop(Broken(how), blend="guided")
        with pytest.raises(PolicyError, match="distribution"):
            loop.act()
