"""`embodied dataset info|check|show` on our datasets and on LeRobot-written ones; bad input is one
line on stderr with exit status 2 and writes nothing."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agent.cli import main
from sim.dataset import LeRobotDataset, LeRobotWriter
from sim.video import video_info, write_mp4
from tests.fixtures.lerobot_layout import write_lerobot_layout

BY_LEROBOT = Path(__file__).parents[1] / "fixtures" / "lerobot_v3_by_lerobot"


def _ours(root: Path) -> Path:
    rng = np.random.default_rng(0)
    with LeRobotWriter(root, fps=10, cameras=["agentview", "wrist"], image_size=(24, 16), state_dim=4,
                       sync=False) as writer:
        for e in range(2):
            ep = writer.start_episode(task=f"reach the {['red', 'blue'][e]} cube", seed=e, task_family="Reach")
            for t in range(6):
                img = np.full((16, 24, 3), 30 * t + e, np.uint8)
                ep.add_frame({"agentview": img, "wrist": 255 - img}, rng.normal(size=4), rng.normal(size=7))
            ep.finish(success=True)
    return root


@pytest.fixture(params=["ours", "by_lerobot", "lerobot_layout"])
def dataset(request, tmp_path) -> Path:
    if request.param == "ours":
        return _ours(tmp_path / "ours")
    if request.param == "by_lerobot":
        return BY_LEROBOT
    write_lerobot_layout(tmp_path / "layout", stats="full")
    return tmp_path / "layout"


def test_info_check_and_show_work_on_every_kind_of_dataset(dataset, tmp_path, capsys):
    assert main(["dataset", "info", str(dataset)]) == 0
    text = capsys.readouterr().out
    assert "episodes" in text and "fps" in text and "statistics per dimension" in text and "tasks (2)" in text
    assert main(["dataset", "info", str(dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == sum(t["frames"] for t in info["tasks"])
    assert {f["key"] for f in info["features"]} >= {"action", "observation.state"}
    assert all(f.get("codec") for f in info["features"] if f["dtype"] in ("video", "image"))
    assert set(info["stats"]["action"]) >= {"min", "max", "mean", "std", "q01", "q99"}

    assert main(["dataset", "check", str(dataset), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "check: 0 error(s)" in out

    png, mp4 = tmp_path / "ep.png", tmp_path / "ep.mp4"
    assert main(["dataset", "show", str(dataset), "--episode", "1", "--out", str(png)]) == 0
    assert main(["dataset", "show", str(dataset), "--episode", "1", "--out", str(mp4)]) == 0
    from PIL import Image

    with Image.open(png) as im:
        assert im.width >= 480 and im.height > 300
    assert video_info(mp4)["frames"] == LeRobotDataset(dataset).episode_length(1)  # one video frame per step


def test_info_reports_codecs_tasks_and_per_dimension_stats(tmp_path, capsys):
    write_lerobot_layout(tmp_path / "ds", stats="full")
    assert main(["dataset", "info", str(tmp_path / "ds"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 4 and info["frames"] == 45 and info["fps"] == 15
    feats = {f["key"]: f for f in info["features"]}
    assert feats["observation.images.top"]["codec"] == "av1" and feats["observation.images.top"]["shape"] == [48, 64, 3]
    assert feats["observation.images.gripper"]["codec"] == "h264"
    assert feats["observation.images.side"]["codec"] == "image in parquet"
    assert feats["observation.state"]["names"][0] == "shoulder_pan.pos"
    assert info["tasks"] == [{"task": "pick the lego brick", "episodes": 2, "frames": 26},
                             {"task": "put the brick in the bowl", "episodes": 2, "frames": 19}]
    assert len(info["stats"]["action"]["q99"]) == 6


def _rewrite_data(root: Path, edit) -> None:
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    cols = {name: table.column(name) for name in table.column_names}
    edit(cols)
    pq.write_table(pa.table(cols).replace_schema_metadata(table.schema.metadata), path)


def _fixed(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1).astype(np.float32)), values.shape[1])


def test_check_flags_errors_and_warnings(tmp_path, capsys):
    root = tmp_path / "ds"
    write_lerobot_layout(root, video_cameras={"top": ((32, 32), "libx264")}, image_cameras={}, stats="full")
    stats = json.loads((root / "meta/stats.json").read_text())

    def edit(cols):
        action = cols["action"].combine_chunks().flatten().to_numpy().reshape(-1, 6).copy()
        state = cols["observation.state"].combine_chunks().flatten().to_numpy().reshape(-1, 6).copy()
        action[3, 1] = np.nan  # episode 0
        action[20, 0] = stats["action"]["max"][0] + 5.0  # episode 1 (starts at 12): outside [min, max]
        state[:, 5] = 1.0  # a dead sensor
        state[31] = state[30]  # a duplicate frame in episode 2 (frames 21..34)
        action[31] = action[30]
        ts = cols["timestamp"].to_numpy().copy()
        ts[40] = ts[39]  # episode 3: timestamps stall
        cols["action"], cols["observation.state"] = _fixed(action), _fixed(state)
        cols["timestamp"] = pa.array(ts)

    _rewrite_data(root, edit)
    stats["observation.state"]["min"][5] = stats["observation.state"]["max"][5] = 1.0
    (root / "meta/stats.json").write_text(json.dumps(stats))
    # the shared video loses its last frames: fewer frames than the parquet has
    whole = np.zeros((40, 32, 32, 3), np.uint8)
    write_mp4(root / "videos/observation.images.top/chunk-000/file-000.mp4", whole, fps=15)
    assert main(["dataset", "check", str(root)]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert any("episode 0: action has NaN/inf at frames 3" in e for e in errors)
    assert any("episode 1: 1 action(s) outside the statistics' [min, max] in shoulder_pan.pos" in e for e in errors)
    assert any("episode 3: timestamps not increasing" in e for e in errors)
    assert any("has 40 frames, the parquet has 45" in e for e in errors)
    assert any("constant dimension" in w and "gripper.pos = 1" in w for w in warnings)
    assert any("1 duplicate frame(s)" in w and "episodes 2" in w for w in warnings)
    assert out.index("error:") < out.index("warning:")  # errors first
    assert "check: 4 error(s), 2 warning(s)" in out


def test_check_warns_about_idle_frames(tmp_path, capsys):
    root = tmp_path / "ds"
    write_lerobot_layout(root, video_cameras={}, image_cameras={}, stats="full")

    def edit(cols):
        for key in ("action", "observation.state"):
            x = cols[key].combine_chunks().flatten().to_numpy().reshape(-1, 6).copy()
            x[5:12] = x[4] + np.arange(7)[:, None] * 1e-6  # the arm stands still for 7 frames
            cols[key] = _fixed(x)

    _rewrite_data(root, edit)
    assert main(["dataset", "check", str(root)]) == 0  # warnings alone do not fail
    out = capsys.readouterr().out
    assert "7 of 45 frames (16 %) are idle" in out and "check: 0 error(s)" in out


def test_check_decode_finds_a_frozen_camera(tmp_path, capsys):
    root = tmp_path / "ds"
    write_lerobot_layout(root, video_cameras={"top": ((32, 32), "libx264")}, image_cameras={}, stats="full")
    write_mp4(root / "videos/observation.images.top/chunk-000/file-000.mp4", np.zeros((45, 32, 32, 3), np.uint8),
              fps=15)  # right frame count, one image
    assert main(["dataset", "check", str(root)]) == 0
    assert "check: 0 error(s), 0 warning(s)" in capsys.readouterr().out
    assert main(["dataset", "check", str(root), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "warning: episode 1: camera top shows the same image in 8 of 9 frames while the robot moves" in out


# --------------------------------------------------------------------------- bad input

def _one_line_error(capsys, argv, match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "Traceback" not in err, err


@pytest.fixture
def copy(tmp_path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(BY_LEROBOT, root)
    return root


def test_truncated_parquet(copy, tmp_path, capsys):
    data = copy / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    out = tmp_path / "ep.png"
    _one_line_error(capsys, ["dataset", "show", str(copy), "--out", str(out)], "corrupt parquet file")
    assert not out.exists() and not list(tmp_path.glob(".ep.png*"))
    episodes = copy / "meta/episodes/chunk-000/file-000.parquet"
    episodes.write_bytes(episodes.read_bytes()[:100])
    _one_line_error(capsys, ["dataset", "info", str(copy)], "corrupt parquet file")


def test_truncated_parquet_is_a_check_error(copy, capsys):
    data = copy / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[:-200])
    assert main(["dataset", "check", str(copy)]) == 1
    assert "error: episode 0: corrupt parquet file" in capsys.readouterr().out


def test_missing_video_file(copy, tmp_path, capsys):
    (copy / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    out = tmp_path / "ep.mp4"
    _one_line_error(capsys, ["dataset", "show", str(copy), "--out", str(out)], "video not found")
    assert not out.exists() and not list(tmp_path.glob(".ep.mp4*"))
    assert main(["dataset", "check", str(copy)]) == 1
    assert "error: video not found" in capsys.readouterr().out


def test_info_json_of_another_version_names_the_conversion(copy, capsys):
    info = json.loads((copy / "meta/info.json").read_text())
    (copy / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    for command in ("info", "check"):
        _one_line_error(capsys, ["dataset", command, str(copy)],
                        "lerobot.datasets.v30.convert_dataset_v21_to_v30")
    (copy / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    _one_line_error(capsys, ["dataset", "info", str(copy)], "only LeRobot v3.0 datasets are read")


def test_episode_index_out_of_range(copy, tmp_path, capsys):
    out = tmp_path / "ep.png"
    _one_line_error(capsys, ["dataset", "show", str(copy), "--episode", "3", "--out", str(out)],
                    "episode 3 out of range: the dataset has 3")
    assert not out.exists()
    _one_line_error(capsys, ["dataset", "show", str(copy), "--out", str(tmp_path / "ep.gif")], "must end in .png or .mp4")
    _one_line_error(capsys, ["dataset", "info", str(tmp_path / "nothing")], "not a dataset")
