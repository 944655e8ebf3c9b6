"""The billiards ball tracker and its events against the simulator's ground truth.

One scripted pot rendered at 320x240 (the whole shot: strike, first hit, pot with its pocket),
a handful of 640x480 frames (position error; a ball under the cue is held, then found again),
and the pure-numpy parts (the camera geometry, events from hand-made tracks) without rendering.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from perception.billiards.events import infer_events
from perception.billiards.geometry import TableCamera
from perception.billiards.sidecar import table_geometry
from perception.billiards.tracker import CUE_COLOURS, BallTracker, track_shot
from perception.billiards.types import BallTrack
from sim.billiards import BilliardsWorld, ScriptedPlayer, simulate_shot
from sim.billiards.sidecar import table_dict

# Red near the top-right corner, the cue ball a short, easy cut away; the rest out of the way.
LAYOUT = np.array([[0.78, 0.30], [-1.0, -0.5], [-0.8, -0.5], [1.05, 0.47], [-0.6, -0.5],
                   [-0.4, -0.5], [-0.2, -0.5], [0.0, -0.5], [0.2, -0.5]])


@pytest.fixture(scope="module")
def geometry():
    return table_geometry(table_dict())


def _world(width: int, height: int) -> BilliardsWorld:
    w = BilliardsWorld(cameras=("overhead",), width=width, height=height, shadows=False)
    w.reset(np.random.default_rng(0), "scatter")
    w.place_balls(LAYOUT)
    mujoco.mj_forward(w.model, w.data)
    return w


@pytest.fixture(scope="module")
def pot_shot(geometry):
    """A perfect player pots the red in the top-right pocket; tracked at 320x240."""
    w = _world(320, 240)
    try:
        player = ScriptedPlayer(np.random.default_rng(0), aim_noise_deg=0.0, power_noise=0.0)
        _, aim, power, ball, pocket = next(c for c in player.candidates(w.state()) if c[3] == "red")
        assert pocket == "top_right"
        rec = simulate_shot(w, aim, power, max_time=2.6)
    finally:
        w.close()
    shot = track_shot(rec.frames["overhead"], rec.times, rec.K["overhead"], rec.camera_pose["overhead"],
                      geometry)
    return rec, shot


def test_pot_shot_events(pot_shot):
    rec, shot = pot_shot
    truth = {e.kind: e for e in reversed(rec.events)}  # the first of each kind
    assert [e.b for e in rec.events if e.kind == "pot"] == ["top_right"], "the scripted shot must pot"
    assert shot.first_hit() == "red"
    pots = shot.pots()
    assert [(e.a, e.b) for e in pots] == [("red", "top_right")]
    assert abs(pots[0].t - truth["pot"].t) < 0.07
    strike = [e for e in shot.events if e.kind == "strike"]
    assert len(strike) == 1 and abs(strike[0].t - truth["strike"].t) < 0.02
    hit = [e for e in shot.events if e.kind == "ball_ball"][0]
    assert abs(hit.t - truth["ball_ball"].t) < 0.02
    # the potted ball is off the cloth from its pot on, and nowhere after
    red = shot.tracks["red"]
    assert red.pocket == "top_right" and not red.visible[red.t > pots[0].t + 0.05].any()


def test_pot_shot_positions(pot_shot, geometry):
    rec, shot = pot_shot
    for i, name in enumerate(rec.ball_names):
        track = shot.tracks[name]
        on_cloth = (np.abs(rec.ball_pos[:, i, 2] - rec.ball_pos[0, i, 2]) < 0.002) & ~rec.potted[:, i]
        assert track.visible[on_cloth].mean() > 0.95, name
        ok = on_cloth & track.visible
        err = np.linalg.norm(track.xy_mm[ok] - rec.ball_pos[ok, i, :2] * 1000.0, axis=1)
        # 320x240: a ball is ~6 pixels across, a pixel ~9 mm on the cloth
        assert np.median(err) < 3.0 and err.max() < 15.0, (name, np.median(err), err.max())


def test_full_resolution_positions_and_occlusion(geometry):
    """640x480: every ball within 2 mm; the cue laid over the red hides it, the tracker holds it
    where it was, and finds it again when the cue is gone."""
    w = _world(640, 480)
    try:
        K, pose = w.intrinsics()["overhead"], w.camera_poses()["overhead"]
        truth = w.ball_positions()[:, :2] * 1000.0
        red = w.ball_names.index("red")
        frames = [w.render()["overhead"]] * 2
        # the cue lying along x over the red, its thick butt end across the ball
        above = w.ball_positions()[red] + [1.1, 0.0, 0.045]  # the tip, 1.1 m beyond the red
        R = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # +z (to the butt) = -x
        w.set_cue(above, R)
        mujoco.mj_forward(w.model, w.data)
        frames += [w.render()["overhead"]] * 3
        w.park_cue()
        mujoco.mj_forward(w.model, w.data)
        frames += [w.render()["overhead"]]
    finally:
        w.close()
    tracker = BallTracker(K, pose, geometry, frames[0].shape[:2])
    for k, image in enumerate(frames):
        tracker.update(image, k / 30.0)
    tracks = tracker.tracks()
    for i, name in enumerate(w.ball_names):
        tr = tracks[name]
        if name != "red":
            assert tr.visible.all(), name
        err = np.linalg.norm(tr.xy_mm[tr.visible] - truth[i], axis=1)
        assert err.max() < 2.0, (name, err)
    red_track = tracks["red"]
    assert list(red_track.visible) == [True, True, False, False, False, True]
    held = red_track.xy_est_mm[2:5]
    assert np.linalg.norm(held - truth[red], axis=1).max() < 2.0
    assert red_track.potted_t is None


def test_camera_round_trip(geometry):
    K = np.array([[580.0, 0.0, 319.5], [0.0, 580.0, 239.5], [0.0, 0.0, 1.0]])
    tilt = np.deg2rad(25.0)
    R = np.array([[1.0, 0.0, 0.0], [0.0, -np.cos(tilt), np.sin(tilt)], [0.0, -np.sin(tilt), -np.cos(tilt)]])
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = R, [0.1, -1.2, 3.0]
    cam = TableCamera.build(K, pose, geometry)
    xy = np.array([[0.0, 0.0], [1200.0, -600.0], [-900.0, 400.0]])
    uv = cam.to_pixels(xy, geometry.ball_radius_mm)
    assert np.allclose(cam.to_table(uv, geometry.ball_radius_mm), xy, atol=1e-6)


def test_cue_colours_match_the_cue_model():
    from perception.pose.model import cue_model

    assert tuple(p.rgb for p in cue_model().parts) == CUE_COLOURS


def _track(name: str, t: np.ndarray, xy: np.ndarray) -> BallTrack:
    return BallTrack(name, t, xy, np.isfinite(xy).all(1), xy.copy())


def test_events_from_hand_made_tracks(geometry):
    """Cue ball rolls at 2 m/s into a resting red (hit at t = 0.5 s), stops; red runs to the
    right cushion and back."""
    R = geometry.ball_radius_mm
    t = np.arange(0, 1.6, 1 / 30.0)
    cue = np.where(t[:, None] < 0.2, [-600.0, 0.0], [-600.0, 0.0] + np.c_[(t - 0.2) * 2000.0, 0 * t])
    contact = -600.0 + 0.3 * 2000.0  # cue ball centre at the hit
    red0 = contact + 2 * R
    cue[t >= 0.5] = [contact, 0.0]
    wall = geometry.half_length_mm - R
    x = red0 + (t - 0.5) * 2000.0
    x = np.where(x > wall, 2 * wall - x, x)
    red = np.where(t[:, None] < 0.5, [red0, 0.0], np.c_[x, 0 * t])
    tracks = {"cue": _track("cue", t, cue), "red": _track("red", t, red)}
    events = infer_events(tracks, geometry)
    kinds = [(e.kind, e.a, e.b) for e in events]
    assert kinds == [("strike", "cue_stick", "cue"), ("ball_ball", "cue", "red"),
                     ("cushion", "red", "cushion_right")], kinds
    t_wall = 0.5 + (wall - red0) / 2000.0
    assert abs(events[0].t - 0.2) < 0.01
    assert abs(events[1].t - 0.5) < 0.01
    assert abs(events[2].t - t_wall) < 0.01
