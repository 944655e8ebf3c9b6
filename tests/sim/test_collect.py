"""sim.collect against a tiny MuJoCo env with the tabletop contract (obs/info keys, ground_truth).

``DummyReachEnv`` and ``DummyExpert`` are also imported by test_collect_crash.py's subprocess.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from sim.collect import CollectConfig, collect, flatten_numeric, is_idle, parse_size, parse_tasks
from sim.dataset import LeRobotDataset
from sim.errors import SimError

XML = """
<mujoco>
  <worldbody>
    <light pos="0 0 2" castshadow="false"/>
    <geom type="plane" size="1 1 .1" rgba=".3 .5 .3 1"/>
    <camera name="agentview" pos="0 -0.8 0.8" xyaxes="1 0 0 0 .7 .7"/>
    <body name="hand" mocap="true" pos="0 0 .2">
      <geom type="sphere" size=".04" rgba="1 .2 .2 1" contype="0" conaffinity="0"/>
      <camera name="wrist" pos="0 0 .05" xyaxes="1 0 0 0 1 0"/>
    </body>
    <body name="target" mocap="true" pos=".1 0 .1">
      <geom type="box" size=".03 .03 .03" rgba=".2 .2 1 1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
</mujoco>
"""
STEP = 0.03  # metres of hand motion per unit action


class DummyReachEnv(gym.Env):
    """Move a mocap hand to a target box; success within 3 cm. Same keys as TabletopEnv."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, family: str = "Reach", cameras=("agentview", "wrist"), image_size=(32, 32),
                 max_episode_steps: int = 12) -> None:
        self.family, self.cameras, self.max_episode_steps = family, tuple(cameras), max_episode_steps
        self.model = mujoco.MjModel.from_xml_string(XML)
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, image_size[1], image_size[0])
        w, h = image_size
        self.observation_space = gym.spaces.Dict({
            "state": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
            **{c: gym.spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.cameras}})
        self.action_space = gym.spaces.Box(-1, 1, (7,), np.float32)
        self.target = np.zeros(3)
        self.instruction = ""
        self.gripper = 0.0
        self.t = 0
        self.events: list[dict] = []

    def _obs(self) -> dict:
        mujoco.mj_forward(self.model, self.data)
        obs = {"state": np.append(self.data.mocap_pos[0], self.gripper).astype(np.float32)}
        for cam in self.cameras:
            self.renderer.update_scene(self.data, camera=cam)
            obs[cam] = self.renderer.render().copy()
        return obs

    def _info(self, success=False) -> dict:
        return {"instruction": self.instruction, "task": self.family, "success": success, "clipped_actions": 0}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.data.mocap_pos[0] = [0, 0, 0.2]
        self.target = np.array([*self.np_random.uniform(-0.12, 0.12, 2), 0.1])
        self.data.mocap_pos[1] = self.target
        self.instruction = f"{self.family.lower()} the {['red', 'blue'][int(seed or 0) % 2]} target"
        self.gripper, self.t, self.events = 0.0, 0, []
        return self._obs(), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1, 1)
        self.data.mocap_pos[0] += STEP * action[:3]
        self.gripper = float(action[6])
        self.t += 1
        success = bool(np.linalg.norm(self.data.mocap_pos[0] - self.target) < 0.03)
        if success:
            self.events.append({"t": self.t / 10, "type": "reached"})
        obs = self._obs()
        return obs, float(success), success, self.t >= self.max_episode_steps, self._info(success)

    def ground_truth(self) -> dict:
        return {"hand": {"pos": self.data.mocap_pos[0].tolist()}, "target": self.target.tolist(),
                "instruction": self.instruction, "events": list(self.events)}

    def close(self) -> None:
        self.renderer.close()


class DummyExpert:
    """Idles for two steps, then closes and drives to the target; seeds = 3 mod 4 go the wrong way."""

    def __init__(self, env: DummyReachEnv, seed: int) -> None:
        self.env, self.seed, self.t = env, seed, 0

    def reset(self) -> None:
        self.t = 0

    def act(self, obs) -> np.ndarray:
        self.t += 1
        action = np.zeros(7, np.float32)
        action[6] = 1.0 if self.t > 2 else 0.0  # "closes the gripper" as it starts moving
        if self.t > 2:
            delta = np.clip((self.env.target - obs["state"][:3]) / STEP, -1, 1)
            action[:3] = -delta if self.seed % 4 == 3 else delta
        return action


def make_dummy_env(task, cfg):
    return DummyReachEnv(task, cfg.cameras, cfg.image_size)


def make_dummy_expert(env, seed):
    return DummyExpert(env.unwrapped, seed)


def _cfg(tmp_path, **kw) -> CollectConfig:
    base = dict(task="Reach", episodes=3, out=str(tmp_path / "ds"), image_size=(32, 32), progress=False)
    return CollectConfig(**{**base, **kw})


def _run(cfg):
    return collect(cfg, make_env=make_dummy_env, make_expert=make_dummy_expert)


def test_collect_saves_successes_drops_idle_and_logs_ground_truth(tmp_path):
    summary = _run(_cfg(tmp_path, episodes=4))
    assert summary["episodes"] == 4 and summary["saved_now"] == 4 and summary["complete"]
    assert summary["attempts_now"] == 5  # seed 3 fails and is skipped
    ds = LeRobotDataset(tmp_path / "ds")
    assert [ds.episode_meta(i)["seed"] for i in range(4)] == [0, 1, 2, 4]
    assert ds.info["fps"] == 10 and ds.info["features"]["observation.state"]["shape"] == [4]
    for i in range(4):
        ep = ds.episode(i)
        assert ep["success"] and ep["task"].startswith("reach the")
        # the first kept frame is the first real move: the two idle steps were dropped
        assert np.abs(ep["action"][0, :3]).max() > 0.1
        assert not np.any([is_idle(a, 1.0) for a in ep["action"][1:]])
        gt = ds.episode_ground_truth(i)
        assert gt["frames"]["hand.pos"].shape == (len(ep["action"]), 3)
        np.testing.assert_allclose(gt["frames"]["hand.pos"], ep["observation.state"][:, :3], atol=1e-6)
        assert [e["type"] for e in gt["events"]] == ["gripper_close", "reached", "success"]
        assert gt["events"][0]["step"] == 2 and gt["events"][0]["frame"] == 0
        assert gt["seed"] == ds.episode_meta(i)["seed"]
        assert ep["observation.images.wrist"].shape == (len(ep["action"]), 32, 32, 3)
    assert ds.tasks == {0: "reach the red target", 1: "reach the blue target"}


def test_resume_equals_one_uninterrupted_run(tmp_path):
    _run(_cfg(tmp_path, episodes=2))
    again = _run(_cfg(tmp_path, episodes=4))
    assert again["resumed_from"] == 2 and again["saved_now"] == 2
    nothing = _run(_cfg(tmp_path, episodes=4))
    assert nothing["saved_now"] == 0 and nothing["attempts_now"] == 0
    _run(_cfg(tmp_path, episodes=4, out=str(tmp_path / "once")))
    a, b = LeRobotDataset(tmp_path / "ds"), LeRobotDataset(tmp_path / "once")
    for i in range(4):
        np.testing.assert_array_equal(a.episode(i, decode_video=False)["action"],
                                      b.episode(i, decode_video=False)["action"])
    assert a.stats["action"] == b.stats["action"]


def test_keep_failures_and_no_idle_skipping(tmp_path):
    _run(_cfg(tmp_path, episodes=4, keep_failures=True, skip_idle=False))
    ds = LeRobotDataset(tmp_path / "ds")
    assert [ds.episode_meta(i)["success"] for i in range(4)] == [True, True, True, False]
    assert ds.episode_meta(3)["length"] == 12  # the failed one ran to the time limit
    assert np.all(ds.episode(0, decode_video=False)["action"][:2, :6] == 0)  # idle frames kept


def test_several_task_families_round_robin(tmp_path):
    _run(_cfg(tmp_path, task="Reach,Touch", episodes=4))
    ds = LeRobotDataset(tmp_path / "ds")
    assert [ds.episode_meta(i)["task_family"] for i in range(4)] == ["Reach", "Touch", "Reach", "Touch"]
    assert {ds.episode(i, decode_video=False)["task"].split()[0] for i in range(4)} == {"reach", "touch"}


def test_parsing_helpers():
    assert parse_tasks("all") == ["Reach", "PickUp", "Push", "PutIn"]
    assert parse_tasks("pickup, Push") == ["PickUp", "Push"]
    with pytest.raises(SimError, match="Known tasks"):
        parse_tasks("Pikcup")
    with pytest.raises(SimError, match="no scripted arm expert"):
        parse_tasks("Billiards")
    assert parse_size("64") == (64, 64) and parse_size("160x120") == (160, 120)
    with pytest.raises(SimError):
        parse_size("big")
    assert is_idle(np.array([0, 0, 0, 0, 0, 0, 1.0]), 1.0)
    assert not is_idle(np.array([0, 0, 0, 0, 0, 0, 1.0]), -1.0)
    assert not is_idle(np.array([0.01, 0, 0, 0, 0, 0, 1.0]), 1.0)
    flat = flatten_numeric({"a": {"pos": [1.0, 2.0]}, "name": "x", "objs": [{"p": 1}, {"p": 2}]})
    assert set(flat) == {"a.pos", "objs.0.p", "objs.1.p"} and flat["a.pos"].tolist() == [1.0, 2.0]


def test_unwritable_output_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SimError, match="cannot write"):
        _run(_cfg(tmp_path, out=str(tmp_path / "file" / "ds")))


def test_disk_full_mid_episode_keeps_finished_episodes(tmp_path, monkeypatch):
    import errno

    import sim.video

    _run(_cfg(tmp_path, episodes=2))
    real_encode = sim.video.VideoWriter._encode
    calls = {"n": 0}

    class FullDisk:
        """The PyAV stream, except that encoding fails the way a full disk makes it fail."""

        def __init__(self, stream):
            self.stream = stream

        def encode(self, frame):
            raise OSError(errno.ENOSPC, "No space left on device")

    def failing_encode(self, frame):
        calls["n"] += 1
        if calls["n"] > 5 and not isinstance(self._stream, FullDisk):  # a few frames in
            self._stream = FullDisk(self._stream)
        return real_encode(self, frame)

    monkeypatch.setattr(sim.video.VideoWriter, "_encode", failing_encode)
    with pytest.raises(SimError, match="disk full"):
        _run(_cfg(tmp_path, episodes=4))
    monkeypatch.undo()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2 and len(ds.episode(1)["observation.images.agentview"]) == ds.episode_meta(1)["length"]
    assert not list((tmp_path / "ds").rglob("*.tmp"))
    assert _run(_cfg(tmp_path, episodes=3))["episodes"] == 3  # space is back: it resumes


class Rec:
    """Stands in for an EpisodeRecorder in ``run_episode``: keeps (state, recorded action) pairs."""

    def __init__(self):
        self.frames = []

    def add_frame(self, images, state, action, gt):
        self.frames.append((np.array(state), np.array(action)))


def test_perturbed_collection_records_the_expert_action_not_the_executed_one():
    """DART: with ``perturb`` the env executes noisy moves, the dataset keeps the expert's own action
    for the state it was in, and the visited states differ from an unperturbed rollout."""
    import sim
    from sim.collect import run_episode
    from sim.tabletop.experts import make_expert

    runs = {}
    for perturb, burst in ((0.0, 0.0), (0.01, 0.0), (0.0, 0.3)):
        env = sim.make("Reach", cameras=())
        expert = make_expert(env, seed=3)
        rec = Rec()
        out = run_episode(env, expert, 3, CollectConfig(perturb=perturb, burst_prob=burst, cameras=()),
                          lambda _: rec)
        env.close()
        assert out["success"]
        runs[perturb or burst] = rec.frames
    # Same seed, same expert noise stream: the first label is identical; later states diverge.
    np.testing.assert_array_equal(runs[0.0][0][1], runs[0.01][0][1])
    assert not np.allclose(runs[0.0][2][0][:3], runs[0.01][2][0][:3], atol=1e-3)
    # The recorded labels are not what moved the arm: the step from state k to k+1 departs from
    # the label by the injected noise, far more than the arm's own tracking lag does.
    def departure(frames, reduce=np.mean):
        s, a = zip(*frames)
        moved = np.array([s[k + 1][:3] - s[k][:3] for k in range(len(s) - 1)])
        return float(reduce(np.linalg.norm(moved - np.array(a[:-1])[:, :3], axis=1)))

    assert departure(runs[0.01]) > 2 * departure(runs[0.0])
    # Bursts (random full-speed moves) take the arm much further off course than the noise does,
    # and the expert's labels bring it back: the episode still succeeds, only later.
    assert departure(runs[0.3], np.max) > 0.02 > departure(runs[0.01], np.max)
    assert len(runs[0.3]) > len(runs[0.0])


def test_a_driver_moves_the_arm_while_the_expert_labels():
    """DAgger: the driver's action is executed (here: stand still), the expert's is recorded (move
    towards the target), the driver is asked at every step and told the instruction; with
    drive_prob=0 the episode is exactly the expert's own."""
    import sim
    from sim.collect import run_episode
    from sim.tabletop.experts import make_expert

    class StandStill:
        def __init__(self):
            self.instructions, self.calls = [], 0

        def reset(self, instruction):
            self.instructions.append(instruction)

        def act(self, obs):
            self.calls += 1
            return np.zeros(7, np.float32)

    runs = {}
    for prob in (0.0, 1.0):
        env = sim.make("Reach", cameras=(), max_steps=12)
        driver, rec = StandStill(), Rec()
        out = run_episode(env, make_expert(env, seed=3), 3, CollectConfig(drive_prob=prob, cameras=()),
                          lambda _: rec, driver=driver)
        env.close()
        assert driver.instructions == [out["instruction"]] and driver.calls == out["steps"]
        runs[prob] = (out, rec.frames)
    env = sim.make("Reach", cameras=(), max_steps=12)
    plain_rec = Rec()
    plain = run_episode(env, make_expert(env, seed=3), 3, CollectConfig(cameras=()), lambda _: plain_rec)
    env.close()
    assert runs[0.0][0]["steps"] == plain["steps"]
    np.testing.assert_array_equal(np.array([a for _, a in runs[0.0][1]]), np.array([a for _, a in plain_rec.frames]))
    driven, frames = runs[1.0]
    assert not driven["success"] and driven["steps"] == 12  # the arm never moved
    states = np.array([s for s, _ in frames])
    labels = np.array([a for _, a in frames])
    assert np.allclose(states[:, :3], states[0, :3], atol=2e-3)  # it stood still...
    assert np.all(np.linalg.norm(labels[:, :3], axis=1) > 0.01)  # ...while the expert said "go"
    np.testing.assert_allclose(labels[0], plain_rec.frames[0][1])  # the same first label


def test_drive_prob_out_of_range_is_a_user_error(tmp_path):
    with pytest.raises(SimError, match="drive-prob"):
        collect(CollectConfig(out=str(tmp_path / "d"), drive_prob=1.5, cameras=(), progress=False))
