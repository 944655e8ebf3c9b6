"""A differentiable silhouette and depth renderer for (tapered) cylinders, in torch.

Diff-DOPE renders a mesh with a differentiable rasteriser and compares it with the image; for a
cue the shape is a cone frustum, so each pixel can be rendered in closed form instead. For the ray
through a pixel we find the point of the axis closest to it (two-line closest points), the
distance ``dist`` between ray and axis there, and the radius ``r(s)`` at that point along the axis:

    silhouette = sigmoid((r(s) - dist) / sigma) * sigmoid((s - z0) / sigma) * sigmoid((z1 - s) / sigma)
    depth      = depth of the closest point - sqrt(r^2 - dist^2) / |ray x axis|  (front surface)

where ``sigma`` is ``sigma_px`` pixels expressed in metres at that depth, so edges are equally
soft everywhere in the image. Everything is smooth in the pose, so Adam can move the cue until
its render matches the segmentation and the depth image.

Only the pixels that matter are rendered (a band around the cue's projection), which is what
keeps refinement and tracking fast on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch


def pixel_rays(pixels: np.ndarray, K: np.ndarray) -> torch.Tensor:
    """``[N, 2]`` pixel centres (u, v) -> ray directions ``[N, 3]`` with z = 1 (so t == depth)."""
    uv1 = np.concatenate([pixels.astype(np.float64), np.ones((len(pixels), 1))], 1)
    return torch.from_numpy((uv1 @ np.linalg.inv(K).T).astype(np.float32))


def render_frustum(rays: torch.Tensor, tip: torch.Tensor, axis: torch.Tensor, z0: float, z1: float,
                   length: float, r_tip: float, r_butt: float, focal: float,
                   sigma_px: float = 0.7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft silhouette ``[N]``, front depth ``[N]`` and axis coordinate ``s`` ``[N]`` of the part
    ``z0..z1`` of a tapered cylinder with its tip at ``tip`` and unit ``axis`` (camera frame).

    ``tip`` and ``axis`` may also be ``[P, 3]``: P poses rendered at once, outputs ``[P, N]``
    (Gauss-Newton's finite-difference Jacobian is one such call).
    """
    single = axis.dim() == 1
    d = (axis / axis.norm(dim=-1, keepdim=True)).reshape(-1, 1, 3)
    A = tip.reshape(-1, 1, 3)
    a = (rays * rays).sum(-1)  # v.v
    b = (rays * d).sum(-1)  # v.d
    vA = (rays * A).sum(-1)  # v.A
    dA = (A * d).sum(-1)  # d.A
    denom = (a - b * b).clamp(min=1e-9)
    lam = (vA - b * dA) / denom  # depth of the ray's point closest to the axis line
    s = lam * b - dA  # position of the axis point closest to the ray
    closest = lam[..., None] * rays - (A + s[..., None] * d)
    dist = closest.norm(dim=-1)
    r = r_tip + (r_butt - r_tip) * (s / length).clamp(0.0, 1.0)
    sigma = sigma_px * lam.clamp(min=1e-3) / focal  # one pixel, in metres, at this depth
    inside = torch.sigmoid((r - dist) / sigma)
    ends = torch.sigmoid((s - z0) / sigma) * torch.sigmoid((z1 - s) / sigma)
    sil = inside * ends
    half_chord = torch.sqrt((r * r - dist * dist).clamp(min=0.0) + 1e-12) / denom.sqrt()
    depth = lam - half_chord
    if single:
        return sil[0], depth[0], s[0]
    return sil, depth, s


def render_cue_image(T: np.ndarray, K: np.ndarray, size: tuple[int, int], model,
                     sigma_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Whole-image silhouette and depth (0 where empty) of the cue at pose ``T`` (for tests,
    overlays and synthetic data)."""
    H, W = size
    vv, uu = np.mgrid[0:H, 0:W]
    pixels = np.stack([uu.ravel() + 0.5, vv.ravel() + 0.5], 1) - 0.5
    rays = pixel_rays(pixels, K)
    L, r0, r1 = model.dims
    with torch.no_grad():
        sil, depth, _ = render_frustum(rays, torch.tensor(T[:3, 3], dtype=torch.float32),
                                       torch.tensor(T[:3, 2], dtype=torch.float32),
                                       0.0, L, L, r0, r1, float(K[0, 0]), sigma_px)
    sil = sil.numpy().reshape(H, W)
    depth = np.where(sil > 0.5, depth.numpy().reshape(H, W), 0.0)
    return sil, depth
