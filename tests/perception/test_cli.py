"""`embodied perceive` writes a contact sheet; `embodied pose` writes an overlay; bad input exits 2."""

import json

import numpy as np
import pytest
from PIL import Image

from agent.cli import main
from perception.pose import cue_model
from perception.pose.synthetic import look_at_cue_pose, render_cue_scene
from perception.videoio import write_video


def test_perceive_writes_a_contact_sheet(tmp_path, capsys):
    frames = np.zeros((40, 48, 64, 3), np.uint8)
    for i in range(40):
        frames[i, 10:20, (i * 3) % 56:(i * 3) % 56 + 8] = 255
    write_video(tmp_path / "v.mp4", frames, fps=10)
    out = tmp_path / "sheet.png"
    assert main(["perceive", "--video", str(tmp_path / "v.mp4"), "--sampler", "uniform",
                 "--budget", "4", "--out", str(out)]) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[0] > 48 and sheet.shape[1] > 64
    assert "0.50s, 1.50s" in capsys.readouterr().out  # uniform: frames 5, 15, ... at 10 fps


def test_perceive_errors_are_one_line(tmp_path, capsys):
    frames = np.zeros((5, 16, 16, 3), np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=5)
    assert main(["perceive", "--video", str(tmp_path / "v.mp4"), "--budget", "9",
                 "--out", str(tmp_path / "s.png")]) == 2
    assert "larger than the stream" in capsys.readouterr().err
    assert main(["perceive", "--video", str(tmp_path / "none.mp4")]) == 2
    assert main(["perceive", "--video", str(tmp_path / "v.mp4"), "--sampler", "nope"]) == 2
    assert "valid: uniform" in capsys.readouterr().err


def test_pose_overlay_and_missing_intrinsics(tmp_path, capsys):
    K = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
    model = cue_model()
    frames = [render_cue_scene(look_at_cue_pose([-0.3 + 0.01 * k, 0.05, 1.0], [0.9, 0.15, 0.5]),
                               K, (240, 320), model)[0] for k in range(3)]
    write_video(tmp_path / "cue.mp4", frames, fps=10, crf=12)
    (tmp_path / "K.json").write_text(json.dumps({"K": K.tolist()}))
    assert main(["pose", "--video", str(tmp_path / "cue.mp4"), "--intrinsics",
                 str(tmp_path / "K.json"), "--out", str(tmp_path / "o.mp4")]) == 0
    assert "cue found in 3" in capsys.readouterr().out
    assert (tmp_path / "o.mp4").stat().st_size > 0
    assert main(["pose", "--video", str(tmp_path / "cue.mp4"), "--intrinsics",
                 str(tmp_path / "missing.json")]) == 2
    assert "intrinsics file not found" in capsys.readouterr().err
