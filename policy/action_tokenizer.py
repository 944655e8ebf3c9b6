"""Continuous 7-D actions <-> 256 discrete bins per dimension (OpenVLA's action tokenizer).

Each dimension is normalised to [-1, 1] with the dataset's 1st/99th percentiles (robust to the few
outliers a scripted expert with noise produces), clipped, and cut into ``n_bins`` uniform bins.
Decoding returns the bin centre, so the round-trip error inside [q01, q99] is at most half a bin.
The gripper is binary (0 = open, 1 = closed): it maps to the first or last bin and decodes by sign.
The statistics travel with the checkpoint (``stats.json``) so inference never guesses them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from policy.errors import PolicyError

ACTION_DIM = 7
GRIPPER_DIM = 6  # index of the gripper in (dx, dy, dz, droll, dpitch, dyaw, gripper)


def validate_stats(stats: Mapping[str, Sequence[float]], dim: int, name: str = "action") -> None:
    """Raise a one-line PolicyError when q01/q99 are missing, of the wrong length, or not finite."""
    for key in ("q01", "q99"):
        if key not in stats:
            raise PolicyError(f"{name} statistics lack '{key}' (have: {sorted(stats)})")
        values = np.asarray(stats[key], dtype=np.float64)
        if values.shape != (dim,):
            raise PolicyError(f"{name} statistics '{key}' has shape {values.shape}, expected ({dim},)")
        if not np.all(np.isfinite(values)):
            raise PolicyError(f"{name} statistics '{key}' contain NaN or inf: {values.tolist()}")
    if np.any(np.asarray(stats["q99"]) < np.asarray(stats["q01"])):
        raise PolicyError(f"{name} statistics have q99 < q01 in some dimension")


class ActionTokenizer:
    """Normalise, discretise and invert 7-D actions with per-dimension q01/q99 statistics."""

    def __init__(self, stats: Mapping[str, Sequence[float]], n_bins: int = 256,
                 gripper_dim: int | None = GRIPPER_DIM) -> None:
        q01 = np.asarray(stats.get("q01", []), dtype=np.float64)
        validate_stats(stats, dim=len(q01) if len(q01) else ACTION_DIM)
        self.low = q01
        self.high = np.asarray(stats["q99"], dtype=np.float64)
        self.dim = len(self.low)
        self.n_bins = n_bins
        self.gripper_dim = gripper_dim if gripper_dim is not None and gripper_dim < self.dim else None
        # A constant dimension (q01 == q99) gets a unit range so nothing divides by zero; it
        # decodes back to its constant value.
        self.span = np.where(self.high - self.low > 1e-8, self.high - self.low, 1.0)
        self.bin_width = 2.0 / n_bins

    # --- continuous <-> [-1, 1] -------------------------------------------------------------
    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Map to [-1, 1] per dimension (clipped); the gripper becomes -1 (open) or +1 (closed)."""
        a = np.asarray(actions, dtype=np.float64)
        out = np.clip(2.0 * (a - self.low) / self.span - 1.0, -1.0, 1.0)
        if self.gripper_dim is not None:
            out[..., self.gripper_dim] = np.where(a[..., self.gripper_dim] > 0.5, 1.0, -1.0)
        return out.astype(np.float32)

    def unnormalize(self, normed: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize` for values in [-1, 1]; the gripper decodes by sign."""
        x = np.clip(np.asarray(normed, dtype=np.float64), -1.0, 1.0)
        out = (x + 1.0) / 2.0 * self.span + self.low
        out = np.where(self.high - self.low > 1e-8, out, self.low)
        if self.gripper_dim is not None:
            out[..., self.gripper_dim] = (x[..., self.gripper_dim] > 0).astype(np.float64)
        return out.astype(np.float32)

    # --- [-1, 1] <-> bins -------------------------------------------------------------------
    def to_bins(self, actions: np.ndarray) -> np.ndarray:
        """Bin indices in [0, n_bins) with the same shape as ``actions`` (int64)."""
        normed = self.normalize(actions).astype(np.float64)
        bins = np.floor((normed + 1.0) / self.bin_width).astype(np.int64)
        return np.clip(bins, 0, self.n_bins - 1)

    def bin_centers(self, bins: np.ndarray) -> np.ndarray:
        """Normalised value at the centre of each bin."""
        b = np.clip(np.asarray(bins, dtype=np.int64), 0, self.n_bins - 1)
        return (-1.0 + (b + 0.5) * self.bin_width).astype(np.float32)

    def from_bins(self, bins: np.ndarray) -> np.ndarray:
        """Continuous actions at the bin centres, un-normalised."""
        return self.unnormalize(self.bin_centers(bins))

    def bin_values(self) -> np.ndarray:
        """The action each bin stands for, un-normalised: float32 ``[dim, n_bins]`` (row d holds
        dimension d's values in bin order; a constant dimension repeats its value, the gripper
        reads 0 or 1). Computed once and shared read-only: every ``predict_chunk_distribution``
        call returns it."""
        if getattr(self, "_bin_values", None) is None:
            bins = np.repeat(np.arange(self.n_bins)[:, None], self.dim, axis=1)
            values = np.ascontiguousarray(self.from_bins(bins).T, dtype=np.float32)
            values.setflags(write=False)
            self._bin_values = values
        return self._bin_values

    def max_roundtrip_error(self) -> np.ndarray:
        """Half a bin in original units, per dimension: the bound the round trip must meet."""
        return (self.span * self.bin_width / 4.0).astype(np.float32)

    def to_dict(self) -> dict:
        return {"q01": self.low.tolist(), "q99": self.high.tolist(), "n_bins": self.n_bins,
                "gripper_dim": self.gripper_dim}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ActionTokenizer":
        return cls({"q01": d["q01"], "q99": d["q99"]}, n_bins=int(d.get("n_bins", 256)),
                   gripper_dim=d.get("gripper_dim", GRIPPER_DIM))
