"""`embodied bench world`: the scene perceiver against the simulator's state, and the operator's
questions answered from perception against the same questions answered from the truth.

Scenes: for each task family (reach, pick_up, push, put_in), ``--scenes`` episodes with 0-3
distractors, each followed along a rollout (so the arm is in view, reaching into the scene,
carrying objects) with a frame every ``--stride`` control steps (10 Hz). Each frame renders the
agent-view and wrist cameras (RGB + depth, ``--size`` pixels square) and feeds both to one
``ScenePerceiver`` per episode (identities are tracked through the episode).

Rollouts: the scripted expert drives every scene of a family the policy was not trained on; in
the families it was (``--policy-families``, the shipped checkpoint's Reach and PickUp), a share
``--policy-share`` of the scenes is driven by the policy instead (``--policy``, default the
shipped checkpoint; ``none``: experts only). A policy's rollout is not an expert's: it hesitates,
misses, nudges objects and sometimes fails, which is what the perceiver meets on the live path.
The policy reads the same camera frames as the perceiver, resized to its own input size with
``perception.image.resize_images`` (as ``agent.agent.Agent.policy_observation`` does), through a
``policy.executor.ChunkExecutor``. The JSON says per family which drove it (``rollouts``:
``expert`` | ``expert+policy``), gives every metric per driver too (``by_rollout``: ``expert``,
``policy``, overall and per family) and the policy's task success on its scenes.

Scoring, per frame: perceived objects (every listed one, including ones remembered while hidden)
are paired with true ones by the minimum-cost assignment on 3-D distance within ``MATCH_GATE``.
Precision is paired / listed; recall is paired / visible, where a true object is visible when at
least ``VISIBLE_PIXELS`` of it show in either camera (the renderer's segmentation; an object
completely inside the hand or behind the arm cannot be seen, and ``recall_all`` counts those too).
Colour, shape and (cubes) yaw are scored on the pairs; an identity switch is a true object paired
with a different track id than the last time it was paired. Receptacles are scored apart (their
recall over the frames where one shows in either camera).
Agent level: each frame asks "what do you see", "where is X", "is X left of Y" and "is there a Z"
(Z present or absent, half and half), answered by ``perception.scene.answers`` from the percept
and from the truth; ``agent_answer_agreement`` is the share that agree ("where": within 3 cm).
Frames/s: ``perceive()`` alone (rendering excluded) on one frame = both cameras, which runs
single-threaded: OpenCV at one thread and BLAS at one thread
(``perception.threads.single_threaded``), numpy's element-wise work is single-threaded
anyway. ``fps`` divides the frames by the CPU time the calls used (``time.process_time``): what
one dedicated core does, also on a shared machine; ``fps_wall`` divides by wall time, and
``cpu_per_wall`` (at most 1 when one core was used) says how much of a core the calls got.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common.errors import UserError

DESCRIPTION = "scene perceiver (objects, receptacles, identities) and operator answers vs sim state"
FAMILIES = ("reach", "pick_up", "push", "put_in")
MATCH_GATE = 0.05  # m
VISIBLE_PIXELS = 10
CAMERAS = ("agentview", "wrist")
DEFAULT_POLICY = "checkpoints/vla-default"
POLICY_FAMILIES = ("reach", "pick_up")  # what the shipped checkpoint was trained on (its eval.json)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenes", type=int, default=None, help="episodes per family (quick: 15, else 100)")
    p.add_argument("--stride", type=int, default=None,
                   help="control steps between scored frames (quick: 3, else 2)")
    p.add_argument("--size", type=int, default=128, help="camera images are SIZE x SIZE (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="first episode seed (default: 0)")
    p.add_argument("--cameras", default=",".join(CAMERAS),
                   help="comma-separated cameras fed to the perceiver (default: agentview,wrist)")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help=f"comma-separated task families to run (default: {','.join(FAMILIES)})")
    p.add_argument("--policy", default=None, metavar="CKPT",
                   help=f"policy checkpoint driving some scenes of --policy-families (default: {DEFAULT_POLICY} "
                        "when it exists; 'none': the scripted experts drive every scene)")
    p.add_argument("--policy-families", default=",".join(POLICY_FAMILIES),
                   help="families the policy was trained on; the others keep the expert "
                        f"(default: {','.join(POLICY_FAMILIES)}, the shipped checkpoint's)")
    p.add_argument("--policy-share", type=float, default=0.5,
                   help="share of those families' scenes the policy drives, 0..1 (default: 0.5)")


def _truth(env, seg: dict[str, np.ndarray]):
    """True objects and receptacle as perception types, and which object ids are visible."""
    from perception.scene.types import Receptacle, SceneObject
    from sim.tabletop import scene as sc

    objects, visible = [], set()
    for obj in env.episode.objects:
        i = env.ids.object_names.index(obj.slot)
        q = env.object_quat(obj.slot)
        yaw = None
        if obj.shape == "cube":
            yaw = float((2 * np.arctan2(q[3], q[0]) + np.pi / 4) % (np.pi / 2) - np.pi / 4)
        w = 2 * (sc.CUBE_HALF if obj.shape == "cube" else sc.CYL_RADIUS)
        objects.append(SceneObject(id=i, color=obj.color, shape=obj.shape,
                                   position=tuple(env.object_pos(obj.slot).tolist()),
                                   size=(w, w, 2 * sc.half_height(obj.shape)), yaw=yaw))
        geom = int(env.ids.object_geoms[i])
        if any(int((s == geom).sum()) >= VISIBLE_PIXELS for s in seg.values()):
            visible.add(i)
    recs = []
    if env.episode.receptacle is not None:
        kind = env.episode.receptacle
        recs.append(Receptacle(kind, tuple(env.receptacle_pos().tolist()),
                               sc.BOWL_RADIUS if kind == "bowl" else sc.PLATE_RADIUS))
        body = env.model.body(kind).id
        geoms = np.flatnonzero(env.model.geom_bodyid == body)
        if any(int(np.isin(s, geoms).sum()) >= VISIBLE_PIXELS for s in seg.values()):
            visible.add(kind)
    return objects, recs, visible


def _questions(rng: np.random.Generator, objects, recs) -> list[tuple[str, ...]]:
    from perception.scene.answers import describe
    from sim.tabletop import scene as sc
    from sim.tabletop.tasks import COLORS

    qs: list[tuple[str, ...]] = [("see",)]
    items = list(objects) + list(recs)
    if items:
        qs.append(("where", describe(items[int(rng.integers(len(items)))])))
    if len(objects) >= 2:
        a, b = rng.choice(len(objects), 2, replace=False)
        qs.append(("left", describe(objects[a]), describe(objects[b])))
    present = {describe(o) for o in objects}
    if rng.random() < 0.5 and present:
        qs.append(("there", sorted(present)[int(rng.integers(len(present)))]))
    else:
        absent = sorted(f"{c} {s}" for c in COLORS for s in sc.SHAPES if f"{c} {s}" not in present)
        qs.append(("there", absent[int(rng.integers(len(absent)))]))
    return qs


def _yaw_err(a: float, b: float) -> float:
    d = (a - b + np.pi / 4) % (np.pi / 2) - np.pi / 4
    return abs(float(d))


class _Score:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.visible = self.tp_visible = self.all_truth = 0
        self.color_ok = self.shape_ok = 0
        self.pos_err: list[float] = []
        self.yaw_err: list[float] = []
        self.rec_tp = self.rec_fp = self.rec_visible = self.rec_tp_visible = 0
        self.rec_err: list[float] = []
        self.id_switches = 0
        self.frames = 0
        self.nothing_here = 0
        self.answers: dict[str, list[bool]] = {}

    def frame(self, percept, truth, recs, visible, last_ids: dict[int, int]) -> None:
        from perception.scene.track import assign

        self.frames += 1
        if not percept.ok:
            self.nothing_here += 1
        seen = list(percept.objects)
        cost = np.array([[np.linalg.norm(np.subtract(p.position, t.position)) for t in truth]
                         for p in seen]).reshape(len(seen), len(truth))
        pairs = assign(cost, MATCH_GATE)
        paired_truth = {j for _, j in pairs}
        self.tp += len(pairs)
        self.fp += len(seen) - len(pairs)
        self.visible += sum(1 for t in truth if t.id in visible)
        self.all_truth += len(truth)
        self.tp_visible += sum(1 for _, j in pairs if truth[j].id in visible)
        self.fn += sum(1 for j, t in enumerate(truth) if t.id in visible and j not in paired_truth)
        for i, j in pairs:
            p, t = seen[i], truth[j]
            self.color_ok += p.color == t.color
            self.shape_ok += p.shape == t.shape
            self.pos_err.append(1000.0 * float(cost[i, j]))
            if t.shape == "cube" and p.yaw is not None:
                self.yaw_err.append(np.degrees(_yaw_err(p.yaw, t.yaw)))
            if t.id in last_ids and last_ids[t.id] != p.id:
                self.id_switches += 1
            last_ids[t.id] = p.id
        # receptacles: at most one per scene, paired by kind and distance
        for r in percept.receptacles:
            match = [t for t in recs if t.kind == r.kind and
                     np.linalg.norm(np.subtract(r.position, t.position)[:2]) < MATCH_GATE]
            if match:
                self.rec_tp += 1
                self.rec_err.append(1000.0 * float(np.linalg.norm(
                    np.subtract(r.position, match[0].position)[:2])))
            else:
                self.rec_fp += 1
        recs = [t for t in recs if t.kind in visible]
        self.rec_visible += len(recs)
        self.rec_tp_visible += sum(1 for t in recs if any(
            r.kind == t.kind and np.linalg.norm(np.subtract(r.position, t.position)[:2]) < MATCH_GATE
            for r in percept.receptacles))

    def ask(self, percept, truth, recs, questions) -> None:
        from perception.scene.answers import answer, same_answer

        mine = list(percept.objects) + list(percept.receptacles)
        true = list(truth) + list(recs)
        for q in questions:
            self.answers.setdefault(q[0], []).append(same_answer(q[0], answer(mine, q), answer(true, q)))

    def result(self) -> dict:
        def ratio(a, b):
            return float(a / b) if b else None

        def pct(x, q):
            return float(np.percentile(x, q)) if x else None

        all_answers = [a for v in self.answers.values() for a in v]
        return {
            "frames": self.frames,
            "precision": ratio(self.tp, self.tp + self.fp),
            "recall": ratio(self.tp_visible, self.visible),
            "recall_all": ratio(self.tp, self.all_truth),
            "color_accuracy": ratio(self.color_ok, self.tp),
            "shape_accuracy": ratio(self.shape_ok, self.tp),
            "position_err_mm_median": pct(self.pos_err, 50),
            "position_err_mm_p90": pct(self.pos_err, 90),
            "yaw_err_deg_median": pct(self.yaw_err, 50),
            "id_switches_per_100_frames": ratio(100.0 * self.id_switches, self.frames),
            "nothing_here_frames": self.nothing_here,
            "receptacle_precision": ratio(self.rec_tp, self.rec_tp + self.rec_fp),
            "receptacle_recall": ratio(self.rec_tp_visible, self.rec_visible),
            "receptacle_err_mm_median": pct(self.rec_err, 50),
            "agent_answer_agreement": ratio(sum(all_answers), len(all_answers)),
            "agent_answer_agreement_by_question": {
                k: ratio(sum(v), len(v)) for k, v in sorted(self.answers.items())},
            "questions": len(all_answers),
        }


def _print_table(per_family: dict[str, _Score]) -> None:
    """The human summary, on stderr (the JSON is the last thing on stdout)."""
    cols = ("precision", "recall", "color_accuracy", "shape_accuracy", "position_err_mm_median",
            "position_err_mm_p90", "agent_answer_agreement")
    print(f"{'family':8s} {'frames':>6s} " + " ".join(f"{c[:14]:>14s}" for c in cols), file=sys.stderr)
    for family, score in per_family.items():
        r = score.result()
        cells = " ".join(f"{r[c]:14.3f}" if r[c] is not None else f"{'-':>14s}" for c in cols)
        print(f"{family:8s} {r['frames']:6d} {cells}", file=sys.stderr)


def _load_policy(args: argparse.Namespace):
    """``(executor, spec)`` of the policy that drives some scenes, or ``(None, {})`` for experts only."""
    from pathlib import Path

    path = getattr(args, "policy", None)
    if path is not None and path.lower() == "none":
        return None, {}
    if path is None:
        if not Path(DEFAULT_POLICY).is_dir():
            print(f"world bench: no policy at {DEFAULT_POLICY}; the scripted experts drive every scene",
                  file=sys.stderr)
            return None, {}
        path = DEFAULT_POLICY
    if not Path(path).is_dir():
        raise UserError(f"no policy checkpoint at {path} (or --policy none for experts only)")
    from policy.backends import load_policy
    from policy.executor import ChunkExecutor

    policy = load_policy(path)
    spec = policy.describe()
    return ChunkExecutor(policy), {**spec, "checkpoint": str(path)}


def _policy_drives(ep: int, share: float) -> bool:
    """Spread the policy's scenes evenly: scene ``ep`` is the policy's when the running count of
    ``share * scenes`` steps up there (share 0.5: scenes 1, 3, 5, ...)."""
    return int((ep + 1) * share) > int(ep * share)


def run(args: argparse.Namespace) -> dict:
    import mujoco

    from perception.image import resize_images
    from perception.scene import CameraView, ScenePerceiver
    from sim import render
    from sim.tabletop.env import CONTROL_HZ, TabletopEnv
    from sim.tabletop.experts import make_expert

    n_scenes = args.scenes or (15 if args.quick else 100)
    stride = args.stride or (3 if args.quick else 2)
    size = int(args.size)
    cams = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    families = [f.strip() for f in getattr(args, "families", ",".join(FAMILIES)).split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    share = float(getattr(args, "policy_share", 0.5))
    if unknown or not families:
        raise UserError(f"--families takes some of {', '.join(FAMILIES)}, got {', '.join(unknown) or 'none'}")
    if not 0.0 <= share <= 1.0:  # also refuses NaN
        raise UserError(f"--policy-share takes a share in 0..1, got {share}")
    policy_families = set(f.strip() for f in getattr(args, "policy_families", ",".join(POLICY_FAMILIES)).split(","))
    policy_families &= set(families)
    executor, spec = None, {}
    if policy_families and any(_policy_drives(ep, share) for ep in range(n_scenes)):
        executor, spec = _load_policy(args)
    if executor is None:
        policy_families = set()
    policy_cams = tuple(spec.get("cameras") or ())
    policy_size = spec.get("image_size")
    total, per_family = _Score(), {}
    by_rollout = {"expert": _Score(), "policy": _Score()}
    family_by_rollout: dict[str, dict[str, _Score]] = {}
    rollouts: dict[str, str] = {}
    policy_success: dict[str, list[bool]] = {}
    wall = cpu = 0.0
    calls = 0
    t_start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    for family in families:
        f_i = FAMILIES.index(family)
        env = TabletopEnv(family, cameras=(), image_size=(size, size))
        cameras = render.Cameras(env.model, tuple(dict.fromkeys(cams + policy_cams)), size, size, depth=True)
        seg_r = mujoco.Renderer(env.model, size, size)
        seg_r.enable_segmentation_rendering()
        score = per_family[family] = _Score()
        mine = family_by_rollout[family] = {"expert": _Score(), "policy": _Score()}
        rollouts[family] = "expert+policy" if family in policy_families else "expert"
        for ep in range(n_scenes):
            seed = args.seed + 100_000 * f_i + ep
            state, info = env.reset(seed=seed)
            driver = "policy" if family in policy_families and _policy_drives(ep, share) else "expert"
            if driver == "policy":
                executor.reset(0)
                instruction = info["instruction"]
            else:
                expert = make_expert(env, seed=seed)
                expert.reset()
            perceiver = ScenePerceiver()
            last_ids: dict[int, int] = {}
            last_ids_driver: dict[int, int] = {}
            step, done = 0, False
            while not done:
                scored = step % stride == 0
                # The policy sees every step; the experts need frames only where they are scored.
                obs = cameras.render(env.data) if scored or driver == "policy" else None
                if scored:
                    stamp = step / CONTROL_HZ
                    views = [CameraView(c, obs[c], obs[c + "_depth"], env.camera_intrinsics(c),
                                        env.camera_pose(c), stamp) for c in cams]
                    seg = {}
                    for c in CAMERAS:
                        seg_r.update_scene(env.data, camera=c)
                        seg[c] = seg_r.render()[..., 0]
                    w0, c0 = time.perf_counter(), time.process_time()
                    percept = perceiver.perceive(views)
                    wall += time.perf_counter() - w0
                    cpu += time.process_time() - c0
                    calls += 1
                    truth, recs, visible = _truth(env, seg)
                    qs = _questions(rng, truth, recs)
                    for s, ids in ((score, last_ids), (total, {}), (mine[driver], last_ids_driver),
                                   (by_rollout[driver], {})):
                        s.frame(percept, truth, recs, visible, ids)
                        s.ask(percept, truth, recs, qs)
                if driver == "policy":
                    seen = {c: resize_images(obs[c], policy_size) if policy_size else obs[c] for c in policy_cams}
                    action = executor.act([{**seen, "state": state["state"]}], [instruction], indices=[0])[0]
                else:
                    action = expert.act()
                state, _, term, trunc, info = env.step(action)
                done = term or trunc
                step += 1
            if driver == "policy":
                policy_success.setdefault(family, []).append(bool(info.get("success", False)))
        seg_r.close()
        cameras.close()
        env.close()
    _print_table({**per_family, **{f"[{k}]": v for k, v in by_rollout.items() if v.frames}})
    # id switches are counted per family (last_ids live there); the totals sum them
    total.id_switches = sum(s.id_switches for s in per_family.values())
    for driver, s in by_rollout.items():
        s.id_switches = sum(f[driver].id_switches for f in family_by_rollout.values())
    result = total.result()
    result.update({
        "fps": calls / cpu if cpu else None,
        "fps_wall": calls / wall if wall else None,
        "cpu_per_wall": cpu / wall if wall else None,
        "resolution": f"{size}x{size}",
        "cameras": list(cams),
        "scenes_per_family": n_scenes,
        "stride_steps": stride,
        "rollouts": rollouts,
        "policy": spec.get("checkpoint"),
        "policy_image_size": policy_size,
        "policy_share": share if policy_families else 0.0,
        "policy_success": {k: float(np.mean(v)) for k, v in policy_success.items()},
        "by_rollout": {k: v.result() for k, v in by_rollout.items() if v.frames},
        "per_family": {k: {**v.result(), "rollouts": rollouts[k],
                           "by_rollout": {d: s.result() for d, s in family_by_rollout[k].items() if s.frames}}
                       for k, v in per_family.items()},
        "seconds": time.perf_counter() - t_start,
    })
    return result
