"""sim.dataset: LeRobot v3 round trip, statistics against numpy, recovery and clear errors."""

import errno
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import sim.dataset as dataset_mod
import sim.dataset_reader as reader_mod
from sim.dataset import LeRobotDataset, LeRobotWriter
from sim.errors import SimError

CAMS = ["agentview", "wrist"]
W, H = 32, 24


def _image(rng, t):
    """A smooth image with a per-episode random offset: codec-friendly yet distinct."""
    yy, xx = np.mgrid[0:H, 0:W]
    base = rng.integers(20, 120)
    return np.stack([xx * 3 + base + t, yy * 4 + base, np.full_like(xx, base + 2 * t)], -1).astype(np.uint8)


def _frames(seed, e, lengths=(5, 7, 6, 4)):
    """Episode ``e``'s frames (images, state, action, object position), the same on every call."""
    rng = np.random.default_rng([seed, e])
    return [({c: _image(rng, t) for c in CAMS}, rng.normal(size=4), rng.normal(size=7), rng.normal(size=3))
            for t in range(lengths[e % len(lengths)])]


def _write(root, n_eps, seed=0, lengths=(5, 7, 6, 4), **kw):
    """Write ``n_eps`` episodes and return what was written, for comparison."""
    written = []
    with LeRobotWriter(root, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4, **kw) as writer:
        for e in range(n_eps):
            ep = writer.start_episode(task=f"task {e % 2}", seed=100 + e, task_family="Reach")
            rec = {"images": {c: [] for c in CAMS}, "state": [], "action": [], "pos": []}
            for imgs, state, action, pos in _frames(seed, e, lengths):
                ep.add_frame(imgs, state, action, ground_truth={"object.pos": pos})
                for c in CAMS:
                    rec["images"][c].append(imgs[c])
                rec["state"].append(state)
                rec["action"].append(action)
                rec["pos"].append(pos)
            assert ep.finish(success=e % 3 != 2, ground_truth={"events": [{"t": 0.1, "type": "grasp"}]}) == e
            written.append(rec)
    return written


def test_round_trip_values_frames_and_metadata(tmp_path):
    written = _write(tmp_path / "ds", 3)
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 3 and ds.num_frames == 5 + 7 + 6
    assert ds.info["codebase_version"] == "v3.0" and ds.info["fps"] == 10
    assert ds.info["features"]["observation.images.wrist"]["dtype"] == "video"
    assert ds.info["features"]["observation.images.wrist"]["shape"] == [H, W, 3]
    assert ds.info["features"]["action"]["shape"] == [7]
    assert ds.tasks == {0: "task 0", 1: "task 1"}
    for e, rec in enumerate(written):
        ep = ds.episode(e)
        np.testing.assert_array_equal(ep["action"], np.float32(rec["action"]))
        np.testing.assert_array_equal(ep["observation.state"], np.float32(rec["state"]))
        assert ep["action"].dtype == np.float32
        np.testing.assert_allclose(ep["timestamp"], np.arange(len(rec["action"])) / 10, atol=1e-6)
        assert ep["task"] == f"task {e % 2}" and ep["task_index"][0] == e % 2
        assert ep["success"] == (e % 3 != 2) and ep["seed"] == 100 + e
        for c in CAMS:
            frames = ep[f"observation.images.{c}"]
            assert frames.shape == (len(rec["action"]), H, W, 3)
            assert np.abs(frames.astype(int) - np.stack(rec["images"][c])).mean() < 3.0
        gt = ds.episode_ground_truth(e)
        assert gt["seed"] == 100 + e and gt["instruction"] == f"task {e % 2}" and gt["task"] == "Reach"
        assert gt["events"] == [{"t": 0.1, "type": "grasp"}]
        np.testing.assert_array_equal(gt["frames"]["object.pos"], np.stack(rec["pos"]))
    # the global index runs across episodes
    assert ds.episode(2)["index"].tolist() == list(range(12, 18))


def test_stats_match_numpy_on_the_same_data(tmp_path):
    written = _write(tmp_path / "ds", 3)
    stats = LeRobotDataset(tmp_path / "ds").stats
    actions = np.concatenate([np.float32(r["action"]) for r in written]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["q01"], np.quantile(actions, 0.01, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["min"], actions.min(0))
    assert stats["action"]["count"] == [len(actions)]
    # image statistics are computed on the frames as recorded (before encoding), per channel in [0, 1]
    imgs = np.concatenate([np.stack(r["images"]["wrist"]) for r in written]).reshape(-1, 3) / 255.0
    s = stats["observation.images.wrist"]
    np.testing.assert_allclose(np.ravel(s["mean"]), imgs.mean(0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(s["std"]), imgs.std(0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(s["q99"]), np.quantile(imgs, 0.99, axis=0, method="inverted_cdf"))
    np.testing.assert_allclose(np.ravel(s["max"]), imgs.max(0))
    assert np.shape(s["mean"]) == (3, 1, 1)


def test_resume_cleans_leftovers_and_continues(tmp_path):
    root = tmp_path / "ds"
    _write(root, 2)
    # leftovers of a crash: a temporary file and an episode's files without its commit marker
    (root / "data/chunk-000/file-002.parquet.tmp").write_bytes(b"half")
    (root / "data/chunk-000/file-002.parquet").write_bytes(b"uncommitted")
    (root / "videos/observation.images.wrist/chunk-000/file-002.mp4").write_bytes(b"uncommitted")
    (root / "gt/episode_000002.json").write_text("{}")
    with LeRobotWriter(root, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4) as writer:
        assert writer.num_episodes == 2 and writer.num_frames == 12
        assert not (root / "data/chunk-000/file-002.parquet").exists()
        assert not (root / "gt/episode_000002.json").exists()
        assert not list(root.rglob("*.tmp"))
        ep = writer.start_episode(task="task 1", seed=7)
        for t in range(3):
            ep.add_frame({c: np.zeros((H, W, 3), np.uint8) for c in CAMS}, np.ones(4), np.zeros(7))
        assert ep.finish(success=True) == 2
        discarded = writer.start_episode(task="never saved")
        discarded.add_frame({c: np.zeros((H, W, 3), np.uint8) for c in CAMS}, np.ones(4), np.zeros(7))
        discarded.discard()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and ds.num_frames == 15 and ds.info["total_tasks"] == 2
    assert ds.episode(2)["task_index"].tolist() == [1, 1, 1]  # known instruction keeps its index
    assert ds.stats["action"]["count"] == [15]
    assert not list(root.rglob("*.tmp"))


def test_reopen_with_other_settings_or_twice_is_refused(tmp_path):
    root = tmp_path / "ds"
    _write(root, 1)
    with pytest.raises(SimError, match="recorded differently"):
        LeRobotWriter(root, fps=10, cameras=["agentview"], image_size=(W, H), state_dim=4)
    with LeRobotWriter(root, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4):
        with pytest.raises(SimError, match="another process"):
            LeRobotWriter(root, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4)


def test_unwritable_output_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SimError, match="cannot write"):
        LeRobotWriter(tmp_path / "file" / "ds", fps=10, cameras=CAMS, image_size=(W, H), state_dim=4)


def test_disk_full_keeps_finished_episodes(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    _write(root, 2)
    writer = LeRobotWriter(root, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4)
    ep = writer.start_episode(task="task 0")
    ep.add_frame({c: np.zeros((H, W, 3), np.uint8) for c in CAMS}, np.ones(4), np.zeros(7))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset_mod.pq, "write_table", full)
    with pytest.raises(SimError, match="disk full"):
        ep.finish(success=True)
    monkeypatch.undo()
    writer.close()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 2 and ds.episode(1)["action"].shape == (7, 7)
    assert not (root / "videos/observation.images.wrist/chunk-000/file-002.mp4").exists()
    assert not list(root.rglob("*.tmp"))


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(SimError, match="info.json is missing"):
        LeRobotDataset(tmp_path)
    root = tmp_path / "ds"
    _write(root, 2)
    # corrupt parquet
    (root / "data/chunk-000/file-001.parquet").write_bytes(b"PAR1 garbage")
    ds = LeRobotDataset(root)
    ds.episode(0)
    with pytest.raises(SimError, match="corrupt parquet"):
        ds.episode(1)
    with pytest.raises(SimError, match="out of range"):
        ds.episode(5)
    # a video with the wrong number of frames
    from sim.video import write_mp4

    write_mp4(root / "videos/observation.images.wrist/chunk-000/file-000.mp4",
              np.zeros((2, H, W, 3), np.uint8), fps=10)
    with pytest.raises(SimError, match="has 2 frames"):
        ds.episode(0)
    # missing stats are computed from the data files (tests/sim/test_dataset_reader.py), which
    # here include the corrupt one: that file is named
    (root / "meta/stats.json").unlink()
    with pytest.raises(SimError, match="corrupt parquet.*file-001"):
        LeRobotDataset(root)


def test_bad_frames_are_rejected(tmp_path):
    with LeRobotWriter(tmp_path / "ds", fps=10, cameras=CAMS, image_size=(W, H), state_dim=4) as writer:
        ep = writer.start_episode(task="x")
        with pytest.raises(SimError, match="missing camera"):
            ep.add_frame({"agentview": np.zeros((H, W, 3), np.uint8)}, np.ones(4), np.zeros(7))
        with pytest.raises(SimError, match="action"):
            ep.add_frame({c: np.zeros((H, W, 3), np.uint8) for c in CAMS}, np.ones(4), np.zeros(6))
        ep.discard()
        with pytest.raises(SimError, match="no frames"):
            writer.start_episode(task="y").finish(success=True)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["total_episodes"] == 0
    assert pq.read_table(tmp_path / "ds/meta/tasks.parquet").num_rows == 0


def test_reader_recomputes_stats_when_info_lags_behind(tmp_path):
    """A crash after stats.json but before info.json: the reader stays self-consistent."""
    root = tmp_path / "ds"
    written = _write(root, 3)
    info = json.loads((root / "meta/info.json").read_text())
    info["total_episodes"], info["total_frames"] = 2, 12
    (root / "meta/info.json").write_text(json.dumps(info))
    ds = LeRobotDataset(root)
    actions = np.concatenate([np.float32(r["action"]) for r in written[:2]]).astype(np.float64)
    assert ds.stats["action"]["count"] == [12]
    np.testing.assert_allclose(ds.stats["action"]["mean"], actions.mean(0), rtol=1e-6)
    # the next writer repairs the files on disk
    LeRobotWriter(root, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4).close()
    assert LeRobotDataset(root).num_episodes == 3


def test_one_episode_at_a_time(tmp_path):
    with LeRobotWriter(tmp_path / "ds", fps=10, cameras=CAMS, image_size=(W, H), state_dim=4) as writer:
        first = writer.start_episode(task="a")
        with pytest.raises(SimError, match="still being recorded"):
            writer.start_episode(task="b")
        first.discard()
        assert writer.start_episode(task="b").index == 0


def test_datasets_store_full_resolution_colour_and_keep_their_format_on_resume(tmp_path):
    import av

    root = tmp_path / "ds"
    _write(root, 1)
    feat = LeRobotDataset(root).info["features"]["observation.images.wrist"]["info"]
    assert feat["video.pix_fmt"] == "yuv444p"
    for mp4 in root.rglob("*.mp4"):  # what the metadata says is what the files hold
        with av.open(str(mp4)) as container:
            assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
    old = tmp_path / "old"
    _write(old, 1, pix_fmt="yuv420p")
    with LeRobotWriter(old, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4) as writer:
        assert writer.pix_fmt == "yuv420p"  # a dataset started in 4:2:0 stays 4:2:0
    assert LeRobotDataset(old).info["features"]["observation.images.wrist"]["info"]["video.pix_fmt"] == "yuv420p"


def test_unknown_pixel_format_creates_nothing(tmp_path):
    with pytest.raises(SimError, match="pixel format"):
        LeRobotWriter(tmp_path / "ds", fps=10, cameras=CAMS, image_size=(W, H), state_dim=4, pix_fmt="rgb48")
    assert not (tmp_path / "ds").exists()


def test_committing_reads_no_earlier_episode_and_merges_only_the_new_one(tmp_path, monkeypatch):
    """The per-episode cost does not grow: a commit reads no file and merges one episode's frames."""
    reads, merged = [], []
    real_read, real_merge = dataset_mod.pq.read_table, dataset_mod.RunningStats.merge_summary
    monkeypatch.setattr(dataset_mod.pq, "read_table", lambda *a, **k: reads.append(a[0]) or real_read(*a, **k))
    monkeypatch.setattr(dataset_mod.RunningStats, "merge_summary", lambda self, summary, hists: (
        merged.append(summary["action"].count), real_merge(self, summary, hists))[1])
    monkeypatch.setattr(reader_mod, "aggregate_stats", None)  # the batch path must not run
    _write(tmp_path / "ds", 8)
    assert reads == []
    assert merged == [5, 7, 6, 4, 5, 7, 6, 4]  # each episode's own frames, once
    monkeypatch.undo()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.stats["action"]["count"] == [ds.num_frames] == [44]


def test_crash_after_the_marker_is_repaired_with_the_stats_of_one_uninterrupted_run(tmp_path, monkeypatch):
    """A crash between an episode's commit marker and the derived files: the next writer rebuilds the
    running statistics from the committed episodes, bit for bit those of a run that never crashed."""
    _write(tmp_path / "once", 4)
    crashed = tmp_path / "crashed"
    _write(crashed, 3)
    calls = {"n": 0}
    real_meta = LeRobotWriter._write_meta

    def crash_on_commit(self):
        calls["n"] += 1
        if calls["n"] > 1:  # after the open, at the commit: the process dies here
            raise KeyboardInterrupt
        real_meta(self)

    monkeypatch.setattr(LeRobotWriter, "_write_meta", crash_on_commit)
    writer = LeRobotWriter(crashed, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4)
    ep = writer.start_episode(task="task 1", seed=103, task_family="Reach")
    for imgs, state, action, pos in _frames(0, 3):  # episode 3 exactly as _write makes it
        ep.add_frame(imgs, state, action, ground_truth={"object.pos": pos})
    with pytest.raises(KeyboardInterrupt):
        ep.finish(success=True, ground_truth={"events": [{"t": 0.1, "type": "grasp"}]})
    writer.close()
    monkeypatch.undo()
    # committed on disk, derived files still describe 3 episodes and agree with each other
    assert dataset_mod.committed_episode_indices(crashed) == [0, 1, 2, 3]
    stale = LeRobotDataset(crashed)
    assert stale.num_episodes == 3 and stale.stats["action"]["count"] == [18]
    LeRobotWriter(crashed, fps=10, cameras=CAMS, image_size=(W, H), state_dim=4).close()
    once, repaired = LeRobotDataset(tmp_path / "once"), LeRobotDataset(crashed)
    assert repaired.num_episodes == 4
    assert repaired.stats == once.stats
