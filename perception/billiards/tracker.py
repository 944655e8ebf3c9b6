"""Ball tracking through a shot: find each ball by colour, put it on the table plane, follow it.

Per frame and ball: predict where it is (constant velocity from its last two sightings), look in
a small full-resolution window there (``detect.find_near``); if it is not there (a collision
changed its course, it was never seen), search the whole subsampled frame for its colour
(``detect.find_global``), gated by how far a ball can roll in the time since it was last seen.
The centre found in the picture goes to the table plane by ray-plane intersection at ball-centre
height (``geometry.TableCamera``).

A ball that is not seen (too little of its disk in its colour: the cue or the player's arm is
over it) is held at its prediction and searched for again in every frame; a ball that vanishes
over a pocket opening is potted, in that pocket, and no longer looked for. Each ball has one
colour, so identity is never in doubt. Depth is accepted for interface symmetry and unused: the
plane constraint is already exact for a ball on the cloth.

Cost: the class table is built once (~0.1 s); a frame in which every ball is found near its
prediction costs ~9 windows of ~30x30 pixels, i.e. a few milliseconds at 640x480 on one core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from perception.billiards import detect
from perception.billiards.geometry import TableCamera, nearest_pocket, on_table
from perception.billiards.types import BallTrack, ShotPerception, TableGeometry
from perception.errors import PerceptionError


SINK_VISIBLE_S = 0.12  # a sinking ball stays in the overhead view this long after its pot


# The cue's colours (ferrule, shaft, butt), as ``perception.pose.model.cue_model`` paints it: kept
# here because importing the pose package pulls in torch (seconds), and a test checks they agree.
CUE_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.95, 0.95, 0.92), (0.86, 0.72, 0.48), (0.25, 0.12, 0.05))


@dataclass(frozen=True)
class TrackerConfig:
    """Tuning of the tracker (defaults measured on the simulator's 640x480 overhead shots)."""

    colour_tol: float = 40.0  # 8-bit units: how far from a class's colour ray a pixel may lie
    min_fill: float = 0.45  # share of the ball's disk that must be in its colour to count as seen
    max_covered: float = 0.08  # share of its disk the cue may cover before the ball counts as hidden
    pocket_radius_mm: float = 110.0  # a ball lost this close to a pocket's opening went down it
    min_sightings: int = 5  # a ball seen fewer times than this before it vanished was never in play
    table_margin_mm: float = 90.0  # centres beyond the cushion lines by more than this are not balls
    max_speed_mm_s: float = 7000.0  # no ball moves faster: gates the whole-frame search
    window_px: int = 4  # extra half-width of the local search window beyond 1.5 ball radii
    distractor_colours: tuple[tuple[float, float, float], ...] = CUE_COLOURS


@dataclass
class _Ball:
    k: int
    name: str
    xy: np.ndarray | None = None  # last seen, table mm
    t: float = 0.0  # when
    v: np.ndarray = field(default_factory=lambda: np.zeros(2))  # mm/s
    seen_prev: bool = False  # seen in the previous frame
    n_seen: int = 0  # sightings so far
    potted_t: float | None = None
    pocket: str | None = None

    def predict(self, t: float) -> np.ndarray | None:
        return None if self.xy is None else self.xy + self.v * (t - self.t)


class BallTracker:
    """Frame-by-frame tracker of every ball in ``geometry.ball_colours`` seen by one camera."""

    def __init__(self, K: np.ndarray, cam_to_world: np.ndarray, geometry: TableGeometry,
                 image_shape: tuple[int, int], config: TrackerConfig | None = None) -> None:
        self.cfg = config or TrackerConfig()
        self.geometry = geometry
        self.cam = TableCamera.build(K, cam_to_world, geometry)
        self.names = tuple(geometry.ball_colours)
        if not self.names:
            raise PerceptionError("the table geometry names no balls to track")
        rgb = np.array([geometry.ball_colours[n] for n in self.names], float) * 255.0
        self.classes = detect.ColourClasses.build(
            rgb, np.asarray(geometry.cloth_colour, float) * 255.0,
            np.array(self.cfg.distractor_colours, float).reshape(-1, 3) * 255.0, tol=self.cfg.colour_tol)
        self.H, self.W = int(image_shape[0]), int(image_shape[1])
        self.R = float(geometry.ball_radius_mm)
        self._mask = self._table_mask()
        self.balls = [_Ball(k, n) for k, n in enumerate(self.names)]
        self.times: list[float] = []
        self.seen: list[np.ndarray] = []  # per frame [N, 2] (NaN where unseen)
        self.est: list[np.ndarray] = []  # per frame [N, 2]

    def _table_mask(self) -> np.ndarray:
        """Where a ball can appear, on the subsampled grid: inside the rails (plus margin)."""
        h, w = (self.H + 1) // 2, (self.W + 1) // 2
        ys, xs = np.mgrid[0:h, 0:w]
        uv = np.c_[xs.ravel() * 2.0, ys.ravel() * 2.0]
        xy = self.cam.to_table(uv, self.R)
        ok = np.isfinite(xy).all(1) & on_table(np.nan_to_num(xy, nan=1e9), self.geometry,
                                                self.cfg.table_margin_mm)
        return ok.reshape(h, w)

    def update(self, image: np.ndarray, t: float) -> np.ndarray:
        """Track one frame (uint8 [H, W, 3] RGB at time ``t``); returns [N, 2] seen positions (mm)."""
        if image.ndim != 3 or image.shape[:2] != (self.H, self.W) or image.dtype != np.uint8:
            raise PerceptionError(f"expected uint8 frames of {self.W}x{self.H} RGB, got "
                                  f"{image.dtype} {image.shape}")
        coarse = None
        seen = np.full((len(self.balls), 2), np.nan)
        est = np.full((len(self.balls), 2), np.nan)
        for b in self.balls:
            if b.potted_t is not None:
                continue
            pred = b.predict(t)
            blob = None
            if pred is not None:
                uv = self.cam.to_pixels(pred, self.R)[0]
                r_px = float(self.cam.ball_radius_px(pred, self.R)[0])
                if np.isfinite(uv).all():
                    blob = detect.find_near(image, self.classes, b.k, uv, r_px,
                                            int(np.ceil(1.5 * r_px)) + self.cfg.window_px)
                    blob = self._accept(blob, pred, t, b, gate=False)
            if blob is None:
                if coarse is None:
                    coarse = detect.coarse_labels(image, self.classes, self._mask)
                r_guess = float(self.cam.ball_radius_px(np.zeros(2) if pred is None else pred, self.R)[0])
                min_px = max(int(0.25 * np.pi * r_guess * r_guess * self.cfg.min_fill), 3)
                blob = detect.find_global(image, coarse, self.classes, b.k, r_guess, min_px)
                blob = self._accept(blob, pred, t, b, gate=True)
            if blob is not None:
                xy = blob
                if b.xy is not None and b.seen_prev and t > b.t:
                    b.v = (xy - b.xy) / (t - b.t)
                elif b.xy is None or not b.seen_prev:
                    b.v = np.zeros(2)
                b.xy, b.t, b.seen_prev = xy, t, True
                b.n_seen += 1
                seen[b.k] = est[b.k] = xy
                continue
            b.seen_prev = False
            if pred is None:
                continue  # never seen yet
            pocket, d = nearest_pocket(b.xy, self.geometry)
            if d <= self.cfg.pocket_radius_mm:
                if b.n_seen < self.cfg.min_sightings:
                    # glimpsed near a pocket and gone: a ball on the catch tray seen through the
                    # opening (it projects inside the cushions), not one that was in play
                    self.balls[b.k] = _Ball(b.k, b.name)
                    continue
                b.potted_t, b.pocket = t, pocket
                continue
            # Hidden on the table: hold it where it would be, slowing as a rolling ball does
            # (a ball that keeps its speed behind the cue would run off through the cushions).
            b.xy, b.t = pred, t
            b.v = b.v * 0.9
            est[b.k] = pred
        self.times.append(float(t))
        self.seen.append(seen)
        self.est.append(est)
        return seen

    def _accept(self, blob: detect.Blob | None, pred: np.ndarray | None, t: float, b: _Ball,
                gate: bool) -> np.ndarray | None:
        """The blob's table position if it is a plausible sighting of ``b``, else None."""
        if blob is None or blob.fill < self.cfg.min_fill or blob.covered > self.cfg.max_covered:
            return None  # not seen, or partly under the cue: its visible part's centre is biased
        xy = self.cam.to_table(blob.uv, self.R)[0]
        # A ball is first taken up on the cloth only: one in a pocket's opening (or seen through
        # it on the catch tray) went down before the clip began.
        margin = self.cfg.table_margin_mm if b.xy is not None else 0.0
        if not np.isfinite(xy).all() or not on_table(xy, self.geometry, margin)[0]:
            return None
        if gate and pred is not None:
            reach = self.cfg.max_speed_mm_s * max(t - b.t, 1e-3) + 2 * self.R
            if np.linalg.norm(xy - pred) > reach:
                return None
        return xy

    def tracks(self) -> dict[str, BallTrack]:
        t = np.array(self.times)
        seen = np.stack(self.seen) if self.seen else np.zeros((0, len(self.balls), 2))
        est = np.stack(self.est) if self.est else np.zeros((0, len(self.balls), 2))
        out = {}
        for b in self.balls:
            xy, xy_est, potted_t, pocket = seen[:, b.k].copy(), est[:, b.k].copy(), b.potted_t, b.pocket
            if potted_t is not None:
                potted_t = self._pot_time(t, xy, potted_t)[0]
            elif len(t) > 1 and np.isfinite(xy[-1]).all():
                # The clip may end while a ball is sinking into a pocket (in view for a few more
                # frames): it is going down; when, if its measured drop passed the cloth, else
                # at the clip's end.
                name, d = nearest_pocket(xy[-1], self.geometry)
                if d <= self.cfg.pocket_radius_mm:
                    t_pot, measured, sinking = self._pot_time(t, xy, float(t[-1] + (t[-1] - t[-2])))
                    if sinking:
                        potted_t, pocket = (t_pot if measured else float(t[-1])), name
            if potted_t is not None:
                xy[t >= potted_t] = np.nan  # falling through the opening: no longer on the cloth
                xy_est[t >= potted_t] = np.nan
            out[b.name] = BallTrack(b.name, t, xy, np.isfinite(xy).all(1), xy_est, potted_t, pocket)
        return out

    def _pot_time(self, t: np.ndarray, xy: np.ndarray, lost_t: float) -> tuple[float, bool, bool]:
        """When the ball's centre sank 1.5 radii (below the cloth) in the pocket opening.

        A sinking ball is still seen for a few frames, but the ray through its centre now meets
        the ball-height plane short of it, toward the camera's nadir, by ``shift = rho * d /
        (h + d)`` for a drop ``d`` (``rho``: its distance from the nadir, ``h``: the camera's
        height over the ball plane). So the track bends toward the nadir, off the straight line
        it was rolling along; ``d`` follows from that bend, and the pot is where ``d`` reaches
        1.5 radii. Bends in other directions (a jaw or cushion) are not sinking. Without a
        usable bend, ``SINK_VISIBLE_S`` before the ball was lost (measured: a sinking ball stays
        in view for 3-4 frames at 30 frames/s). Returns (time, whether the drop was measured to
        pass the cloth, whether the track bent as a sinking ball's does).
        """
        seen = np.flatnonzero(np.isfinite(xy).all(1) & (t < lost_t))
        if len(seen) == 0:
            return float(lost_t), False, False
        L = seen[-1]
        fallback = max(float(t[L]) - SINK_VISIBLE_S + (lost_t - float(t[L])), float(t[seen[0]]))
        if len(seen) < 5:
            return fallback, False, False
        h = self.cam.c_t[2] - self.R
        nadir = self.cam.c_t[:2]

        def line(k0: int):
            if k0 < 3 or not all(np.isfinite(xy[j]).all() for j in range(k0 - 3, k0)):
                return None
            v = (xy[k0 - 1] - xy[k0 - 3]) / (t[k0 - 1] - t[k0 - 3])
            return lambda tt: xy[k0 - 1] + v * (tt - t[k0 - 1])

        def sinking(k: int) -> bool:
            f = line(k)
            if f is None:
                return False
            r = xy[k] - f(t[k])
            toward = nadir - xy[k]
            toward = toward / max(np.linalg.norm(toward), 1e-9)
            along = float(r @ toward)
            return along > 2.0 and abs(float(r[0] * toward[1] - r[1] * toward[0])) < along

        k0 = None
        for k in range(L, max(3, L - 12) - 1, -1):
            if not sinking(k):
                break
            k0 = k
        f = line(k0) if k0 is not None else None
        if f is None:
            return fallback, False, False
        toward = nadir - f(t[k0])
        toward = toward / max(np.linalg.norm(toward), 1e-9)
        target = 1.5 * self.R
        prev_t, prev_d = t[k0 - 1], 0.0
        for k in range(k0, L + 1):
            true = f(t[k])
            shift = max(float((xy[k] - true) @ toward), 0.0)
            rho = float(np.linalg.norm(true - nadir))
            d = shift * h / max(rho - shift, 1e-3)
            if d >= target:
                return float(prev_t + (t[k] - prev_t) * (target - prev_d) / max(d - prev_d, 1e-9)), True, True
            prev_t, prev_d = t[k], d
        return fallback, False, True  # sinking, but still short of the pot when last seen


def track_balls(frames: Iterable[np.ndarray], times: Sequence[float], K: np.ndarray,
                cam_pose: np.ndarray, geometry: TableGeometry,
                config: TrackerConfig | None = None) -> dict[str, BallTrack]:
    """Tracks of every ball through ``frames`` (uint8 [H, W, 3] each) taken at ``times`` (s)."""
    tracker = None
    times = list(times)
    n = 0
    for image, t in zip(frames, times):
        if tracker is None:
            tracker = BallTracker(K, cam_pose, geometry, image.shape[:2], config)
        tracker.update(np.asarray(image), float(t))
        n += 1
    if tracker is None:
        raise PerceptionError("no frames to track")
    if n != len(times):
        raise PerceptionError(f"{n} frames but {len(times)} times")
    return tracker.tracks()


def track_shot(frames: Iterable[np.ndarray], times: Sequence[float], K: np.ndarray,
               cam_pose: np.ndarray, geometry: TableGeometry, depth: Iterable[np.ndarray] | None = None,
               config: TrackerConfig | None = None) -> ShotPerception:
    """Track the balls through one shot and infer its events (strike, contacts, cushions, pots).

    ``K``: 3x3 intrinsics (OpenCV: pixel centres at integers); ``cam_pose``: 4x4 camera->world
    (OpenCV camera axes); ``geometry.table_to_world`` ties the table to that world. ``depth`` is
    accepted and unused (see the module's docstring).
    """
    from perception.billiards.events import infer_events

    times = [float(t) for t in times]
    tracks = track_balls(frames, times, K, cam_pose, geometry, config)
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return ShotPerception(fps=fps, tracks=tracks, events=tuple(infer_events(tracks, geometry)),
                          geometry=geometry)
