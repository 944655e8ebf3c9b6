"""Cameras: upright images, intrinsics that project world points to where the renderer draws them."""

import mujoco
import numpy as np

from sim.render import Cameras, world_to_camera

XML = """
<mujoco>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="2 2 .1" rgba=".2 .2 .2 1"/>
    <body pos="0.15 0 0.05"><geom type="sphere" size="0.03" rgba="1 0 0 1"/></body>
    <body pos="0 0 0.6"><geom type="sphere" size="0.03" rgba="0 0 1 1"/></body>
    <camera name="side" pos="0 -1.5 0.3" xyaxes="1 0 0 0 0 1" fovy="45"/>
  </worldbody>
</mujoco>
"""


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_images_are_upright_and_project_correctly():
    model = mujoco.MjModel.from_xml_string(XML)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    cams = Cameras(model, ("side",), width=160, height=120, depth=True)
    out = cams.render(data)
    img = out["side"]
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    red = (img[..., 0] > 150) & (img[..., 1] < 80) & (img[..., 2] < 80)
    blue = (img[..., 2] > 150) & (img[..., 0] < 80) & (img[..., 1] < 80)
    # The blue ball is higher in the world, so it must be nearer the top row of the image.
    assert _centroid(blue)[1] < _centroid(red)[1]
    # Project the red ball's centre with K and the world->camera transform.
    T = world_to_camera(model, data, "side")
    p = T[:3, :3] @ np.array([0.15, 0.0, 0.05]) + T[:3, 3]
    uv = (cams.K("side") @ p)[:2] / p[2]
    assert np.linalg.norm(uv - _centroid(red)) < 2.0
    depth = out["side_depth"]
    assert depth.shape == (120, 160) and depth.dtype == np.float32
    u, v = np.round(_centroid(red)).astype(int)
    assert abs(depth[v, u] - (p[2] - 0.03)) < 0.01  # front surface of the ball
    cams.close()
