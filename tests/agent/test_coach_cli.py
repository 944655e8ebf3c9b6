"""`embodied coach` end to end: a scripted pot recorded at 640x480 with depth, then analysed from
its video alone (ball tracker, cue tracker, analysis, drawings), the report checked against the
simulator's ground truth.

640x480 because the cue tracker needs it: at 320x240 the shaft is two pixels wide and the
video's compression smears its colour away (perception/billiards/cue_reading.py).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from agent.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from sim.billiards.demo_shot import record_demo_shot

    out = tmp_path_factory.mktemp("coach")
    # Cut short after the pot (the cue ball rolls on for seconds; nothing more to see).
    return record_demo_shot(out / "shot", size=(640, 480), depth=True, shadows=False, max_time=2.6)


@pytest.fixture(scope="module")
def coached(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("coach") / "report"
    rc = main(["coach", "--video", str(demo.video), "--depth", str(demo.depth), "--out", str(out)])
    assert rc == 0
    return out


def test_the_report_matches_the_simulators_ground_truth(demo, coached):
    rec = demo.record
    facts = json.loads((coached / "report.json").read_text())
    truth = {e.kind: e for e in reversed(rec.events)}  # the first of each kind
    k = int(np.searchsorted(rec.times, truth["strike"].t))  # first frame after the strike
    v = rec.ball_vel[k, 0, :2]
    cue_axis = rec.cue_pose[k - 1][:3, 2]  # tip -> butt, just before the strike

    assert facts["strike_t"] == pytest.approx(truth["strike"].t, abs=0.05)
    assert facts["cue"]["source"] == "rgb-d"
    assert facts["cue"]["direction_deg"] == pytest.approx(np.degrees(rec.aim), abs=1.0)
    assert facts["cue"]["elevation_deg"] == pytest.approx(np.degrees(np.arcsin(cue_axis[2])), abs=1.0)
    assert facts["cue_ball_speed_mps"] == pytest.approx(np.linalg.norm(v), rel=0.06)
    assert facts["cue_ball_direction_deg"] == pytest.approx(np.degrees(np.arctan2(v[1], v[0])), abs=1.5)
    assert facts["first_hit"] == "red"
    assert facts["first_hit_t"] == pytest.approx(truth["ball_ball"].t, abs=0.05)
    red = rec.ball_names.index("red")
    kh = int(np.searchsorted(rec.times, truth["ball_ball"].t))
    v_in, v_out = rec.ball_vel[kh - 1, 0, :2], rec.ball_vel[kh + 1, red, :2]
    cut = np.degrees(np.arccos(v_in @ v_out / np.linalg.norm(v_in) / np.linalg.norm(v_out)))
    assert facts["cut_angle_deg"] == pytest.approx(cut, abs=2.0)
    assert [(p["ball"], p["pocket"]) for p in facts["pots"]] == [("red", "top_right")]
    assert facts["pots"][0]["t"] == pytest.approx(truth["pot"].t, abs=0.1)
    assert facts["aimed_ball"] == "red" and facts["aimed_ball_potted"] is True
    assert facts["cue_ball_potted"] is False
    # the balls left to right as the camera showed them at the start (what "left of" asks about)
    from perception.billiards.sidecar import load_sidecar, sidecar_path

    side = load_sidecar(sidecar_path(demo.video))
    R, t = side.cam_to_world[:3, :3], side.cam_to_world[:3, 3]
    cam = (rec.ball_pos[0] - t) @ R  # world -> camera (OpenCV axes)
    u = side.K[0, 0] * cam[:, 0] / cam[:, 2] + side.K[0, 2]
    assert sorted(facts["layout"]) == sorted(rec.ball_names)
    in_order = u[[rec.ball_names.index(b) for b in facts["layout"]]]
    assert np.all(np.diff(in_order) > -2.0)  # the parked balls share a column: any order of those


def test_the_png_and_the_annotated_video_decode(demo, coached):
    from sim.video import read_mp4

    png = cv2.imread(str(coached / "table.png"))
    assert png is not None and png.shape[1] == 1100
    video = read_mp4(coached / "annotated.mp4")
    original = read_mp4(demo.video)
    assert video.shape == original.shape
    assert np.abs(video[-1].astype(int) - original[-1]).mean() > 1.0  # the overlay is there
    assert "the cue ball hits the red" in (coached / "report.txt").read_text()


def test_user_mistakes_are_one_line(demo, tmp_path, capsys):
    lone = tmp_path / "lone.mp4"
    lone.write_bytes(demo.video.read_bytes())  # a video without its sidecar
    assert main(["coach", "--video", str(lone), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("embodied coach: error: no camera sidecar") and "\n" not in err
    assert main(["coach", "--video", str(demo.video), "--out", str(tmp_path / "r"), "--aimed", "pink"]) == 2
    assert "unknown ball 'pink'" in capsys.readouterr().err
    assert main(["coach", "--out", str(tmp_path / "r")]) == 2
    assert "give --video FILE" in capsys.readouterr().err


def test_ask_tracks_a_calibrated_video_itself_for_a_subtitle_model(demo, capsys):
    """`embodied ask --video` on a video with a camera sidecar, no --events: the billiards tracker
    runs on it and the shipped model (trained with subtitles) reads its events."""
    capsys.readouterr()
    assert main(["ask", "--video", str(demo.video), "--checkpoint", "checkpoints/videoqa-default",
                 "Which ball did the cue ball hit first?"]) == 0
    out = capsys.readouterr()
    assert "the ball tracker's events" in out.err
    assert out.out.splitlines()[0].strip() == "red"
