"""Known rigid objects as primitives: the cue (a tapered cylinder), boxes, cylinders, spheres.

Object frames follow the simulator's: a cue's origin is the centre of its tip face and +z runs
along the axis to the butt; a box or cylinder is centred at its origin with its axis along z.
The model gives what metrics and estimators need: surface points, the diameter, the symmetries
(the cue is a solid of revolution, so any roll about z is the same pose), and for the cue the
coloured parts that segmentation looks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The cue's published geometry (a standard 58-inch cue), kept in step with the simulator's
# sim/billiards/cue.py by a test; perception imports nothing from sim.
CUE_LENGTH = 1.45  # m
CUE_TIP_RADIUS = 0.0065  # m
CUE_BUTT_RADIUS = 0.0145  # m


@dataclass(frozen=True)
class Part:
    """A stretch of a tapered cylinder ``z0..z1`` with one colour (RGB in [0, 1])."""

    name: str
    z0: float
    z1: float
    rgb: tuple[float, float, float]


@dataclass(frozen=True)
class RigidObjectModel:
    """A primitive solid. ``dims``: tapered_cylinder (length, r_tip, r_butt); cylinder (radius,
    half_height); box (half x, half y, half z); sphere (radius,)."""

    name: str
    kind: str
    dims: tuple[float, ...]
    parts: tuple[Part, ...] = field(default=())
    rgb: tuple[float, float, float] | None = None  # uniform colour (tabletop objects)

    # ------------------------------------------------------------------ geometry
    @property
    def axisymmetric(self) -> bool:
        return self.kind in ("tapered_cylinder", "cylinder", "sphere")

    def radius_at(self, z: np.ndarray | float) -> np.ndarray | float:
        """Radius of a (tapered) cylinder at height ``z`` along its axis."""
        if self.kind == "tapered_cylinder":
            L, r0, r1 = self.dims
            return r0 + (r1 - r0) * np.clip(np.asarray(z, float) / L, 0.0, 1.0)
        if self.kind == "cylinder":
            return self.dims[0] + 0.0 * np.asarray(z, float)
        raise ValueError(f"{self.kind} has no axis radius")

    @property
    def diameter(self) -> float:
        """Largest distance between two points of the object (BOP's thresholds scale with it)."""
        if self.kind == "tapered_cylinder":
            L, r0, r1 = self.dims
            return float(np.hypot(L, r0 + r1))
        if self.kind == "cylinder":
            r, hh = self.dims
            return float(np.hypot(2 * r, 2 * hh))
        if self.kind == "box":
            return float(2 * np.linalg.norm(self.dims))
        return float(2 * self.dims[0])

    def sample_surface(self, n: int = 1000, seed: int = 0) -> np.ndarray:
        """``[n, 3]`` points spread over the surface (area-weighted), deterministic per seed."""
        rng = np.random.default_rng(seed)
        if self.kind in ("tapered_cylinder", "cylinder"):
            if self.kind == "tapered_cylinder":
                L, r0, r1 = self.dims
                zlo = 0.0
            else:
                r0 = r1 = self.dims[0]
                L, zlo = 2 * self.dims[1], -self.dims[1]
            side = np.pi * (r0 + r1) * L
            caps = np.pi * (r0 ** 2 + r1 ** 2)
            n_side = int(round(n * side / (side + caps)))
            # side: z with density proportional to the radius there
            u = rng.random(n_side)
            s = (np.sqrt(r0 ** 2 + u * (r1 ** 2 - r0 ** 2)) - r0) / (r1 - r0) if r1 != r0 else u
            z = s * L
            r = r0 + (r1 - r0) * s
            phi = rng.random(n_side) * 2 * np.pi
            pts = [np.stack([r * np.cos(phi), r * np.sin(phi), z + zlo], 1)]
            n_caps = n - n_side
            n0 = int(round(n_caps * r0 ** 2 / (r0 ** 2 + r1 ** 2)))
            for m, rad, zc in ((n0, r0, zlo), (n_caps - n0, r1, zlo + L)):
                rr = rad * np.sqrt(rng.random(m))
                ph = rng.random(m) * 2 * np.pi
                pts.append(np.stack([rr * np.cos(ph), rr * np.sin(ph), np.full(m, zc)], 1))
            return np.concatenate(pts)
        if self.kind == "box":
            h = np.asarray(self.dims, float)
            areas = np.array([h[1] * h[2], h[0] * h[2], h[0] * h[1]] * 2)
            face = rng.choice(6, n, p=areas / areas.sum())
            p = (rng.random((n, 3)) * 2 - 1) * h
            ax = face % 3
            p[np.arange(n), ax] = np.where(face < 3, 1, -1) * h[ax]
            return p
        v = rng.normal(size=(n, 3))
        return self.dims[0] * v / np.linalg.norm(v, axis=1, keepdims=True)

    def surface_rings(self, n_z: int = 150, n_phi: int = 24) -> np.ndarray:
        """Side points of a (tapered) cylinder on a regular grid of rings.

        Random samples leave gaps of several mm along a 1.45 m cue, and ADD-S (a nearest-point
        distance) then reports those gaps as error; on a grid, a roll about the axis moves every
        point at most half a ring step (``pi r / n_phi``) from a neighbour.
        """
        if self.kind == "tapered_cylinder":
            z = np.linspace(0.0, self.dims[0], n_z)
        else:
            z = np.linspace(-self.dims[1], self.dims[1], n_z)
        r = self.radius_at(z if self.kind == "tapered_cylinder" else np.zeros_like(z))
        phi = np.linspace(0, 2 * np.pi, n_phi, endpoint=False)
        zz, pp = np.meshgrid(z, phi, indexing="ij")
        rr = np.broadcast_to(np.asarray(r)[:, None], zz.shape)
        return np.stack([rr * np.cos(pp), rr * np.sin(pp), zz], -1).reshape(-1, 3)

    # ------------------------------------------------------------------ symmetry
    def symmetries(self, n_continuous: int = 72) -> np.ndarray:
        """Rotations ``[S, 3, 3]`` that leave the object's appearance unchanged.

        Continuous symmetries are discretised into ``n_continuous`` steps (5° by default; the
        MSSD error this introduces on a 14.5 mm butt radius is under 1 mm). The cue is not
        symmetric end-to-end; a plain cylinder or box also flips.
        """
        def rz(a):
            c, s = np.cos(a), np.sin(a)
            return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])

        flip_x = np.diag([1.0, -1.0, -1.0])
        if self.kind == "tapered_cylinder":
            return np.stack([rz(a) for a in np.linspace(0, 2 * np.pi, n_continuous, endpoint=False)])
        if self.kind == "cylinder":
            rolls = [rz(a) for a in np.linspace(0, 2 * np.pi, n_continuous, endpoint=False)]
            return np.stack(rolls + [r @ flip_x for r in rolls])
        if self.kind == "box":
            return _box_symmetries(np.asarray(self.dims, float))
        return np.eye(3)[None]  # a sphere: every rotation, but only position is observable


def _box_symmetries(half: np.ndarray) -> np.ndarray:
    """Proper rotations permuting the axes (with signs) that map the box onto itself."""
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            R = np.zeros((3, 3))
            R[np.arange(3), perm] = signs
            if np.linalg.det(R) > 0 and np.allclose(np.abs(R) @ half, half):
                out.append(R)
    return np.stack(out)


def cue_model(length: float = CUE_LENGTH, tip_radius: float = CUE_TIP_RADIUS,
              butt_radius: float = CUE_BUTT_RADIUS) -> RigidObjectModel:
    """The billiard cue: a white ferrule, a light maple shaft and a dark butt (3/5 : 2/5)."""
    shaft_end = 0.6 * length
    parts = (Part("ferrule", 0.0, 0.02, (0.95, 0.95, 0.92)),
             Part("shaft", 0.02, shaft_end, (0.86, 0.72, 0.48)),
             Part("butt", shaft_end, length, (0.25, 0.12, 0.05)))
    return RigidObjectModel("cue", "tapered_cylinder", (length, tip_radius, butt_radius), parts)


def box_model(name: str, half: tuple[float, float, float], rgb=None) -> RigidObjectModel:
    return RigidObjectModel(name, "box", tuple(float(h) for h in half), rgb=rgb)


def cylinder_model(name: str, radius: float, half_height: float, rgb=None) -> RigidObjectModel:
    return RigidObjectModel(name, "cylinder", (float(radius), float(half_height)), rgb=rgb)
