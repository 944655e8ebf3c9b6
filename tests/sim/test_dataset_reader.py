"""sim.dataset_reader on datasets LeRobot wrote: the shared fixture (written by LeRobot itself) and
a second one in LeRobot's layout with other cameras, sizes, codecs and a PNG-in-parquet camera."""

import json
import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from sim.dataset import LeRobotDataset
from sim.errors import SimError
from sim.video import read_mp4
from tests.fixtures.lerobot_layout import frame_image, write_lerobot_layout

BY_LEROBOT = Path(__file__).parents[1] / "fixtures" / "lerobot_v3_by_lerobot"
BY_LAYOUT_HEVC = Path(__file__).parents[1] / "fixtures" / "lerobot_layout_hevc"


def test_reads_the_dataset_lerobot_wrote():
    ds = LeRobotDataset(BY_LEROBOT)
    assert ds.num_episodes == 3 and ds.num_frames == 45 and ds.fps == 10
    assert ds.tasks == {0: "pick up the red cube", 1: "push the blue cylinder to the left"}  # from the pandas index
    assert ds.cameras == ["agentview", "wrist"] and ds.state_dim == 15 and ds.action_dim == 7
    assert ds.stats_computed == [] and ds.stats["action"]["q01"] is not None
    # every episode lives in one shared video file per camera: its frames are exactly the slice of
    # the whole file's frames at its from_timestamp
    for cam in ds.cameras:
        whole = read_mp4(ds.video_path(0, ds.camera_key(cam)))
        assert len(whole) == 45
        for i in range(3):
            ep = ds.episode(i)
            np.testing.assert_array_equal(ep[ds.camera_key(cam)], whole[15 * i:15 * (i + 1)])
    ep = ds.episode(1)
    assert ep["task"] == "push the blue cylinder to the left" and ep["task_index"].tolist() == [1] * 15
    assert ep["action"].shape == (15, 7) and ep["action"].dtype == np.float32
    assert ep["observation.state"].shape == (15, 15)
    assert ep["index"].tolist() == list(range(15, 30)) and ep["success"] is None and ep["seed"] == -1
    assert ds.episode_frames(2, "wrist").shape == (15, 48, 48, 3)


def _nearest_written(decoded: np.ndarray, written: np.ndarray) -> np.ndarray:
    """For each decoded frame, the index of the written frame it is closest to."""
    d = np.abs(decoded[:, None].astype(np.int16) - written[None].astype(np.int16)).mean(axis=(2, 3, 4))
    return d.argmin(1)


LENGTHS = (7, 11, 5, 9)


def _check_episodes_decode_to_their_own_frames(ds, written_frames, shape):
    everything = np.concatenate(written_frames)
    start = 0
    for i, n in enumerate(LENGTHS):
        frames = ds.episode_frames(i, "cam")
        assert frames.shape == (n, *shape)
        assert _nearest_written(frames, everything).tolist() == list(range(start, start + n))
        assert np.abs(frames.astype(int) - written_frames[i]).mean() < 6.0  # codec tolerance
        start += n


@pytest.mark.parametrize("codec", ["libsvtav1", "libx264"])
def test_seeking_is_frame_accurate_in_shared_files(tmp_path, codec):
    """Episodes packed in one file with keyframes every 4 frames (never at an episode boundary
    except by chance; H.264 keeps B-frames): each episode decodes to exactly its own frames."""
    if codec not in av.codecs_available:
        pytest.skip(f"FFmpeg here has no {codec}")
    written = write_lerobot_layout(tmp_path / "ds", lengths=LENGTHS, video_cameras={"cam": ((32, 48), codec)},
                                   image_cameras={}, gop=4, stats="full")
    _check_episodes_decode_to_their_own_frames(LeRobotDataset(tmp_path / "ds"), written.frames["cam"], (32, 48, 3))


def test_seeking_is_frame_accurate_in_hevc():
    """HEVC with open GOPs (x265's default): after a seek the decoder drops the frames that lead a
    keyframe, so the reader seeks further back. The file is committed (tests/fixtures/README.md):
    the libx265 in PyAV's wheels corrupts its heap when a process encodes more than once."""
    ds = LeRobotDataset(BY_LAYOUT_HEVC)
    assert ds.info["features"]["observation.images.cam"]["info"]["video.codec"] == "hevc"
    start, written = 0, []
    for n in LENGTHS:
        written.append(np.stack([frame_image(64, 64, g, 1) for g in range(start, start + n)]))
        start += n
    _check_episodes_decode_to_their_own_frames(ds, written, (64, 64, 3))


def test_second_lerobot_layout_dataset_other_cameras_sizes_and_images_in_parquet(tmp_path, caplog):
    written = write_lerobot_layout(tmp_path / "ds")  # stats.json without q01/q99
    with caplog.at_level(logging.WARNING, logger="sim.dataset_reader"):
        ds = LeRobotDataset(tmp_path / "ds")
    assert "lacks q01/q99" in caplog.text and "computed statistics" in caplog.text
    assert ds.cameras == ["top", "gripper", "side"] and ds.image_keys == ["observation.images.side"]
    assert ds.camera_shape("top") == (48, 64, 3) and ds.camera_shape("side") == (24, 32, 3)
    assert ds.state_dim == 6 and ds.action_dim == 6
    assert ds.tasks == {0: "pick the lego brick", 1: "put the brick in the bowl"}
    actions = np.concatenate(written.actions).astype(np.float64)
    np.testing.assert_allclose(ds.stats["action"]["q01"], np.quantile(actions, 0.01, axis=0), rtol=1e-9)
    np.testing.assert_allclose(ds.stats["action"]["mean"], actions.mean(0), rtol=1e-9)
    assert "action" in ds.stats_computed and "observation.images.top" not in ds.stats_computed
    for i, n in enumerate(written.lengths):
        ep = ds.episode(i)
        assert ep["task"] == written.tasks[i]
        np.testing.assert_array_equal(ep["action"], written.actions[i])
        np.testing.assert_array_equal(ep["observation.state"], written.states[i])
        np.testing.assert_array_equal(ep["observation.images.side"], written.frames["side"][i])  # PNG: exact
        for cam in ("top", "gripper"):
            frames = ep[f"observation.images.{cam}"]
            assert frames.shape == (n, *written.frames[cam][i].shape[1:])
            assert np.abs(frames.astype(int) - written.frames[cam][i]).mean() < 6.0
    # only the cameras asked for are decoded
    assert "observation.images.top" not in ds.episode(0, cameras=["side"])
    with pytest.raises(SimError, match="no camera 'front'.*top, gripper, side"):
        ds.camera_key("front")


def test_missing_stats_are_computed_and_said(tmp_path, caplog):
    write_lerobot_layout(tmp_path / "ds", video_cameras={}, stats="none")
    with caplog.at_level(logging.WARNING, logger="sim.dataset_reader"):
        ds = LeRobotDataset(tmp_path / "ds")
    assert "no meta/stats.json" in caplog.text
    assert set(ds.stats_computed) >= {"action", "observation.state"}
    assert ds.stats["index"]["count"] == [ds.num_frames]
    assert not (tmp_path / "ds/meta/stats.json").exists()  # read-only: nothing written into the dataset


def test_our_stats_are_recomputed_identically_when_missing(tmp_path):
    from sim.dataset import LeRobotWriter

    with LeRobotWriter(tmp_path / "ds", fps=10, cameras=["agentview"], image_size=(16, 16), state_dim=3,
                       sync=False) as writer:
        rng = np.random.default_rng(0)
        for e in range(3):
            ep = writer.start_episode(task=f"task {e}")
            for _ in range(4 + e):
                ep.add_frame({"agentview": rng.integers(0, 255, (16, 16, 3), np.uint8)}, rng.normal(size=3),
                             rng.normal(size=7))
            ep.finish(success=True)
    full = LeRobotDataset(tmp_path / "ds").stats
    (tmp_path / "ds/meta/stats.json").unlink()
    again = LeRobotDataset(tmp_path / "ds")
    assert again.stats == full  # image statistics too: our episodes keep their histograms


def test_task_column_is_read_when_the_index_is_named_otherwise(tmp_path):
    """The pandas metadata names the index column; any name works."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_lerobot_layout(tmp_path / "ds", video_cameras={}, stats="full")
    path = tmp_path / "ds/meta/tasks.parquet"
    table = pq.read_table(path)
    renamed = pa.table({"task_index": table.column("task_index"), "instruction": table.column("__index_level_0__")})
    pq.write_table(renamed.replace_schema_metadata({"pandas": json.dumps({"index_columns": ["instruction"]})}), path)
    assert LeRobotDataset(tmp_path / "ds").tasks[1] == "put the brick in the bowl"
    pq.write_table(pa.table({"task_index": [0, 1]}), path)
    with pytest.raises(SimError, match="holds no task strings"):
        LeRobotDataset(tmp_path / "ds")


def test_reader_errors_on_lerobot_layout(tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(BY_LEROBOT, root)
    info = json.loads((root / "meta/info.json").read_text())
    with pytest.raises(SimError, match="out of range.*has 3"):
        LeRobotDataset(root).episode(3)
    (root / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    with pytest.raises(SimError, match="video not found"):
        LeRobotDataset(root).episode(0)
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(SimError, match="convert_dataset_v21_to_v30"):
        LeRobotDataset(root)
