"""The Gymnasium env: registration, spaces, seeding, rewards, termination, rendering."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import sim  # noqa: F401 - registers embodied/* ids
from sim.billiards import table
from sim.billiards.env import BilliardsEnv
from sim.errors import SimError


def test_registered_env_steps_whole_shots_without_rendering():
    env = gym.make("embodied/Billiards-v0", cameras=())
    obs, info = env.reset(seed=0)
    assert info["task"] == "billiards"
    assert set(obs) == {"state", "potted"} and obs["state"].shape == (3 * len(table.BALLS),)
    assert env.observation_space.contains(obs)
    obs2, reward, terminated, truncated, info = env.step(np.array([0.3, 0.5], np.float32))
    assert env.observation_space.contains(obs2)
    assert info["task"] == "billiards" and info["events"][0]["kind"] == "strike"
    shot = env.unwrapped.last_shot
    assert shot is not None and shot.frames == {}
    assert reward == sum(1 for e in shot.events if e.kind == "pot" and e.a != "cue")
    assert not np.array_equal(obs["state"], obs2["state"])  # the cue ball moved
    # simulate_shot accepts the env as well as a world.
    from sim.billiards.shot import simulate_shot

    assert simulate_shot(env, 0.0, 0.1, record=False).events[0].kind == "strike"
    env.close()


def test_same_seed_same_layout_and_outcome():
    def run(seed):
        env = BilliardsEnv(cameras=())
        obs, _ = env.reset(seed=seed)
        out, *_ = env.step(np.array([1.0, 0.7]))
        env.close()
        return obs["state"], out["state"]

    a, b, c = run(5), run(5), run(6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_rack_layout_and_reward_for_potting_a_ball():
    env = BilliardsEnv(cameras=(), layout="rack", max_shots=2)
    obs, _ = env.reset(seed=1)
    xy = obs["state"].reshape(-1, 3)[:, :2]
    assert np.all(xy[1:, 0] > 0.6)  # rack at the foot spot, cue ball behind the head string
    assert xy[0, 0] < -0.6
    # Red in front of the top-right corner pocket, the cue ball close behind it on the same line
    # (still sliding when it hits, so it stops dead instead of following red in).
    world = env.unwrapped.world
    names = list(world.ball_names)
    spots = np.array([(-1.0 + 0.07 * i, -0.5) for i in range(len(names))])
    spots[names.index("red")] = (1.0, 0.365)
    aim = np.arctan2(table.HALF_WIDTH - 0.365, table.HALF_LENGTH - 1.0)
    spots[names.index("cue")] = np.array([1.0, 0.365]) - 0.15 * np.array([np.cos(aim), np.sin(aim)])
    world.place_balls(spots)
    mujoco.mj_forward(world.model, world.data)
    _, reward, terminated, truncated, info = env.step([aim, 0.25])
    assert info["potted"] == ["red"] and reward == 1.0
    assert not terminated and not truncated
    _, _, terminated, truncated, _ = env.step([0.0, 0.2])
    assert truncated or terminated  # max_shots=2
    env.close()


def test_potting_the_cue_ball_terminates():
    env = BilliardsEnv(cameras=())
    env.reset(seed=0)
    world = env.unwrapped.world
    spots = np.array([(-1.0 + 0.07 * i, -0.5) for i in range(len(world.ball_names))])
    spots[0] = (1.0, 0.365)
    world.place_balls(spots)
    mujoco.mj_forward(world.model, world.data)
    aim = np.arctan2(table.HALF_WIDTH - 0.365, table.HALF_LENGTH - 1.0)
    _, reward, terminated, _, info = env.step([aim, 0.15])
    assert terminated and reward == 0.0 and info["potted"] == ["cue"]
    env.close()


def test_rgb_observations_and_render():
    env = gym.make("embodied/Billiards-v0", render_mode="rgb_array", width=64, height=48)
    obs, _ = env.reset(seed=0)
    assert obs["overhead"].shape == (48, 64, 3) and obs["player"].dtype == np.uint8
    assert env.observation_space.contains(obs)
    frame = env.render()
    assert frame.shape == (48, 64, 3)
    # The overhead picture is mostly green cloth.
    img = obs["overhead"].astype(int)
    green = (img[..., 1] > img[..., 0] + 30) & (img[..., 1] > img[..., 2] + 10)
    assert green.mean() > 0.5
    env.close()


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    env = BilliardsEnv(cameras=(), max_shots=3)
    check_env(env, skip_render_check=True)
    env.close()


def test_bad_actions_and_options_are_user_errors():
    env = BilliardsEnv(cameras=())
    env.reset(seed=0)
    with pytest.raises(SimError):
        env.step([np.nan, 0.5])
    with pytest.raises(SimError):
        env.step([0.1])
    with pytest.raises(SimError):
        BilliardsEnv(cameras=("nope",))
    with pytest.raises(SimError):
        BilliardsEnv(cameras=(), layout="diamond")
    env.close()
