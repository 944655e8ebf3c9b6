"""The tabletop scene perceiver on scenes built by hand in the simulator's renderer.

The scenes are placed directly (object poses written into the model, as ``TabletopEnv.reset``
does), rendered by ``sim.render.Cameras`` and handed to the perceiver with the cameras'
intrinsics and extrinsics only: it is never told what is on the table.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from perception.scene import NOTHING_HERE, OK, CameraView, ScenePerceiver
from perception.scene.colors import color_table
from perception.scene.palette import Palette
from sim import render
from sim.tabletop import scene as sc
from sim.tabletop import tasks
from sim.tabletop.env import TabletopEnv
from sim.tabletop.experts import make_expert

SIZE = 128


@pytest.fixture(scope="module")
def env():
    e = TabletopEnv("pick_up", cameras=(), image_size=(SIZE, SIZE))
    e.cams = render.Cameras(e.model, ("agentview", "wrist"), SIZE, SIZE, depth=True)
    yield e
    e.cams.close()
    e.close()


def _clear(env) -> None:
    """Every object parked under the table (out of view), the arm at home."""
    env.reset(seed=0)
    for name in env.ids.object_names:
        _place(env, name, None)


def _place(env, slot: str, xy, yaw: float = 0.0, color: str = "red") -> None:
    i = env.ids.object_names.index(slot)
    adr, geom = env.ids.object_qpos[i], env.ids.object_geoms[i]
    shape = "cube" if slot.startswith("cube") else "cylinder"
    pos = sc.parked_pos(slot) if xy is None else np.array([xy[0], xy[1], sc.half_height(shape)])
    env.data.qpos[adr:adr + 3] = pos
    env.data.qpos[adr + 3:adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
    env.model.geom_rgba[geom] = (*tasks.COLORS[color], 1.0)
    mujoco.mj_forward(env.model, env.data)


def _views(env, stamp: float = 0.0, cameras=("agentview", "wrist")) -> list[CameraView]:
    obs = env.cams.render(env.data)
    return [CameraView(c, obs[c], obs[c + "_depth"], env.camera_intrinsics(c), env.camera_pose(c),
                       stamp) for c in cameras]


def _pos(env, slot: str) -> np.ndarray:
    return env.object_pos(slot)


def _visible_pixels(env, slot: str, camera: str = "agentview") -> int:
    r = mujoco.Renderer(env.model, SIZE, SIZE)
    r.enable_segmentation_rendering()
    r.update_scene(env.data, camera=camera)
    seg = r.render()[..., 0]
    r.close()
    return int((seg == env.ids.object_geoms[env.ids.object_names.index(slot)]).sum())


def _by_description(percept) -> dict:
    return {o.description: o for o in percept.objects}


def test_two_touching_objects_of_different_colours_are_two_objects(env):
    _clear(env)
    _place(env, "cube0", (0.5, 0.0), yaw=0.3, color="red")
    _place(env, "cylinder0", (0.5, 0.0405), color="blue")  # sides touch: 2 cm + 2 cm apart
    p = ScenePerceiver().perceive(_views(env))
    assert p.status == OK
    found = _by_description(p)
    assert set(found) == {"red cube", "blue cylinder"}
    assert np.linalg.norm(np.subtract(found["red cube"].position, _pos(env, "cube0"))) < 0.01
    assert np.linalg.norm(np.subtract(found["blue cylinder"].position, _pos(env, "cylinder0"))) < 0.01
    assert abs(found["red cube"].yaw - 0.3) < np.radians(5)
    assert found["blue cylinder"].yaw is None
    assert found["red cube"].color_confidence > 0.5


def test_two_touching_objects_of_one_colour_are_split_by_geometry(env):
    _clear(env)
    _place(env, "cube0", (0.5, -0.1), color="green")
    _place(env, "cylinder0", (0.5, -0.0595), color="green")
    p = ScenePerceiver().perceive(_views(env))
    found = _by_description(p)
    assert set(found) == {"green cube", "green cylinder"}
    assert np.linalg.norm(np.subtract(found["green cube"].position, _pos(env, "cube0"))) < 0.012
    assert np.linalg.norm(np.subtract(found["green cylinder"].position, _pos(env, "cylinder0"))) < 0.012


def test_sizes_and_receptacle(env):
    env.reset(seed=3)  # put_in-like scenes have a receptacle; place one by hand
    _clear(env)
    _place(env, "cylinder1", (0.45, 0.15), color="orange")
    env.data.mocap_pos[env.ids.receptacle_mocap["plate"]] = (0.55, -0.15, 0.0)
    mujoco.mj_forward(env.model, env.data)
    p = ScenePerceiver().perceive(_views(env))
    (obj,) = p.objects
    assert obj.description == "orange cylinder"
    assert abs(obj.size[2] - 2 * sc.CYL_HALF_HEIGHT) < 0.006
    assert [r.kind for r in p.receptacles] == ["plate"]
    assert np.linalg.norm(np.subtract(p.receptacles[0].position[:2], (0.55, -0.15))) < 0.01
    env.data.mocap_pos[env.ids.receptacle_mocap["plate"]] = sc.receptacle_parked_pos("plate")


def test_object_half_hidden_by_the_gripper(env):
    """Run the PickUp expert until the fingers close around the target: from the agent view a
    good part of the object is behind the fingers, and it is still found where it is."""
    env.reset(seed=1)
    expert = make_expert(env, seed=1)
    expert.reset()
    target = env.episode.target
    full = _visible_pixels(env, target.slot)
    hidden = 0.0
    for _ in range(40):
        env.step(expert.act())
        hidden = 1.0 - _visible_pixels(env, target.slot) / full
        if expert.phases[expert.index].name == "close" and hidden > 0.5:
            break
    assert hidden > 0.5, hidden  # really occluded: over half of it behind the fingers
    # the agent view alone sees a third of the top face (its centre is off by < 2 cm); with the
    # wrist camera, which looks between the fingers, the fused position is within 1 cm
    for cameras, tol in ((("agentview",), 0.02), (("agentview", "wrist"), 0.01)):
        p = ScenePerceiver().perceive(_views(env, cameras=cameras))
        match = [o for o in p.objects if o.description == target.description]
        assert len(match) == 1
        assert np.linalg.norm(np.subtract(match[0].position, _pos(env, target.slot))) < tol
    # the arm itself (white and grey, dark fingers) is never an object
    assert len(p.objects) == len(env.episode.objects)


def test_empty_table_is_ok_and_empty(env):
    _clear(env)
    p = ScenePerceiver().perceive(_views(env))
    assert p.status == OK and p.objects == () and p.receptacles == ()


def test_identity_kept_while_an_object_is_carried(env):
    env.reset(seed=5)
    expert = make_expert(env, seed=5)
    expert.reset()
    target = env.episode.target
    perceiver = ScenePerceiver()
    ids, heights = set(), []
    for step in range(40):  # past success (lifted 5 cm) the expert keeps lifting to 20 cm
        p = perceiver.perceive(_views(env, stamp=step / 10))
        truth = _pos(env, target.slot)
        match = [o for o in p.objects if o.color == target.color and
                 np.linalg.norm(np.subtract(o.position, truth)) < 0.03]
        assert len(match) == 1, (step, p.objects)
        ids.add(match[0].id)
        heights.append(truth[2])
        if truth[2] > 0.1:
            assert match[0].shape == target.shape and match[0].visible
        env.step(expert.act())
    assert max(heights) > 0.15, "the expert did not carry the target up"
    assert len(ids) == 1


def test_nothing_here_without_usable_depth_or_extrinsics(env):
    _clear(env)
    _place(env, "cube0", (0.5, 0.0), color="red")
    (v,) = _views(env, cameras=("agentview",))
    perceiver = ScenePerceiver()
    assert len(perceiver.perceive([v]).objects) == 1
    cases = {
        "no depth": CameraView(v.name, v.image, None, v.K, v.T_base_cam, 1.0),
        "depth mostly invalid": CameraView(v.name, v.image, np.full_like(v.depth, np.nan), v.K,
                                           v.T_base_cam, 1.0),
        "does not match": CameraView(v.name, v.image, v.depth[:64], v.K, v.T_base_cam, 1.0),
        "extrinsics unknown": CameraView(v.name, v.image, v.depth, v.K, None, 1.0),
    }
    for why, view in cases.items():
        p = perceiver.perceive([view])
        assert p.status == NOTHING_HERE and p.objects == () and not p.ok
        assert why in p.reason, p.reason
    # a camera turned away from the table (the extrinsics say it looks at the sky)
    up = v.T_base_cam.copy()
    up[:3, :3] = up[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    p = perceiver.perceive([CameraView(v.name, v.image, v.depth, v.K, up, 2.0)])
    assert p.status == NOTHING_HERE and "table not in view" in p.reason
    assert perceiver.perceive([]).status == NOTHING_HERE
    # a stale view beside a fresh one is not used
    fresh = CameraView(v.name, v.image, v.depth, v.K, v.T_base_cam, 3.0)
    p = perceiver.perceive([CameraView("wrist", v.image, v.depth, v.K, v.T_base_cam, 2.5), fresh])
    assert dict(p.views)["wrist"].startswith("stale")


def test_colour_table_reads_over_exposure_and_refuses_white():
    p = Palette()
    table = color_table(p.objects, p.background)
    pixels = np.array([[[255, 131, 255], [197, 55, 255], [90, 25, 123], [255, 255, 255],
                        [230, 230, 235], [120, 110, 95], [220, 30, 30]]], np.uint8)
    cls, conf = table.classify(pixels)
    names = [table.names[c] if c < len(table.names) else None for c in cls[0]]
    assert names[:3] == ["purple"] * 3  # over-exposed purple with a highlight is not pink
    assert names[3] not in p.objects  # saturated white: no object colour
    assert names[4] in ("arm", "hand") and names[5] == "table" and names[6] == "red"
    assert conf[0, 6] > 0.8


def test_the_perceivers_palette_and_sizes_match_the_simulators():
    """perception may not import sim (layering), so its palette is a copy; this keeps it true."""
    from perception.scene.palette import OBJECT_COLORS, SHAPE_SIZES
    from sim.tabletop import scene
    from sim.tabletop.tasks import COLORS

    assert OBJECT_COLORS == COLORS
    assert set(SHAPE_SIZES) == set(scene.SHAPES)
    assert SHAPE_SIZES["cube"].width == SHAPE_SIZES["cube"].height == 2 * scene.CUBE_HALF
    assert (SHAPE_SIZES["cylinder"].width, SHAPE_SIZES["cylinder"].height) == \
        (2 * scene.CYL_RADIUS, 2 * scene.CYL_HALF_HEIGHT)
