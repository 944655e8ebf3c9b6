"""`embodied bench billiards`: the ball tracker and its events against the simulator's ground truth.

Shots are played by the scripted player (seeded; episodes alternate a rack, whose first shot is a
break, and a scattered table; up to three shots a table, a tenth of them random "explore" shots)
and rendered at 640x480 from the overhead camera, cue in view, at 30 frames/s. The tracker
(``perception.billiards.tracker.track_shot``) sees only the frames, the camera's K and pose and
the table's geometry (``sim.billiards.sidecar.table_dict``, what a camera sidecar carries);
the simulator's ground truth scores it:

- ``ball_pos_err_mm_*``: tracked centre vs true centre (table plane), every frame in which the
  tracker reports a ball that is on the cloth; ``ball_detect_rate``: share of on-cloth ball-frames
  reported (the rest were hidden by the cue, or missed);
- ``first_hit_accuracy``: the first ball the cue ball touched (or none), per shot;
- ``pot_*``: pots matched on (ball, pocket); ``pot_time_err_s_median`` over the matched ones;
- ``strike_time_err_s_median``, ball-ball and cushion recall/precision (matched within 50 ms);
- ``cue_dir_err_deg_median``: the cue tracker (``perception.pose.CueTracker``, RGB-D) over the last
  frames before the perceived strike, from the player's camera (the overhead view sees the cue as
  a 3-pixel line), against the true cue axis at that frame; those frames are rendered from the
  recorded state at that moment, so only the few that are needed cost a render;
- ``fps``: tracker frames per CPU second of this process, BLAS and OpenCV on one thread (one
  core); the baselines measured in the same run are real time (the video's 30 frames/s) and a
  naive detector that classifies every full-resolution pixel of every frame and takes each colour's
  centroid (no prediction windows, no subsampling).

Shadows are off by default (``--shadows`` turns them on): the CPU renderer is then ~2.5x faster,
which is what makes 100 shots fit in half an hour; the tracker does not rely on it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Iterator

import numpy as np

DESCRIPTION = "billiards ball tracker + events (pos error, first hit, pots, cue direction, fps) vs ground truth"

MATCH_S = 0.05  # events match when within this many seconds
VIDEO_FPS = 30.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shots", type=int, default=None, help="shots to play and score (quick: 4, else 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the layouts and the player (default 0)")
    p.add_argument("--shadows", action="store_true", help="render ball shadows (~2.5x slower)")
    p.add_argument("--cue-frames", type=int, default=5, help="frames before the strike the cue tracker sees")


def _shots(n: int, seed: int, shadows: bool) -> Iterator[Any]:
    """Yield ``n`` simulated, rendered shots (``ShotRecord``s with overhead frames)."""
    from sim.billiards import BilliardsWorld, ScriptedPlayer, simulate_shot

    world = BilliardsWorld(cameras=("overhead",), width=640, height=480, shadows=shadows)
    made, e = 0, 0
    try:
        while made < n:
            rng = np.random.default_rng(seed + e)
            world.reset(rng, "rack" if e % 2 == 0 else "scatter")
            player = ScriptedPlayer(rng, explore=0.1)
            for _ in range(3):
                aim, power, target = player.plan(world.state())
                rec = simulate_shot(world, aim, power, target=target, fps=VIDEO_FPS)
                yield rec
                made += 1
                left = [b for b in world.state().in_play() if b != "cue"]
                if made >= n or "cue" in rec.pots() or not left or world.out_of_play()[0]:
                    break
            e += 1
    finally:
        world.close()


class _PlayerView:
    """Renders the player's camera (RGB-D) at a recorded frame's state, for the cue tracker."""

    def __init__(self, shadows: bool) -> None:
        from sim.billiards import BilliardsWorld

        self.world = BilliardsWorld(cameras=("player",), width=640, height=480, depth=True,
                                    shadows=shadows)
        import mujoco

        mujoco.mj_forward(self.world.model, self.world.data)  # camera poses are set by mj_forward
        self.K = self.world.intrinsics()["player"]
        self.cam_to_world = self.world.camera_poses()["player"]

    def render(self, rec: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        import mujoco

        w = self.world
        for i in range(len(rec.ball_names)):
            a = w._ball_qpos[i]
            w.data.qpos[a:a + 3] = rec.ball_pos[k, i]
            w.data.qpos[a + 3:a + 7] = (1.0, 0.0, 0.0, 0.0)
        T = rec.cue_pose[k]
        w.set_cue(T[:3, 3], T[:3, :3])
        mujoco.mj_forward(w.model, w.data)
        out = w.render()
        return out["player"], out["player_depth"]

    def close(self) -> None:
        self.world.close()


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def cue_at(view: _PlayerView, rec: Any, t_strike: float, n_frames: int) -> dict | None:
    """Cue tracker over the ``n_frames`` frames up to ``t_strike``; errors at the last one."""
    from perception.pose import CueTracker

    ks = int(np.searchsorted(rec.times, t_strike, side="right")) - 1
    if ks < 0:
        return None
    tracker = CueTracker()
    pose = None
    for k in range(max(ks - n_frames + 1, 0), ks + 1):
        image, depth = view.render(rec, k)
        pose = tracker.update(image, depth, view.K)
    if pose is None:
        return None
    est = view.cam_to_world @ pose
    gt = rec.cue_pose[ks]
    yaw = lambda z: np.arctan2(z[1], z[0])  # noqa: E731
    dyaw = float(np.degrees(abs(np.angle(np.exp(1j * (yaw(est[:3, 2]) - yaw(gt[:3, 2])))))))
    return {"axis_deg": _angle_deg(est[:3, 2], gt[:3, 2]), "yaw_deg": dyaw,
            "tip_mm": 1000.0 * float(np.linalg.norm(est[:3, 3] - gt[:3, 3]))}


def naive_fps(frames: np.ndarray, geometry: Any, limit: int = 40) -> float:
    """Baseline: classify every full-resolution pixel, each ball = its colour's centroid."""
    from perception.billiards.detect import ColourClasses
    from perception.billiards.tracker import TrackerConfig
    from perception.threads import single_threaded

    cfg = TrackerConfig()
    names = list(geometry.ball_colours)
    classes = ColourClasses.build(np.array([geometry.ball_colours[n] for n in names]) * 255.0,
                                  np.asarray(geometry.cloth_colour) * 255.0,
                                  np.array(cfg.distractor_colours) * 255.0, tol=cfg.colour_tol)

    @single_threaded
    def run() -> float:
        c0 = time.process_time()
        for image in frames[:limit]:
            labels = classes.classify(image)
            for k in range(len(names)):
                ys, xs = np.nonzero(labels == k)
                if len(xs):
                    _ = (xs.mean(), ys.mean())
        return time.process_time() - c0

    n = min(limit, len(frames))
    return n / max(run(), 1e-9)


def _first_hit(events: list, cue: str = "cue") -> str | None:
    for e in sorted(events, key=lambda e: e.t):
        if e.kind == "ball_ball" and cue in (e.a, e.b):
            return e.b if e.a == cue else e.a
    return None


def _match(gt: list[tuple], est: list[tuple]) -> list[tuple[tuple, tuple]]:
    """Greedy one-to-one matching of (key, t) pairs with equal keys, nearest in time first."""
    pairs = sorted(((abs(g[1] - e[1]), i, j) for i, g in enumerate(gt) for j, e in enumerate(est)
                    if g[0] == e[0]), key=lambda x: x[0])
    used_g, used_e, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_g and j not in used_e:
            used_g.add(i)
            used_e.add(j)
            out.append((gt[i], est[j]))
    return out


def _prf(n_gt: int, n_est: int, n_match: int) -> tuple[float, float, float]:
    p = n_match / n_est if n_est else 1.0
    r = n_match / n_gt if n_gt else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score_shot(rec: Any, shot: Any, geometry: Any) -> dict[str, Any]:
    """Compare one ``ShotPerception`` with its ``ShotRecord``'s ground truth."""
    R = geometry.ball_radius_mm
    to_table = np.linalg.inv(geometry.table_to_world)
    pos = rec.ball_pos  # [T, N, 3] world m
    P = (np.concatenate([pos, np.ones(pos.shape[:2] + (1,))], 2) @ to_table.T)[..., :3] * 1000.0
    on_cloth = (np.abs(P[..., 2] - R) < 2.0) & ~rec.potted
    errs, reported = [], 0
    for i, name in enumerate(rec.ball_names):
        xy = shot.tracks[name].xy_mm
        ok = on_cloth[:, i] & np.isfinite(xy).all(1)
        reported += int(ok.sum())
        errs.append(np.linalg.norm(xy[ok] - P[ok, i, :2], axis=1))
    gt_pots = [((e.a, e.b), e.t) for e in rec.events if e.kind == "pot"]
    est_pots = [((e.a, e.b), e.t) for e in shot.pots()]
    pot_pairs = _match(gt_pots, est_pots)
    bb_gt = [(tuple(sorted((e.a, e.b))), e.t) for e in rec.events if e.kind == "ball_ball"]
    bb_est = [(tuple(sorted((e.a, e.b))), e.t) for e in shot.events if e.kind == "ball_ball"]
    bb = [m for m in _match(bb_gt, bb_est) if abs(m[0][1] - m[1][1]) <= MATCH_S]
    cu_gt = [((e.a, e.b), e.t) for e in rec.events if e.kind == "cushion"]
    cu_est = [((e.a, e.b), e.t) for e in shot.events if e.kind == "cushion"]
    cu = [m for m in _match(cu_gt, cu_est) if abs(m[0][1] - m[1][1]) <= MATCH_S]
    gt_strike = [e.t for e in rec.events if e.kind == "strike"]
    est_strike = [e.t for e in shot.events if e.kind == "strike"]
    return {
        "pos_err": np.concatenate(errs), "on_cloth": int(on_cloth.sum()), "reported": reported,
        "first_hit_gt": _first_hit(rec.events), "first_hit": shot.first_hit(),
        "pots": (len(gt_pots), len(est_pots), len(pot_pairs)),
        "pot_dt": [abs(g[1] - e[1]) for g, e in pot_pairs],
        "strike_dt": [abs(gt_strike[0] - est_strike[0])] if gt_strike and est_strike else [],
        "bb": (len(bb_gt), len(bb_est), len(bb)), "cushion": (len(cu_gt), len(cu_est), len(cu)),
    }


KEYFRAME_BUDGET = 8  # the shipped VideoLM's frames per question
KEYFRAME_DELTA_S = 0.1  # a keyframe this close catches an event (as in `embodied bench sampling`)
EVENT_ORDER = ("pot", "strike", "ball_ball", "cushion")  # what the event sampler keeps first


def keyframe_recall(rec: Any, shot: Any, frames: np.ndarray) -> dict[str, list[bool]]:
    """Per sampler, whether each ground-truth strike, ball-ball contact and pot has a keyframe
    within ``KEYFRAME_DELTA_S`` at ``KEYFRAME_BUDGET`` frames: uniform and motion see the pixels
    only; "events" anchors on the tracker's perceived events (perception.sampling.EventSampler)."""
    from perception.sampling import EventSampler, event_frames, get_sampler

    gt = [e.t for e in rec.events if e.kind in ("strike", "ball_ball", "pot")]
    times = np.asarray(rec.times)
    if len(frames) < KEYFRAME_BUDGET or not gt:
        return {}
    ranked = sorted(shot.events, key=lambda e: (EVENT_ORDER.index(e.kind) if e.kind in EVENT_ORDER
                                                else len(EVENT_ORDER), e.t))
    samplers = {"uniform": get_sampler("uniform"), "motion": get_sampler("motion"),
                "events": EventSampler(events=event_frames([e.t for e in ranked], times))}
    out = {}
    for name, sampler in samplers.items():
        picked = times[sampler.select(frames, KEYFRAME_BUDGET)]
        out[name] = [bool(np.any(np.abs(picked - t) <= KEYFRAME_DELTA_S + 1e-9)) for t in gt]
    return out


def _median(x: list[float]) -> float | None:
    return float(np.median(x)) if len(x) else None


def _progress(scores: list[dict], n: int, cue_errs: list[dict], elapsed: float) -> None:
    """One line per shot on stderr (a 100-shot run takes a while; stdout is for the JSON)."""
    import sys

    pos = np.concatenate([s["pos_err"] for s in scores])
    pots = np.sum([s["pots"] for s in scores], axis=0)
    hits = np.mean([s["first_hit"] == s["first_hit_gt"] for s in scores])
    cue = np.median([c["axis_deg"] for c in cue_errs]) if cue_errs else float("nan")
    print(f"[billiards] shot {len(scores)}/{n}: pos median {np.median(pos):.2f} mm, first hit "
          f"{hits:.3f}, pots {pots[2]}/{pots[0]} true, {pots[1]} perceived, cue {cue:.2f} deg, "
          f"{elapsed:.0f} s", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from perception.billiards.sidecar import table_geometry
    from perception.billiards.tracker import track_shot
    from perception.threads import single_threaded
    from sim.billiards.sidecar import opencv_intrinsics, table_dict

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    n = args.shots or (4 if args.quick else 100)
    geometry = table_geometry(table_dict())
    view = _PlayerView(args.shadows)
    track = single_threaded(track_shot)
    scores, cue_errs, cue_lost = [], [], 0
    frames_total, cpu, wall, render_s = 0, 0.0, 0.0, 0.0
    baseline = None
    t_render = time.perf_counter()
    try:
        for rec in _shots(n, args.seed, args.shadows):
            render_s += time.perf_counter() - t_render
            frames = rec.frames["overhead"]
            K = opencv_intrinsics(rec.K["overhead"], 640, 480)
            c0, w0 = time.process_time(), time.perf_counter()
            shot = track(frames, rec.times, K, rec.camera_pose["overhead"], geometry)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            frames_total += len(frames)
            if baseline is None:
                baseline = naive_fps(frames, geometry)
            scores.append(score_shot(rec, shot, geometry))
            scores[-1]["keyframes"] = keyframe_recall(rec, shot, frames)
            strikes = [e.t for e in shot.events if e.kind == "strike"]
            cue = cue_at(view, rec, strikes[0], args.cue_frames) if strikes else None
            if cue is None:
                cue_lost += 1
            else:
                cue_errs.append(cue)
            _progress(scores, n, cue_errs, time.perf_counter() - t_start)
            t_render = time.perf_counter()
    finally:
        view.close()

    pos = np.concatenate([s["pos_err"] for s in scores])
    pots = np.sum([s["pots"] for s in scores], axis=0)
    bb = np.sum([s["bb"] for s in scores], axis=0)
    cu = np.sum([s["cushion"] for s in scores], axis=0)
    pot_p, pot_r, pot_f1 = _prf(*pots)
    bb_p, bb_r, _ = _prf(*bb)
    cu_p, cu_r, _ = _prf(*cu)
    fps = frames_total / max(cpu, 1e-9)
    result = {
        "shots": len(scores), "frames": frames_total, "camera": "overhead", "resolution": [640, 480],
        "shadows": bool(args.shadows),
        "ball_pos_err_mm_median": float(np.median(pos)),
        "ball_pos_err_mm_p90": float(np.percentile(pos, 90)),
        "ball_pos_err_mm_max": float(pos.max()),
        "ball_detect_rate": sum(s["reported"] for s in scores) / max(sum(s["on_cloth"] for s in scores), 1),
        "first_hit_accuracy": float(np.mean([s["first_hit"] == s["first_hit_gt"] for s in scores])),
        "shots_with_a_first_hit": int(sum(s["first_hit_gt"] is not None for s in scores)),
        "pots_true": int(pots[0]), "pots_perceived": int(pots[1]), "pots_matched": int(pots[2]),
        "pot_precision": pot_p, "pot_recall": pot_r, "pot_f1": pot_f1,
        "pot_time_err_s_median": _median(sum((s["pot_dt"] for s in scores), [])),
        "strike_time_err_s_median": _median(sum((s["strike_dt"] for s in scores), [])),
        "ball_ball_recall": bb_r, "ball_ball_precision": bb_p,
        "cushion_recall": cu_r, "cushion_precision": cu_p,
        "cue_camera": "player (RGB-D)", "cue_frames": args.cue_frames,
        "cue_dir_err_deg_median": _median([c["axis_deg"] for c in cue_errs]),
        "cue_dir_err_deg_p90": float(np.percentile([c["axis_deg"] for c in cue_errs], 90)) if cue_errs else None,
        "cue_yaw_err_deg_median": _median([c["yaw_deg"] for c in cue_errs]),
        "cue_tip_err_mm_median": _median([c["tip_mm"] for c in cue_errs]),
        "cue_lost": cue_lost,
        "fps": fps, "fps_wall": frames_total / max(wall, 1e-9),
        "baseline_naive_fps": baseline, "fps_ratio_vs_naive": fps / baseline if baseline else None,
        "realtime_ratio": fps / VIDEO_FPS,
        "render_and_sim_seconds": render_s,
    }
    recall = {}
    for name in ("uniform", "motion", "events"):
        hits = sum((s["keyframes"].get(name, []) for s in scores), [])
        recall[name] = float(np.mean(hits)) if hits else None
    result[f"keyframe_event_recall_at_{KEYFRAME_BUDGET}"] = recall
    if recall.get("uniform"):
        result["keyframe_recall_ratio_events_vs_uniform"] = recall["events"] / recall["uniform"]
    cue_med = result["cue_dir_err_deg_median"]
    result["targets"] = {
        "ball_pos_err_mm_median<=5": result["ball_pos_err_mm_median"] <= 5.0,
        "first_hit_accuracy>=0.95": result["first_hit_accuracy"] >= 0.95,
        "pot_f1>=0.97": pot_f1 >= 0.97,
        "pot_time_err_s_median<=0.07": (result["pot_time_err_s_median"] is not None
                                        and result["pot_time_err_s_median"] <= 0.07),
        "cue_dir_err_deg_median<=1": cue_med is not None and cue_med <= 1.0,
        "fps>=30": fps >= 30.0,
    }
    result["seconds"] = time.perf_counter() - t_start
    return result
