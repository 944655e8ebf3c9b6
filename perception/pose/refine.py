"""Render-and-compare refinement of the cue's 5-DoF pose (Diff-DOPE style, on a CPU).

The parameters are the tip position (3) and the axis direction (3, normalised when used): the
roll about the axis is left out because nothing in an image of a solid of revolution can fix it.
Each Adam step renders the shaft's silhouette (and depth) over a band of pixels around it and
compares with the segmentation mask (and the depth image):

    loss = sum (silhouette - mask)^2 / |mask|  +  w_depth * mean huber(depth_r - depth_o)

Edges start soft (``sigma_start`` pixels) and sharpen to ``sigma_end``, so a pose a few pixels off
still feels a gradient and the final one is pixel-accurate.

Two optimisers over the same renderer and loss: ``adam`` (autograd through the renderer, dozens of
small steps: robust from a rough start) and ``gauss_newton`` (Levenberg-Marquardt on the
residuals, the Jacobian from one batched render of the pose and its five perturbations: a handful
of iterations converge from a nearby pose, several times faster, which is what tracking needs).

With depth, pixels where something stands in front of the rendered cue (an arm, a hand) are left
out of the silhouette term: the mask is missing there because the cue is hidden, not because it
is elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from perception.pose.render import pixel_rays, render_frustum


@dataclass
class RefineConfig:
    iters: int = 40  # a few dozen Adam steps from a geometric initial pose
    lr_tip: float = 2e-3  # m per step at the start; cosine-decayed to 5% (Adam steps ~ lr)
    lr_axis: float = 4e-3  # rad-ish per step for the unnormalised axis vector
    sigma_start: float = 2.0  # px: soft edges first, so a few pixels of error still pull
    sigma_end: float = 0.5  # px: sharp at the end
    band_px: float = 10.0  # px each side of the cue's projection that are rendered
    max_pixels: int = 20000  # cap on rendered pixels (speed); the band is subsampled beyond it
    w_depth: float = 1.0  # weight of the depth term against the silhouette term
    depth_delta: float = 0.01  # m: Huber transition; depth noise and edge pixels stay bounded
    occluder_margin: float = 0.01  # m in front of the rendered cue = something occludes it
    method: str = "adam"  # adam | gauss_newton (see the module docstring)
    threads: int = 1  # torch threads: a few thousand pixels are too few to share; on a busy
    # machine, threads waiting for each other at every tiny op cost 10x (measured)


def _project(K: np.ndarray, P: np.ndarray) -> np.ndarray:
    q = P @ K.T
    return q[:, :2] / q[:, 2:3]


def band_pixels(K: np.ndarray, tip: np.ndarray, axis: np.ndarray, z0: float, z1: float,
                size: tuple[int, int], band_px: float, max_pixels: int) -> np.ndarray:
    """Integer pixels ``[N, 2]`` (u, v) within ``band_px`` of the projected segment z0..z1."""
    H, W = size
    a = tip + z0 * axis
    b = tip + z1 * axis
    if a[2] <= 1e-3 or b[2] <= 1e-3:
        return np.zeros((0, 2), np.int64)
    pa, pb = _project(K, np.stack([a, b]))
    length = float(np.linalg.norm(pb - pa))
    n_along = max(int(length) + 2 * int(band_px), 2)
    d = (pb - pa) / max(length, 1e-6)
    n = np.array([-d[1], d[0]])
    t = np.linspace(-band_px, length + band_px, n_along)
    o = np.arange(-band_px, band_px + 1)
    stride = max(1, int(np.ceil(len(t) * len(o) / max_pixels)))
    t = t[::stride]
    pts = pa + t[:, None, None] * d + o[None, :, None] * n
    pts = np.rint(pts.reshape(-1, 2)).astype(np.int64)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < W) & (pts[:, 1] >= 0) & (pts[:, 1] < H)
    lin = np.unique(pts[ok, 1] * W + pts[ok, 0])
    return np.stack([lin % W, lin // W], 1)


@dataclass
class RefineResult:
    tip: np.ndarray
    axis: np.ndarray
    loss: float
    iou: float  # silhouette IoU over the band at the final pose: a cheap health check


def refine_cue(tip: np.ndarray, axis: np.ndarray, mask: np.ndarray, K: np.ndarray, model,
               depth: np.ndarray | None = None, cfg: RefineConfig | None = None,
               part_name: str = "shaft", alpha: np.ndarray | None = None) -> RefineResult:
    """Refine (tip, axis) so the rendered part ``part_name`` matches ``mask`` (and ``depth``).

    ``alpha`` (sub-pixel coverage, :func:`perception.pose.segment.coverage`) replaces the hard
    mask as the silhouette target when given: a thin cue is only a few pixels wide, and its
    anti-aliased edge pixels hold half of what there is to know about where it is.
    """
    cfg = cfg or RefineConfig()
    saved = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _refine(tip, axis, mask, K, model, depth, cfg, part_name, alpha)
    finally:
        torch.set_num_threads(saved)


@dataclass
class _Problem:
    """What both optimisers need: the rendered pixels, their targets and weights."""

    part: object
    rays: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    n_mask: torch.Tensor
    d_obs: torch.Tensor | None
    depth_sel: torch.Tensor | None
    focal: float
    dims: tuple[float, float, float]

    def render(self, tip: torch.Tensor, axis: torch.Tensor, sigma: float):
        L, r0, r1 = self.dims
        return render_frustum(self.rays, tip, axis, self.part.z0, self.part.z1, L, r0, r1,
                              self.focal, sigma)

    def iou(self, tip: torch.Tensor, axis: torch.Tensor, sigma: float) -> float:
        with torch.no_grad():
            sil, _, _ = self.render(tip, axis, sigma)
        pred, tgt = sil > 0.5, self.target > 0.5
        return float((pred & tgt).sum()) / max(float((pred | tgt).sum()), 1.0)


def _setup(tip, axis, mask, K, model, depth, cfg, part_name, alpha) -> _Problem | None:
    part = next(p for p in model.parts if p.name == part_name)
    L, r0, r1 = model.dims
    H, W = mask.shape
    pix = band_pixels(K, np.asarray(tip, float), axis, part.z0, part.z1, (H, W), cfg.band_px,
                      cfg.max_pixels)
    if len(pix) == 0:
        return None
    rays = pixel_rays(pix, K)
    hard = torch.from_numpy(mask[pix[:, 1], pix[:, 0]].astype(np.float32))
    target = hard if alpha is None else torch.from_numpy(alpha[pix[:, 1], pix[:, 0]]
                                                          .astype(np.float32))
    prob = _Problem(part, rays, target, torch.ones(len(pix), dtype=torch.float32),
                    target.sum().clamp(min=1.0), None, None, float(K[0, 0]), (L, r0, r1))
    if depth is not None:
        d_np = depth[pix[:, 1], pix[:, 0]].astype(np.float32)
        d_valid = torch.from_numpy(np.isfinite(d_np) & (d_np > 0))
        prob.d_obs = torch.from_numpy(np.nan_to_num(d_np, nan=0.0, posinf=0.0))
        with torch.no_grad():
            sil0, dep0, _ = prob.render(torch.tensor(tip, dtype=torch.float32),
                                        torch.tensor(axis, dtype=torch.float32), cfg.sigma_start)
        occluded = d_valid & (target < 0.05) & (sil0 > 0.2) & (prob.d_obs < dep0 - cfg.occluder_margin)
        prob.weight = prob.weight * (~occluded).float()
        prob.depth_sel = d_valid & (hard > 0.5)
        if not bool(prob.depth_sel.any()):
            prob.d_obs = prob.depth_sel = None
    return prob


def _refine(tip, axis, mask, K, model, depth, cfg, part_name, alpha) -> RefineResult:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    prob = _setup(tip, axis, mask, K, model, depth, cfg, part_name, alpha)
    if prob is None:
        return RefineResult(np.asarray(tip, float), axis, float("inf"), 0.0)
    if cfg.method == "gauss_newton":
        return _gauss_newton(np.asarray(tip, float), axis, prob, cfg)
    if cfg.method != "adam":
        raise ValueError(f"unknown refinement method {cfg.method!r}; valid: adam, gauss_newton")
    return _adam(tip, axis, prob, cfg)


def _sigma(cfg: RefineConfig, i: int) -> float:
    frac = i / max(cfg.iters - 1, 1)
    return cfg.sigma_end + (cfg.sigma_start - cfg.sigma_end) * 0.5 * (1 + np.cos(np.pi * frac))


def _adam(tip, axis, prob: _Problem, cfg: RefineConfig) -> RefineResult:
    # The tip moves freely (t) and, separately, along the axis (slide): Adam scales each
    # parameter's step by its own gradient history, and the along-axis gradient (from the few
    # pixels at the shaft's ends) is far weaker than the sideways one (from all of its edges).
    t = torch.tensor(np.asarray(tip, np.float32), requires_grad=True)
    slide = torch.zeros(1, requires_grad=True)
    u = torch.tensor(axis.astype(np.float32), requires_grad=True)
    opt = torch.optim.Adam([{"params": [t, slide], "lr": cfg.lr_tip},
                            {"params": [u], "lr": cfg.lr_axis}])
    base = [cfg.lr_tip, cfg.lr_axis]
    loss_v = float("inf")
    for i in range(cfg.iters):
        frac = i / max(cfg.iters - 1, 1)
        cos = 0.5 * (1 + np.cos(np.pi * frac))
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * (0.05 + 0.95 * cos)
        tip_now = t + slide * u / u.norm()
        sil, dep, _ = prob.render(tip_now, u, _sigma(cfg, i))
        loss = (prob.weight * (sil - prob.target) ** 2).sum() / prob.n_mask
        if prob.d_obs is not None:
            res = (dep - prob.d_obs)[prob.depth_sel]
            loss = loss + cfg.w_depth * torch.nn.functional.huber_loss(
                res / cfg.depth_delta, torch.zeros_like(res), delta=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_v = float(loss.detach())
    with torch.no_grad():
        tip_now = t + slide * u / u.norm()
    iou = prob.iou(tip_now, u.detach(), cfg.sigma_end)
    ax = u.detach().numpy()
    return RefineResult(tip_now.numpy().astype(float), ax.astype(float) / np.linalg.norm(ax),
                        loss_v, iou)


# Finite-difference steps of the five pose parameters: tip (m) and two axis tilts (rad).
_FD_STEPS = np.array([2e-4, 2e-4, 2e-4, 5e-4, 5e-4])


def _tangent_basis(axis: np.ndarray) -> np.ndarray:
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(axis, e1)])


def _poses(tip: np.ndarray, axis: np.ndarray, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``deltas`` [P, 5] (tip shift, two tilts about ``axis``) -> tips, unit axes [P, 3]."""
    e = _tangent_basis(axis)
    axes = axis[None] + deltas[:, 3:5] @ e
    return tip[None] + deltas[:, :3], axes / np.linalg.norm(axes, axis=1, keepdims=True)


def _residuals(prob: _Problem, cfg: RefineConfig, sil: torch.Tensor, dep: torch.Tensor,
               irls: torch.Tensor | None) -> torch.Tensor:
    """Residual vectors [P, M] whose squared sum is the loss (depth Huber via IRLS weights)."""
    parts = [(prob.weight.sqrt() * (sil - prob.target)) / prob.n_mask.sqrt()]
    if prob.d_obs is not None and irls is not None:
        e = (dep[:, prob.depth_sel] - prob.d_obs[prob.depth_sel]) / cfg.depth_delta
        m = float(prob.depth_sel.sum())
        parts.append(e * (irls * cfg.w_depth / (2 * m)).sqrt())
    return torch.cat(parts, dim=1)


def _gauss_newton(tip: np.ndarray, axis: np.ndarray, prob: _Problem, cfg: RefineConfig) -> RefineResult:
    """Levenberg-Marquardt over (tip, two axis tilts), re-linearised about the axis every step."""
    lam = 1e-3
    cost = float("inf")
    for i in range(cfg.iters):
        sigma = _sigma(cfg, i)
        deltas = np.vstack([np.zeros(5), np.diag(_FD_STEPS)])
        tips, axes = _poses(tip, axis, deltas)
        with torch.no_grad():
            sil, dep, _ = prob.render(torch.from_numpy(tips).float(), torch.from_numpy(axes).float(), sigma)
            irls = None
            if prob.d_obs is not None:
                e0 = (dep[0, prob.depth_sel] - prob.d_obs[prob.depth_sel]).abs() / cfg.depth_delta
                irls = 1.0 / e0.clamp(min=1.0)  # Huber's weights at the current pose
            r = _residuals(prob, cfg, sil, dep, irls).double().numpy()
        r0 = r[0]
        J = ((r[1:] - r0) / _FD_STEPS[:, None]).T  # [M, 5]
        JtJ, Jtr = J.T @ J, J.T @ r0
        cost = float(r0 @ r0)
        for _ in range(4):  # damping: grow it until the step lowers the cost
            step = np.linalg.solve(JtJ + lam * (np.diag(np.diag(JtJ)) + 1e-12 * np.eye(5)), -Jtr)
            t_new, a_new = _poses(tip, axis, step[None])
            with torch.no_grad():
                s1, d1, _ = prob.render(torch.from_numpy(t_new).float(), torch.from_numpy(a_new).float(), sigma)
                r1 = _residuals(prob, cfg, s1, d1, irls).double().numpy()[0]
            new_cost = float(r1 @ r1)
            if new_cost < cost:
                tip, axis, cost, lam = t_new[0], a_new[0], new_cost, max(lam / 3, 1e-6)
                break
            lam *= 10
    iou = prob.iou(torch.from_numpy(tip).float(), torch.from_numpy(axis).float(), cfg.sigma_end)
    return RefineResult(tip.astype(float), axis.astype(float), cost, iou)
