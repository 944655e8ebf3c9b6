"""The coach's analysis and drawing (perception.billiards.analysis/report/sidecar).

The shot facts are checked against the simulator's own velocities on the demo drill (a ~28
degree cut of the red into the top-right pocket), with a ground-truth ``ShotPerception`` (a
perfect tracker) so that only the analysis is under test here; tests/agent/test_coach_cli.py
runs the whole path from pixels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from perception.billiards.analysis import (analyse_shot, angle_between_deg, strike_time,
                                           velocity_at)
from perception.billiards.report import annotate_frames, describe_event, draw_table, format_report
from perception.billiards.sidecar import load_depth, load_sidecar
from perception.billiards.types import BallTrack, PerceivedEvent, ShotPerception
from perception.errors import PerceptionError
from tests.perception.billiards_truth import sim_geometry, truth_perception


@pytest.fixture(scope="module")
def drill():
    """The demo drill simulated (physics only, no cameras) until just after the pot."""
    from sim.billiards import BilliardsWorld, simulate_shot
    from sim.billiards.demo_shot import POWER, TARGET, demo_aim, demo_layout

    world = BilliardsWorld(cameras=())
    world.reset(np.random.default_rng(0))
    demo_layout(world)
    record = simulate_shot(world, demo_aim(world), POWER, record=False, target=TARGET, max_time=2.6)
    return record


def _truth_facts(record) -> dict:
    """Speeds and angles straight from the simulator's velocities."""
    t_strike = next(e.t for e in record.events if e.kind == "strike")
    t_hit = next(e.t for e in record.events if e.kind == "ball_ball")
    k_s = int(np.searchsorted(record.times, t_strike))  # first frame after the strike
    k_h = int(np.searchsorted(record.times, t_hit))
    red = record.ball_names.index("red")
    v0 = record.ball_vel[k_s, 0, :2]
    v_in, v_out = record.ball_vel[k_h - 1, 0, :2], record.ball_vel[k_h + 1, red, :2]
    return {"speed": float(np.linalg.norm(v0)), "direction": float(np.degrees(np.arctan2(v0[1], v0[0]))),
            "cut": angle_between_deg(v_in, v_out), "t_strike": t_strike, "t_hit": t_hit}


def test_the_facts_of_a_scripted_pot_match_the_simulator(drill):
    truth = _truth_facts(drill)
    report = analyse_shot(truth_perception(drill), aimed_ball="red")
    assert report.strike_t == pytest.approx(truth["t_strike"])
    assert report.cue_ball_speed_mps == pytest.approx(truth["speed"], rel=0.03)
    assert report.cue_ball_direction_deg == pytest.approx(np.degrees(drill.aim), abs=0.3)
    assert report.cue_ball_direction_deg == pytest.approx(truth["direction"], abs=0.3)
    assert report.first_hit == "red"
    assert report.first_hit_t == pytest.approx(truth["t_hit"])
    assert 20.0 < truth["cut"] < 35.0  # the drill is a real cut, not a straight pot
    assert report.cut_angle_deg == pytest.approx(truth["cut"], abs=1.0)
    assert [(e.a, e.b) for e in report.pots] == [("red", "top_right")]
    assert report.aimed_ball_potted is True and report.cue_ball_potted is False
    facts = json.loads(json.dumps(report.to_dict()))
    assert facts["aimed_ball_potted"] is True and facts["pots"][0]["ball"] == "red"


def test_the_aimed_ball_is_unknown_or_missed(drill):
    shot = truth_perception(drill)
    assert analyse_shot(shot).to_dict()["aimed_ball_potted"] == "unknown"
    missed = analyse_shot(shot, aimed_ball="blue")
    assert missed.aimed_ball_potted is False
    assert "blue, missed" in format_report(missed)


def _track(name: str, t: np.ndarray, xy: np.ndarray) -> BallTrack:
    return BallTrack(name, t, xy, np.isfinite(xy).all(axis=1))


def _synthetic_cut(cut_deg: float) -> ShotPerception:
    """Cue ball along +x at 1 m/s from t = 0.5 s, hitting an object ball that leaves at ``cut_deg``."""
    g = sim_geometry()
    t = np.arange(0, 2.0, 1 / 30)
    t_hit = 1.0
    cue = np.zeros((len(t), 2))
    cue[:, 0] = np.clip(t - 0.5, 0, t_hit - 0.5) * 1000.0 - 600.0
    a = np.radians(cut_deg)
    obj = np.tile([0.0, 0.0], (len(t), 1)).astype(float)
    after = t > t_hit
    obj[after] = np.outer(t[after] - t_hit, [np.cos(a), np.sin(a)]) * 800.0
    tracks = {"cue": _track("cue", t, cue), "red": _track("red", t, obj)}
    events = (PerceivedEvent(0.5, "strike", "cue_stick", "cue"), PerceivedEvent(t_hit, "ball_ball", "cue", "red"))
    return ShotPerception(fps=30.0, tracks=tracks, events=events, geometry=g)


@pytest.mark.parametrize("cut", [0.0, 30.0, 60.0])
def test_cut_angle_and_speed_on_synthetic_tracks(cut):
    report = analyse_shot(_synthetic_cut(cut))
    assert report.cut_angle_deg == pytest.approx(cut, abs=0.01)
    assert report.object_ball_direction_deg == pytest.approx(cut, abs=0.01)
    assert report.cue_ball_speed_mps == pytest.approx(1.0, rel=1e-6)
    assert report.cue_ball_direction_deg == pytest.approx(0.0, abs=1e-6)


def test_velocity_fit_undoes_the_cloths_deceleration():
    t = np.arange(0, 0.3, 1 / 30)
    x = 2000.0 * t - 0.5 * 2000.0 * t**2  # 2 m/s slowing at 2 m/s^2
    track = _track("cue", t, np.c_[x, np.zeros_like(x)])
    assert velocity_at(track, -1, 0.2, 0.0, quadratic=True)[0] == pytest.approx(2000.0)
    assert velocity_at(track, -1, 0.2, 0.0)[0] < 1900.0  # a straight line reads it low
    assert velocity_at(track, 5.0, 6.0, 5.0) is None


def test_strike_time_without_a_strike_event():
    shot = _synthetic_cut(30.0)
    no_strike = ShotPerception(shot.fps, shot.tracks, shot.events[1:], shot.geometry)
    assert strike_time(no_strike) == pytest.approx(0.5, abs=1 / 30 + 1e-9)


def test_drawings_show_paths_events_and_captions(drill):
    shot = truth_perception(drill)
    report = analyse_shot(shot, aimed_ball="red")
    img = draw_table(shot, report, width_px=800)
    assert img.dtype == np.uint8 and img.shape[1] == 800 and img.shape[0] > 400
    red = np.array([int(255 * c) for c in shot.geometry.ball_colours["red"]])
    assert (np.abs(img.astype(int) - red).sum(axis=2) < 30).sum() > 200  # the red's path is drawn
    text = format_report(report)
    assert "the red at" in text and "red in top_right" in text and "aimed ball:          red, potted" in text
    assert describe_event(report.events[1]) == "the cue ball hits the red"

    from sim.billiards.sidecar import sidecar_dict

    frames = np.full((len(drill.times), 48, 64, 3), 60, np.uint8)
    side = sidecar_dict(drill_with_camera(drill), "overhead", 64, 48)
    out = list(annotate_frames(frames, drill.times, np.array(side["K"]), np.array(side["camera_pose"]),
                               shot, report))
    assert len(out) == len(frames) and out[-1].shape == frames[0].shape
    assert not np.array_equal(out[-1], frames[-1])  # trails and captions drawn
    assert np.array_equal(frames[-1], np.full_like(frames[-1], 60))  # inputs untouched


def drill_with_camera(record):
    """``record`` with the overhead camera's K and pose (as a 64x48 world reports them)."""
    from dataclasses import replace

    from sim.billiards import BilliardsWorld

    world = BilliardsWorld(cameras=("overhead",), width=64, height=48)
    try:
        return replace(record, K=world.intrinsics(), camera_pose=world.camera_poses())
    finally:
        world.close()


def test_sidecar_round_trip_and_one_line_errors(tmp_path, drill):
    from sim.billiards.sidecar import write_sidecar

    video = tmp_path / "overhead.mp4"
    path = write_sidecar(drill_with_camera(drill), video, "overhead", 64, 48)
    assert path.name == "overhead.calib.json"
    side = load_sidecar(path)
    assert side.aimed_ball == "red" and side.fps == drill.fps
    assert side.K[0, 2] == pytest.approx(31.5)  # OpenCV pixel centres
    assert side.geometry.pockets == sim_geometry().pockets
    assert side.geometry.table_to_world[2, 3] == pytest.approx(0.79)

    with pytest.raises(PerceptionError, match="no camera sidecar"):
        load_sidecar(tmp_path / "missing.calib.json")
    meta = json.loads(path.read_text())
    for change, message in [({"format": "x"}, "not a camera sidecar"), ({"K": [[1, 0], [0, 1]]}, "'K' must be"),
                            ({"aimed_ball": "pink"}, "not one of the table's balls"),
                            ({"table": {"half_length_mm": 1}}, "'table' is missing")]:
        bad = tmp_path / "bad.calib.json"
        bad.write_text(json.dumps({**meta, **change}))
        with pytest.raises(PerceptionError, match=message):
            load_sidecar(bad)

    np.savez(tmp_path / "d.npz", depth=np.ones((3, 48, 64), np.float32))
    assert load_depth(tmp_path / "d.npz", 3, (48, 64)).shape == (3, 48, 64)
    with pytest.raises(PerceptionError, match="to match the video"):
        load_depth(tmp_path / "d.npz", 4, (48, 64))
