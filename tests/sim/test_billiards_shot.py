"""Recorded shots: an aimed pot, cue ground truth that lands on the cue's pixels, depth, save/load."""

import numpy as np
import pytest

from sim.billiards import cue as cue_geom
from sim.billiards.player import ScriptedPlayer
from sim.billiards.shot import load_shot, record_shot, save_shot, simulate_shot
from sim.billiards.stroke import ADDRESS
from sim.billiards.world import BilliardsWorld
from sim.errors import SimError


def test_scripted_aimed_pot_pots_the_intended_ball():
    world = BilliardsWorld(cameras=())
    rng = np.random.default_rng(0)
    world.reset(rng, "scatter")
    aim, power, target = ScriptedPlayer(rng, aim_noise_deg=0.0, power_noise=0.0).plan(world.state())
    assert target == "green"
    rec = simulate_shot(world, aim, power, record=False, target=target)
    assert rec.events[0].kind == "strike"
    assert [e.t for e in rec.events] == sorted(e.t for e in rec.events)
    pots = [(e.a, e.b) for e in rec.events if e.kind == "pot"]
    assert pots == [("green", "bottom_right")]
    first_contact = next(e for e in rec.events if e.kind == "ball_ball")
    assert (first_contact.a, first_contact.b) == ("cue", "green")
    # Ground truth agrees with the event: green is below the cloth and flagged from then on.
    g = rec.ball_names.index("green")
    t_pot = next(e.t for e in rec.events if e.kind == "pot")
    assert not rec.potted[rec.times < t_pot - 0.05, g].any()
    assert rec.potted[-1, g]


@pytest.fixture(scope="module")
def recorded():
    """A short rendered shot (address, backswing and the strike) at 320x240, plus a cue-free view."""
    world = BilliardsWorld(width=320, height=240)
    world.reset(np.random.default_rng(1), "scatter")
    background = world.render()  # cue parked off the table, balls where the shot starts
    rec = simulate_shot(world, aim=0.4, power=0.5, max_time=1.2)
    world.close()
    return rec, background


def _project(K, cam_to_world, points):
    world_to_cam = np.linalg.inv(cam_to_world)
    p = (world_to_cam[:3, :3] @ points.T).T + world_to_cam[:3, 3]
    assert np.all(p[:, 2] > 0), "points must be in front of the camera"
    uv = (K @ p.T).T
    return uv[:, :2] / uv[:, 2:3]


@pytest.mark.parametrize("camera", ["overhead", "player"])
def test_cue_pose_projects_onto_cue_pixels(recorded, camera):
    rec, background = recorded
    k = int(0.5 * ADDRESS * rec.fps)  # while addressing the ball: the cue is still
    image = rec.frames[camera][k].astype(int)
    changed = np.abs(image - background[camera].astype(int)).sum(axis=2) > 40  # where the cue is
    H, W = changed.shape

    def hits(pose):
        pts = cue_geom.axis_points(pose, 60)[5:40]  # the shaft near the tip, over the table
        uv = np.round(_project(rec.K[camera], rec.camera_pose[camera], pts)).astype(int)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        assert inside.sum() >= 10
        return changed[uv[inside, 1], uv[inside, 0]].mean()

    pose = rec.cue_pose[k]
    assert hits(pose) > 0.85
    # A pose moved sideways by 6 cm misses the cue: the check can fail.
    shifted = pose.copy()
    shifted[:3, 3] += 0.06 * pose[:3, 0]
    assert hits(shifted) < 0.3


def test_cue_frame_and_strike_timing(recorded):
    rec, _ = recorded
    cue = rec.ball_names.index("cue")
    tip, axis = rec.cue_pose[0][:3, 3], rec.cue_pose[0][:3, 2]
    to_ball = rec.ball_pos[0, cue] - tip
    # The tip is just behind the cue ball and +z points away from it (toward the butt).
    assert 0.05 < np.linalg.norm(to_ball) < 0.1
    assert axis @ to_ball < -0.9 * np.linalg.norm(to_ball)
    assert np.allclose(rec.cue_pose[:, :3, :3].transpose(0, 2, 1) @ rec.cue_pose[:, :3, :3], np.eye(3), atol=1e-6)
    strike = rec.events[0]
    assert strike.kind == "strike" and ADDRESS < strike.t < 1.2
    # The cue ball starts moving at the strike, not before; velocities match the positions.
    speed = np.linalg.norm(rec.ball_vel[:, cue], axis=1)
    assert np.all(speed[rec.times < strike.t - 0.01] < 1e-3)
    assert speed[-1] > 1.0
    step = np.linalg.norm(rec.ball_pos[-1, cue] - rec.ball_pos[-2, cue]) / (rec.times[-1] - rec.times[-2])
    assert abs(step - speed[-1]) < 0.1 * speed[-1]


def test_save_load_round_trip(recorded, tmp_path):
    rec, _ = recorded
    save_shot(rec, tmp_path / "shot")
    assert sorted(p.name for p in (tmp_path / "shot").iterdir()) == [
        "ground_truth.json", "ground_truth.npz", "overhead.mp4", "player.mp4"]
    back = load_shot(tmp_path / "shot")
    assert back.ball_names == rec.ball_names and back.fps == rec.fps
    assert [e.to_dict() for e in back.events] == [e.to_dict() for e in rec.events]
    for name in ("times", "cue_pose", "ball_pos", "ball_vel", "potted"):
        assert np.array_equal(getattr(back, name), getattr(rec, name)), name
    for cam in rec.frames:
        assert np.allclose(back.K[cam], rec.K[cam]) and np.allclose(back.camera_pose[cam], rec.camera_pose[cam])
        assert back.frames[cam].shape == rec.frames[cam].shape
        err = np.abs(back.frames[cam].astype(int) - rec.frames[cam].astype(int)).mean()
        assert err < 6.0  # lossy video, but the same pictures
    with pytest.raises(SimError):
        load_shot(tmp_path / "nothing")


def test_depth_frames_measure_the_distance_to_the_cloth():
    world = BilliardsWorld(cameras=("overhead",), width=64, height=48, depth=True)
    world.reset(np.random.default_rng(0))
    rec = simulate_shot(world, aim=0.0, power=0.3, max_time=0.1)
    world.close()
    depth = rec.depth["overhead"]
    assert depth.shape == (len(rec.times), 48, 64) and depth.dtype == np.float32
    # Overhead camera is 2.75 m above the cloth; the picture's centre sees cloth (or a ball).
    centre = depth[0, 20:28, 28:36]
    assert np.all((centre > 2.65) & (centre < 2.76))


def test_record_shot_streams_videos_and_ground_truth(tmp_path):
    world = BilliardsWorld(width=64, height=48, depth=True, shadows=False)
    world.reset(np.random.default_rng(2))
    rec = record_shot(world, 0.0, 0.5, tmp_path / "s", max_time=0.3)
    world.close()
    assert rec.frames == {} and rec.depth["player"].shape == (len(rec.times), 48, 64)
    back = load_shot(tmp_path / "s")
    assert set(back.frames) == {"overhead", "player"}
    assert back.frames["overhead"].shape == (len(rec.times), 48, 64, 3)
    assert np.array_equal(back.depth["overhead"], rec.depth["overhead"])
    assert np.array_equal(back.cue_pose, rec.cue_pose)
