"""Training on LeRobot v3.0 datasets written by others, and evaluating offline on held-out episodes.

Two foreign datasets: the one LeRobot itself wrote (tests/fixtures/lerobot_v3_by_lerobot: cameras
agentview and wrist at 48x48, 15-D state, 7-D unnamed actions), and an SO-101-like one in LeRobot's
layout (tests/fixtures/lerobot_layout.py: cameras top 48x64 AV1, gripper 32x40 H.264, side 24x32
PNG in the parquet; 6 named joints for state and action). Every run goes through the CLI
(``agent.cli.main``) with a tiny model and a few steps: what is checked is the plumbing (sizes,
camera mapping, recorded features and split, the JSON), not what a 3-step policy has learnt.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from policy.errors import PolicyError
from policy.predict import Policy
from tests.fixtures.lerobot_layout import JOINTS, write_lerobot_layout

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot_v3_by_lerobot"
TINY = ["--image-size", "32", "--patch-size", "8", "--vision-hidden", "32", "--lm-hidden", "64",
        "--lm-layers", "2", "--lm-heads", "2", "--chunk", "2", "--text-vocab-size", "64",
        "--max-text-tokens", "8", "--steps", "3", "--batch-size", "4", "--log-every", "3",
        "--save-every", "100", "--warmup-steps", "1", "--device", "cpu"]


def _run(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out + out.err


def _one_line_error(capsys, *argv) -> str:
    rc, text = _run(capsys, *argv)
    errors = [line for line in text.splitlines() if "error:" in line]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in text, text
    return errors[0]


@pytest.fixture(scope="module")
def so101(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("so101") / "ds"
    write_lerobot_layout(root, lengths=(8, 6, 9, 7))
    return root


@pytest.fixture(scope="module")
def so101_run(tmp_path_factory, so101) -> Path:
    """A policy trained on the SO-101 layout: `top` fed to the model input `agentview`, `side`
    under its own name, the last episode held out."""
    out = tmp_path_factory.mktemp("so101_run") / "run"
    assert main(["train", "--dataset", str(so101), "--cameras", "agentview,side",
                 "--camera-map", "top=agentview", "--holdout-episodes", "1", "--out", str(out),
                 *TINY]) == 0
    return out / "checkpoint"


def _evaluate(capsys, ckpt, dataset, out, *extra) -> dict:
    rc, text = _run(capsys, "eval", "--checkpoint", ckpt, "--dataset", dataset, "--out", out, *extra)
    assert rc == 0, text
    saved = json.loads(Path(out).read_text())
    printed = json.loads(text[text.index("{"):])  # the summary line, then the JSON
    assert printed["action_l1"] == saved["action_l1"] and "config" in saved
    return saved


def test_lerobot_written_fixture_trains_and_evaluates_offline(tmp_path, capsys):
    rc, text = _run(capsys, "train", "--dataset", FIXTURE, "--holdout-episodes", "1",
                    "--out", tmp_path / "run", *TINY)
    assert rc == 0, text
    ckpt = tmp_path / "run" / "checkpoint"
    features = json.loads((ckpt / "config.json").read_text())["dataset"]
    assert features["cameras"] == {"agentview": {"dataset_camera": "agentview", "shape": [48, 48, 3]},
                                   "wrist": {"dataset_camera": "wrist", "shape": [48, 48, 3]}}
    assert features["state"]["dim"] == 15 and features["action"] == {"dim": 7, "names": None}
    assert features["episodes"] == {"total": 3, "train": [0, 1], "held_out": [2]} and features["fps"] == 10
    # Unnamed actions are not our convention: every dimension continuous, no binary gripper.
    assert json.loads((ckpt / "stats.json").read_text())["action"]["gripper_dim"] is None

    result = _evaluate(capsys, ckpt, FIXTURE, tmp_path / "eval.json", "--episodes", "held-out")
    assert result["episodes"] == [2] and result["seen_in_training"] == [] and result["frames"] == 15
    for key in ("action_l1", "action_l1_normalized", "token_accuracy"):
        assert len(result[key + "_per_dim"]) == 7 and np.isfinite(result[key])
        assert result[key] == pytest.approx(np.mean(result[key + "_per_dim"]), abs=1e-5)
    assert 0.0 <= result["token_accuracy"] <= 1.0 and len(result["action_l1_per_step"]) == 2
    assert result["baseline"]["action_l1"] > 0 and result["per_episode"][0]["frames"] == 15


def test_so101_layout_sizes_the_model_and_maps_cameras(so101_run, so101, tmp_path, capsys):
    config = json.loads((so101_run / "config.json").read_text())
    assert config["vla"]["action_dim"] == 6 and config["vla"]["state_dim"] == 6
    features = config["dataset"]
    assert features["cameras"] == {"agentview": {"dataset_camera": "top", "shape": [48, 64, 3]},
                                   "side": {"dataset_camera": "side", "shape": [24, 32, 3]}}
    assert features["action"]["names"] == [f"{j}.pos" for j in JOINTS]
    assert features["episodes"]["held_out"] == [3] and features["root"] == str(so101.resolve())

    result = _evaluate(capsys, so101_run, so101, tmp_path / "eval.json")  # held-out by default
    assert result["episodes"] == [3] and result["frames"] == 7 and len(result["action_l1_per_dim"]) == 6
    assert result["action_names"] == features["action"]["names"]
    # Explicit episodes: scored, and flagged as seen in training.
    result = _evaluate(capsys, so101_run, so101, tmp_path / "e2.json", "--episodes", "0,3")
    assert result["episodes"] == [0, 3] and result["seen_in_training"] == [0] and result["frames"] == 15

    # Inference on the robot's own frames: non-square cameras at their recorded shapes, under the
    # model's input names or the dataset's camera names alike.
    policy = Policy.from_pretrained(so101_run)
    rng = np.random.default_rng(0)
    top = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    side = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    state = np.zeros(6, np.float32)
    by_model = policy.predict_chunk([{"agentview": top, "side": side, "state": state}], ["pick the lego brick"])
    by_robot = policy.predict_chunk([{"top": top, "side": side, "state": state}], ["pick the lego brick"])
    assert by_model.shape == (1, 2, 6) and np.array_equal(by_model, by_robot)
    spec = policy.describe()
    assert spec["image_size"] is None and spec["camera_shapes"]["agentview"] == [48, 64, 3]

    # A mismatch at inference is one line naming the feature.
    with pytest.raises(PolicyError, match="lacks camera 'side'"):
        policy.predict_chunk([{"top": top, "state": state}], ["pick"])
    with pytest.raises(PolicyError, match=r"\(48, 48, 3\).*trained on 48x64x3 frames from dataset camera 'top'"):
        policy.predict_chunk([{"top": top[:, :48].copy(), "side": side, "state": state}], ["pick"])
    with pytest.raises(PolicyError, match="7 dimensions, the checkpoint was trained on 6 .*: 1 extra"):
        policy.predict_chunk([{"top": top, "side": side, "state": np.zeros(7, np.float32)}], ["pick"])


def test_dataset_mismatch_names_the_feature(so101_run, tmp_path, capsys):
    # The other foreign dataset has none of the cameras the checkpoint was trained on.
    line = _one_line_error(capsys, "eval", "--checkpoint", so101_run, "--dataset", FIXTURE, "--episodes", "0")
    assert "lacks camera 'top', which the checkpoint reads as 'agentview'" in line and "agentview, wrist" in line
    # Same cameras, one joint fewer in the state: the missing one is named.
    five = tmp_path / "five"
    write_lerobot_layout(five, lengths=(5, 4, 5, 4), state_dim=5)
    line = _one_line_error(capsys, "eval", "--checkpoint", so101_run, "--dataset", five, "--episodes", "all")
    assert "observation.state" in line and "missing gripper.pos" in line


def test_bad_input_is_one_line(so101, so101_run, tmp_path, capsys):
    line = _one_line_error(capsys, "train", "--dataset", so101, "--cameras", "front", "--out",
                           tmp_path / "x", *TINY)
    assert "no camera 'front'" in line and "top, gripper, side" in line and not (tmp_path / "x").exists()
    line = _one_line_error(capsys, "train", "--dataset", so101, "--cameras", "top",
                           "--camera-map", "wrist=top", *TINY)
    assert "no camera 'wrist'" in line and "top, gripper, side" in line
    line = _one_line_error(capsys, "eval", "--checkpoint", so101_run, "--dataset", so101, "--episodes", "2,9")
    assert "episode 9 out of range" in line and "0..3" in line
    line = _one_line_error(capsys, "eval", "--checkpoint", so101_run, "--dataset", so101, "--task", "Reach")
    assert "--task applies to the closed-loop" in line
    line = _one_line_error(capsys, "eval", "--checkpoint", so101_run, "--episodes", "held-out")
    assert "need --dataset" in line

    # A dataset without an action feature.
    no_action = tmp_path / "no_action"
    write_lerobot_layout(no_action, lengths=(4, 4), video_cameras={}, stats="full")
    info = json.loads((no_action / "meta" / "info.json").read_text())
    del info["features"]["action"]
    (no_action / "meta" / "info.json").write_text(json.dumps(info))
    line = _one_line_error(capsys, "train", "--dataset", no_action, "--cameras", "side", *TINY)
    assert "no 'action' feature" in line


def test_recorded_features_are_checked_at_load(so101_run, tmp_path):
    """config.json is untrusted: a hand-edited dataset block is one line naming the field."""
    import shutil

    for edit, field in ((lambda d: d["cameras"].pop("side"), "dataset.cameras"),
                        (lambda d: d["action"].update(dim=7), "dataset.action.dim"),
                        (lambda d: d["episodes"].update(held_out=["3"]), "dataset.episodes.held_out")):
        ckpt = tmp_path / field
        shutil.copytree(so101_run, ckpt)
        config = json.loads((ckpt / "config.json").read_text())
        edit(config["dataset"])
        (ckpt / "config.json").write_text(json.dumps(config))
        with pytest.raises(PolicyError, match=field.replace(".", r"\.")):
            Policy.from_pretrained(ckpt)


def test_the_shipped_checkpoint_fine_tunes_on_data_without_our_ground_truth(capsys, tmp_path):
    """LeRobot's data has no simulator ground truth: the auxiliary target loss is left out (said so)
    instead of the dataset being refused."""
    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "vla-default"
    rc, text = _run(capsys, "train", "--dataset", FIXTURE, "--init", shipped, "--restat", "--steps", 2,
                    "--batch-size", 4, "--log-every", 1, "--save-every", 100, "--out", tmp_path / "ft")
    assert rc == 0, text
    assert "without the auxiliary target loss" in text
    assert (tmp_path / "ft" / "checkpoint" / "config.json").is_file()
