"""TabletopEnv: Gymnasium conformance, determinism under seeds, action validation, cameras,
ground truth and vectorisation."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim.errors import SimError
from sim.tabletop.env import STATE_DIM, TabletopEnv
from sim.tabletop.experts import make_expert


def _rollout(env, seed, n):
    obs, info = env.reset(seed=seed)
    expert = make_expert(env, seed=seed)
    expert.reset()
    for _ in range(n):
        obs, *_ = env.step(expert.act(obs))
    return obs, env.unwrapped.data.qpos.copy(), info["instruction"]


def test_spaces_and_check_env():
    env = TabletopEnv(task="pick_up", image_size=(64, 48), depth=True)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"agentview", "agentview_depth", "wrist", "wrist_depth", "state"}
    assert obs["agentview"].shape == (48, 64, 3) and obs["agentview"].dtype == np.uint8
    assert obs["wrist_depth"].shape == (48, 64) and obs["wrist_depth"].dtype == np.float32
    assert obs["state"].shape == (STATE_DIM,)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (7,) and env.action_space.dtype == np.float32
    assert {"instruction", "task", "success", "clipped_actions"} <= set(info)
    assert info["instruction"] == env.instruction and info["task"] == "pick_up"
    # Images differ between the cameras and the depth is plausible (metres, within the scene).
    assert not np.array_equal(obs["agentview"], obs["wrist"])
    assert 0.05 < float(np.median(obs["agentview_depth"])) < 3.0
    check_env(env, skip_render_check=True)
    env.close()


def test_same_seed_same_episode_even_after_reuse():
    env = TabletopEnv(task="put_in", cameras=())
    obs_a, qpos_a, instr_a = _rollout(env, seed=7, n=12)
    _rollout(env, seed=3, n=5)  # use the env for something else...
    obs_b, qpos_b, instr_b = _rollout(env, seed=7, n=12)  # ...then reseed: identical again
    assert instr_a == instr_b
    np.testing.assert_array_equal(obs_a["state"], obs_b["state"])
    np.testing.assert_array_equal(qpos_a, qpos_b)
    fresh = TabletopEnv(task="put_in", cameras=())
    obs_c, qpos_c, _ = _rollout(fresh, seed=7, n=12)
    np.testing.assert_array_equal(qpos_a, qpos_c)
    other = [env.reset(seed=s)[1]["instruction"] + str(env.ground_truth()["objects"][0]["position"])
             for s in range(5)]
    assert len(set(other)) == 5  # different seeds give different episodes


def test_nan_refused_and_clipping_counted():
    env = TabletopEnv(task="reach", cameras=())
    env.reset(seed=0)
    with pytest.raises(SimError, match="NaN"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 0], dtype=np.float32))
    with pytest.raises(SimError, match="shape"):
        env.step(np.zeros(6))
    _, _, _, _, info = env.step(np.zeros(7, dtype=np.float32))
    assert info["clipped_actions"] == 0
    z0 = env.tcp_pose()[0][2]
    _, _, _, _, info = env.step(np.array([0, 0, -1.0, 0, 0, 0, 0], dtype=np.float32))
    assert info["clipped_actions"] == 1
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 2.0], dtype=np.float32))
    assert info["clipped_actions"] == 2
    # The clipped step moved the commanded TCP by the 5 cm bound, not 1 m.
    assert env.commanded_tcp()[0][2] == pytest.approx(z0 - 0.05, abs=2e-3)
    assert env.reset(seed=1)[1]["clipped_actions"] == 0  # counted per episode


def test_truncation_at_max_steps():
    env = TabletopEnv(task="push", cameras=(), max_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7, dtype=np.float32))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    assert TabletopEnv(task="push", cameras=()).max_steps == 100  # the family default


def test_delta_control_tracks_commands():
    env = TabletopEnv(task="reach", cameras=())
    env.reset(seed=0)
    start = env.tcp_pose()[0]
    for _ in range(4):
        env.step(np.array([0.02, -0.03, -0.02, 0, 0, 0, 0], dtype=np.float32))
    env.step(np.array([0, 0, 0, 0, 0, 0.2, 1.0], dtype=np.float32))
    env.step(np.zeros(7, dtype=np.float32) + np.array([0, 0, 0, 0, 0, 0, 1.0], dtype=np.float32))
    pos, mat = env.tcp_pose()
    np.testing.assert_allclose(pos - start, [0.08, -0.12, -0.08], atol=0.005)
    yaw = np.arctan2(mat[1, 0], mat[0, 0])
    assert yaw == pytest.approx(0.2, abs=0.02)
    assert mat[2, 2] == pytest.approx(-1.0, abs=1e-3)  # still pointing down
    assert env.gripper_opening() < 0.005  # closed on nothing


def test_ground_truth_cameras_and_registry():
    env = sim.make("PickUp", render_mode="rgb_array", image_size=(96, 96), colors=("green",),
                   instruction_split="heldout")
    obs, info = env.reset(seed=2)
    gt = env.unwrapped.ground_truth()
    json.dumps(gt)
    target = [o for o in gt["objects"] if o["is_target"]]
    assert len(target) == 1 and target[0]["color"] == "green" and target[0]["name"] in info["instruction"]
    assert gt["task"] == "pick_up" and gt["success"] is False
    image = env.render()
    assert image.shape == (96, 96, 3)
    K = env.unwrapped.camera_intrinsics("agentview")
    assert K.shape == (3, 3) and K[0, 2] == 47.5 and K[1, 2] == 47.5
    T = env.unwrapped.camera_pose("agentview")
    # The target projects, through K and the camera pose, onto green pixels of the upright image.
    p = np.linalg.inv(T) @ np.array([*target[0]["position"], 1.0])
    assert p[2] > 0
    u, v = np.round((K @ p[:3])[:2] / p[2]).astype(int)
    r, g, b = image[v, u].astype(int)
    assert g > r + 40 and g > b + 40, image[v, u]
    with pytest.raises(SimError):
        TabletopEnv(task="pick_up", colors=("mauve",))
    env.close()


def test_no_cameras_means_state_only():
    env = gym.make("embodied/Push-v0", cameras=())
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"state"}


def _make_reach():
    import sim  # noqa: F401 - registers the ids in a spawned worker

    return gym.make("embodied/Reach-v0", image_size=(32, 32), cameras=("agentview",))


def test_async_vector_env():
    # "spawn": a forked worker inherits this process's EGL state (other tests rendered here),
    # which hangs Mesa's EGL; fresh workers do not.
    envs = gym.vector.AsyncVectorEnv([_make_reach, _make_reach], context="spawn")
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs["agentview"].shape == (2, 32, 32, 3) and obs["state"].shape == (2, STATE_DIM)
        assert len(info["instruction"]) == 2
        obs, _, _, _, info = envs.step(np.zeros((2, 7), dtype=np.float32))
        assert obs["state"].shape == (2, STATE_DIM)
    finally:
        envs.close()


def test_set_goal_retargets_the_scene():
    env = TabletopEnv(task="put_in", cameras=())
    env.reset(seed=4)
    ep = env.episode
    assert len(ep.objects) >= 2, "seed 4 should have a distractor"
    other = ep.objects[1]
    env.set_goal("pick_up", other.description)
    assert env.task == "pick_up" and other.description in env.instruction
    assert env.ground_truth()["target"] == other.slot
    expert = make_expert(env, seed=0)
    expert.reset()
    obs, done = None, False
    while not done:
        _, _, term, trunc, info = env.step(expert.act(obs))
        done = term or trunc
    assert info["success"] and info["task"] == "pick_up"
    with pytest.raises(SimError, match="no 'mauve cube'"):
        env.set_goal("reach", "mauve cube")
    with pytest.raises(SimError, match="side"):
        env.set_goal("push", other.description)
    wrong = "plate" if ep.receptacle == "bowl" else "bowl"
    with pytest.raises(SimError, match="cannot put"):
        env.set_goal("put_in", other.description, receptacle=wrong)
    env.reset(seed=4)
    assert env.task == "put_in"  # a reset restores the env's own family


def test_pressing_down_does_not_crush_objects():
    """A hand driven down onto a cube must not wind up a servo force that sinks it into the table."""
    env = TabletopEnv(task="pick_up", cameras=(), max_steps=500, max_distractors=0)
    env.reset(seed=1)
    slot = env.episode.target.slot
    above = env.object_pos(slot) + [0.0, 0.0, 0.1]
    for _ in range(20):
        delta = np.clip(above - env.commanded_tcp()[0], -0.04, 0.04)
        env.step(np.array([*delta, 0, 0, 0, 1.0], dtype=np.float32))
    for _ in range(15):
        env.step(np.array([0, 0, -0.05, 0, 0, 0, 1.0], dtype=np.float32))
        assert env.object_pos(slot)[2] > 0.02 - 0.007  # cube half-height 2 cm: sinks a few mm at most
        assert np.linalg.norm(env.commanded_tcp()[0] - env.tcp_pose()[0]) < 0.015 + 0.05 + 1e-6
