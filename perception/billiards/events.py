"""Shot events from ball tracks: strike, ball-ball contacts, cushion contacts, pots.

At 30 frames/s a fast ball moves more than its own diameter between frames, so contacts are
rarely seen, only inferred: each frame interval is replayed with the velocities the balls had
before it (constant velocity over one frame: the cloth changes a ball's speed by < 70 mm/s a
frame), and an event is a moment in the interval where that replay makes two balls touch (or a
ball reach a cushion line) *and* the balls' velocities then change. Times come from the replay
(when the distance reaches two radii, or the centre reaches the cushion line), so they are
finer than the frame period.

- strike: the cue ball's motion onset, timed by extrapolating its first moving frames back to
  its resting spot;
- ball_ball: (a) a resting ball starts moving: the hitter is the moving ball whose path in that
  interval passes within two radii of it (this is how every first hit looks); (b) two moving
  balls whose replayed paths meet, then both change velocity;
- cushion: the replayed centre crosses a cushion line (one radius inside the cushion nose) and
  the velocity's component normal to it reverses; named as the simulator names its cushions
  (``cushion_top_left`` .. ``cushion_right``: the long rails are split at the middle pockets);
- pot: from the tracker (a ball that vanished over a pocket opening; ``BallTrack.pocket``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.billiards.types import BallTrack, PerceivedEvent, TableGeometry


@dataclass(frozen=True)
class EventConfig:
    move_mm: float = 4.0  # displacement from rest that counts as moving (tracks are ~0.5 mm noisy)
    dv_mm_s: float = 150.0  # velocity change that counts as a collision (cloth: < 70 mm/s a frame)
    contact_tol_mm: float = 12.0  # slack on "two radii apart" for a ball's actual path in a frame
    replay_tol_mm: float = 4.0  # slack for a replayed path (a frame of cloth friction: ~1 mm)
    graze_mm: float = 8.0  # a replayed touch shallower than this must move the touched ball
    cushion_tol_mm: float = 12.0  # slack on the cushion line
    debounce_s: float = 0.1  # one touch, one event


def _velocities(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[T, N, 2] velocity over the interval ending at each frame (NaN at frame 0 or where unseen)."""
    v = np.full_like(p, np.nan)
    dt = np.diff(t)[:, None, None]
    with np.errstate(invalid="ignore"):
        v[1:] = (p[1:] - p[:-1]) / np.where(dt > 0, dt, np.nan)
    return v


def _touch_time(d0: np.ndarray, dv: np.ndarray, r: float, horizon: float) -> float | None:
    """Smallest s in [0, horizon] with |d0 + dv s| <= r (None if none)."""
    a = float(dv @ dv)
    b = 2.0 * float(d0 @ dv)
    c = float(d0 @ d0) - r * r
    if c <= 0:
        return 0.0
    if a < 1e-12:
        return None
    disc = b * b - 4 * a * c
    if disc < 0:
        return None
    s = (-b - np.sqrt(disc)) / (2 * a)
    return float(s) if 0.0 <= s <= horizon else None


def cushion_name(xy: np.ndarray, axis: int, sign: float) -> str:
    """The simulator's name for the cushion a ball at ``xy`` meets across ``axis`` (0: x, 1: y)."""
    if axis == 0:
        return "cushion_right" if sign > 0 else "cushion_left"
    side = "top" if sign > 0 else "bottom"
    return f"cushion_{side}_{'right' if xy[0] > 0 else 'left'}"


def infer_events(tracks: dict[str, BallTrack], geometry: TableGeometry,
                 config: EventConfig | None = None) -> list[PerceivedEvent]:
    """The event timeline of one shot from its tracks, sorted by time."""
    cfg = config or EventConfig()
    names = list(tracks)
    if not names:
        return []
    t = np.asarray(tracks[names[0]].t, float)
    if len(t) < 3:
        return []
    P = np.stack([tr.xy_est_mm if tr.xy_est_mm is not None else tr.xy_mm for tr in tracks.values()], 1)
    V = _velocities(P, t)
    R = geometry.ball_radius_mm
    events: list[PerceivedEvent] = []
    cue = geometry.cue_ball if geometry.cue_ball in tracks else None

    # ---- strike: the cue ball's motion onset
    if cue is not None:
        c = names.index(cue)
        p = P[:, c]
        ok = np.isfinite(p).all(1)
        if ok.any():
            first = int(np.argmax(ok))
            rest = p[first]
            moved = ok & (np.linalg.norm(p - rest, axis=1) > cfg.move_mm)
            moved[:first] = False
            if moved.any():
                k = int(np.argmax(moved))
                d = float(np.linalg.norm(p[k] - rest))
                speed = np.linalg.norm(V[k + 1, c]) if k + 1 < len(t) else np.nan
                if not np.isfinite(speed) or speed <= 0:
                    speed = np.linalg.norm(V[k, c])
                ts = t[k] - d / speed if np.isfinite(speed) and speed > 0 else t[k]
                events.append(PerceivedEvent(float(np.clip(ts, t[k - 1], t[k])), "strike", "cue_stick", cue))

    last: dict[tuple, float] = {}

    def add(ev: PerceivedEvent, key: tuple) -> None:
        if key in last and ev.t - last[key] < cfg.debounce_s:
            return
        last[key] = ev.t
        events.append(ev)

    speed = np.linalg.norm(V, axis=2)  # [T, N]
    touched_at: dict[int, float] = {}  # ball -> when a contact last involved it
    for k in range(2, len(t)):
        dt = t[k] - t[k - 1]
        p0 = P[k - 1]  # positions at the start of the interval
        vpost = V[k + 1] if k + 1 < len(t) else V[k]
        seen = np.isfinite(p0).all(1) & np.isfinite(P[k]).all(1)
        vpre = np.where(np.isfinite(V[k - 1]), V[k - 1], 0.0)
        changed = np.linalg.norm(np.nan_to_num(V[k] - vpre), axis=1) > cfg.dv_mm_s
        resting = ~(np.nan_to_num(speed[k - 1]) * dt > 0.25 * cfg.move_mm)
        started = np.linalg.norm(np.nan_to_num(P[k] - p0), axis=1) > 0.5 * cfg.move_mm
        # (b) replay: the first ball each moving ball would touch on its path through the interval
        for i in np.flatnonzero(seen & ~resting):
            hit = None
            for j in np.flatnonzero(seen):
                if j == i:
                    continue
                d0, dv = p0[i] - p0[j], vpre[i] - vpre[j]
                if d0 @ d0 <= (2 * R) ** 2 or d0 @ dv >= 0:
                    continue  # already touching at the start, or not closing in
                s = _touch_time(d0, dv, 2 * R + cfg.replay_tol_mm, dt)
                if s is not None and (hit is None or s < hit[0]):
                    hit = (s, j)
            if hit is None or not (changed[i] or changed[hit[1]]):
                continue
            s, j = hit
            d0, dv = p0[i] - p0[j], vpre[i] - vpre[j]
            closest = float(np.linalg.norm(d0 + dv * np.clip(-(d0 @ dv) / (dv @ dv), 0.0, dt)))
            later = P[min(k + 2, len(t) - 1), j]
            responded = changed[j] or (np.isfinite(later).all()
                                       and np.linalg.norm(later - p0[j]) > cfg.move_mm)
            if not responded and closest > 2 * R - cfg.graze_mm:
                continue  # a graze that moved nothing: a near miss (the break's apex ball)
            s = _touch_time(p0[i] - p0[j], vpre[i] - vpre[j], 2 * R, dt) or s
            a, b = (i, j) if speed[k - 1, i] >= np.nan_to_num(speed[k - 1, j]) else (j, i)
            ev = PerceivedEvent(float(t[k - 1] + s), "ball_ball", names[a], names[b])
            add(ev, ("bb",) + tuple(sorted((names[a], names[b]))))
            touched_at[i] = touched_at[j] = ev.t
        # (a) a resting ball starts moving and the replay found no cause: the moving ball whose
        # actual path in the interval passed within two radii of it hit it (a ball struck just
        # before this interval had no speed yet to replay)
        for j in np.flatnonzero(seen & resting & started & changed):
            if t[k] - touched_at.get(j, -np.inf) < 2 * dt:
                continue
            best, best_i = np.inf, None
            for i in np.flatnonzero(seen & ~resting):
                if i == j:
                    continue
                a, b = p0[i], P[k, i]
                ab = b - a
                s = np.clip((p0[j] - a) @ ab / max(ab @ ab, 1e-9), 0.0, 1.0)
                dist = float(np.linalg.norm(a + s * ab - p0[j]))
                if dist < best:
                    best, best_i = dist, i
            if best_i is None or best > 2 * R + cfg.contact_tol_mm:
                continue
            i = int(best_i)
            u = (P[k, i] - p0[i]) / dt
            s = _touch_time(p0[i] - p0[j], u, 2 * R + cfg.contact_tol_mm, dt) or 0.0
            ev = PerceivedEvent(float(t[k - 1] + s), "ball_ball", names[i], names[j])
            add(ev, ("bb",) + tuple(sorted((names[i], names[j]))))
            touched_at[i] = touched_at[j] = ev.t
        # cushions: the replayed centre reaches a cushion line and the normal velocity reverses
        lim = np.array([geometry.half_length_mm - R, geometry.half_width_mm - R])
        for i in np.flatnonzero(seen & ~resting):
            for axis in (0, 1):
                vn = vpre[i, axis]
                if abs(vn) < 1e-6:
                    continue
                sign = np.sign(vn)
                line = sign * (lim[axis] - cfg.cushion_tol_mm)
                s = (line - p0[i, axis]) / vn
                post = V[k, i, axis]
                post2 = vpost[i, axis] if np.isfinite(vpost[i, axis]) else post
                reversed_ = np.sign(post) == -sign or np.sign(post2) == -sign
                if -0.5 * dt <= s <= dt and reversed_ and abs(p0[i, axis]) > lim[axis] - 3 * R:
                    s_line = (sign * lim[axis] - p0[i, axis]) / vn
                    ts = float(t[k - 1] + np.clip(s_line, 0.0, dt))
                    hit = p0[i] + vpre[i] * np.clip(s_line, 0.0, dt)
                    name = cushion_name(hit, axis, sign)
                    add(PerceivedEvent(ts, "cushion", names[i], name), ("c", names[i], name))

    strike_t = next((e.t for e in events if e.kind == "strike"), None)
    for name, tr in tracks.items():
        # nothing goes down before the strike: a ball that vanished earlier was on the catch tray
        if tr.potted_t is not None and (strike_t is None or tr.potted_t > strike_t):
            events.append(PerceivedEvent(float(tr.potted_t), "pot", name, tr.pocket))
    events.sort(key=lambda e: e.t)
    return events
