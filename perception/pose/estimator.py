"""``PoseEstimator.estimate(image, depth | None, K) -> 4x4 object->camera``: the whole pipeline.

segmentation -> initial pose (geometric axis fit or SQPnP) -> render-and-compare refinement.
Depth, when given, is used everywhere it helps (RGB-D mode); without it the same steps run on
the silhouette and the cue's known size (RGB mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from perception.errors import PerceptionError
from perception.pose.init import front_depth, init_cue_pnp, init_cue_rgb, init_cue_rgbd, pose_from_axis
from perception.pose.model import RigidObjectModel, cue_model
from perception.pose.refine import RefineConfig, refine_cue
from perception.pose.segment import coverage, cue_segmenter
from perception.threads import single_threaded


def _box(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the mask's bounding box grown by ``margin``, inside the image."""
    H, W = mask.shape
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, H),
            max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, W))


class PoseEstimator(Protocol):
    def estimate(self, image: np.ndarray, depth: np.ndarray | None, K: np.ndarray) -> np.ndarray:
        """4x4 object->camera pose (metres)."""


def check_intrinsics(K: Any) -> np.ndarray:
    K = np.asarray(K, float)
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise PerceptionError(f"intrinsics must be a 3x3 matrix with positive focal lengths, "
                              f"got {K.tolist()}")
    return K


@dataclass
class CuePoseEstimator:
    """The cue's pose from one frame. ``init``: "axis" (geometric fit, default) or "pnp"."""

    model: RigidObjectModel = field(default_factory=cue_model)
    segmenter: Callable[..., np.ndarray] | None = None  # default: the shaft's colour
    init: str = "axis"
    refine: RefineConfig = field(default_factory=RefineConfig)
    subpixel: bool = False  # unmix anti-aliased edges (segment.coverage): slower, and on the sim
    # benchmark it did not help (tracked tip error 7.7 mm with it, 5.2 mm without; measured)
    crop_margin: int = 48  # px around the mask kept for initialisation and refinement
    last: dict = field(default_factory=dict, repr=False)  # diagnostics of the latest call

    def __post_init__(self) -> None:
        if self.segmenter is None:
            self.segmenter = cue_segmenter(self.model)
        if self.init not in ("axis", "pnp"):
            raise PerceptionError(f"unknown init {self.init!r}; valid: axis, pnp")

    def segment(self, image: np.ndarray, depth: np.ndarray | None,
                roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The object's mask; with ``roi`` (y0, y1, x0, x1) only that box is segmented."""
        if roi is not None:
            y0, y1, x0, x1 = roi
            mask = np.zeros(image.shape[:2], bool)
            mask[y0:y1, x0:x1] = self.segmenter(image[y0:y1, x0:x1],
                                                None if depth is None else depth[y0:y1, x0:x1])
        else:
            mask = self.segmenter(image, depth)
        if mask.sum() < 10:
            raise PerceptionError("the cue is not visible (segmentation found too few pixels)")
        return mask

    def _roi(self, T: np.ndarray, K: np.ndarray, shape, margin: int = 40):
        """Box around the projection of the whole cue at pose ``T`` (tracking's search window)."""
        L = self.model.dims[0]
        P = np.array([T[:3, 3], T[:3, 3] + L * T[:3, 2]])
        if np.any(P[:, 2] <= 0.01):
            return None
        q = P @ K.T
        q = q[:, :2] / q[:, 2:]
        H, W = shape[:2]
        x0, y0 = np.floor(q.min(0)).astype(int) - margin
        x1, y1 = np.ceil(q.max(0)).astype(int) + margin
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        return (y0, y1, x0, x1) if x1 - x0 > 8 and y1 - y0 > 8 else None

    def initial(self, image, depth, K, mask) -> tuple[np.ndarray, np.ndarray]:
        if depth is not None and self.init == "axis":
            return init_cue_rgbd(mask, depth, K, self.model, image)
        if self.init == "pnp":
            return init_cue_pnp(mask, K, self.model, image)
        return init_cue_rgb(mask, K, self.model, image)

    @single_threaded
    def estimate(self, image: np.ndarray, depth: np.ndarray | None, K: np.ndarray,
                 seed: np.ndarray | None = None, cfg: RefineConfig | None = None) -> np.ndarray:
        """Pose of the cue. ``seed`` (the previous frame's pose, when tracking) narrows the search
        window, keeps the tip-butt order and, without depth, competes with the fresh fit;
        ``cfg`` overrides the refinement settings (tracking uses a lighter one)."""
        K = check_intrinsics(K)
        full_mask = self.segment(image, depth,
                                 None if seed is None else self._roi(seed, K, image.shape))
        # Everything after segmentation works on a box around the mask, with the intrinsics
        # shifted to it: the same geometry, a tenth of the pixels of a 640x480 frame. The margin
        # holds the refinement's band and the tip/butt colour test beyond the shaft's ends.
        y0, y1, x0, x1 = _box(full_mask, self.crop_margin)
        image, mask = image[y0:y1, x0:x1], full_mask[y0:y1, x0:x1]
        K = K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        if depth is not None:
            depth = front_depth(depth[y0:y1, x0:x1])
        starts = []
        try:
            tip, axis = self.initial(image, depth, K, mask)
            if seed is not None and axis @ seed[:3, 2] < 0:
                # The fresh fit got the tip-butt order wrong (its end test is ambiguous when an
                # end is hidden): keep the tracked order and put the tip on the fitted line
                # where the tracked tip projects.
                axis = -axis
                tip = tip + ((seed[:3, 3] - tip) @ axis) * axis
            starts.append((tip, axis))
        except PerceptionError:
            if seed is None:
                raise
        if seed is not None and (depth is None or not starts):
            # Without depth the fresh fit's distance is poor, so the previous pose competes.
            starts.append((seed[:3, 3].copy(), seed[:3, 2].copy()))
        cfg = cfg or self.refine
        alpha = coverage(image, mask) if self.subpixel else None
        res = min((refine_cue(t, a, mask, K, self.model, depth, cfg, alpha=alpha)
                   for t, a in starts), key=lambda r: r.loss)
        self.last = {"mask_pixels": int(mask.sum()), "loss": res.loss, "iou": res.iou,
                     "mask": full_mask}
        return pose_from_axis(res.tip, res.axis)
