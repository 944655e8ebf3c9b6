"""Look inside a LeRobot v3 dataset before training on it: ``describe`` (what `embodied dataset info`
prints) and ``check`` (the validation `embodied dataset check` runs).

``check`` separates errors (the data is wrong or unreadable: training on it would learn garbage or
crash hours in) from warnings (legal but worth a look). Errors:

* NaN or infinite values in any numeric feature, or in ``stats.json``;
* timestamps that do not increase within an episode; ``frame_index`` not 0, 1, 2...;
* episode lengths that disagree with the data file or with ``total_frames``; a global ``index``
  that does not run from the episode's ``dataset_from_index``;
* video files whose frame count is smaller than the parquet says (header count per file, and the
  episode's ``from_timestamp``..``to_timestamp`` span); a missing or unreadable file;
* actions outside the ``[min, max]`` of the statistics (the statistics describe other data).

Warnings: constant state/action dimensions (a joint never moves, a sensor is dead); idle frames
(state and action unchanged from the previous frame) above 5 % of the data; duplicate frames
(every numeric value identical to the previous frame's); timestamp steps far from 1/fps;
statistics the reader had to compute. With ``decode=True`` every camera frame is decoded too,
which finds corrupt streams and frozen cameras (the same image while the robot moves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.dataset_layout import INDEX_COLUMNS, camera_name
from sim.dataset_reader import LeRobotDataset
from sim.errors import SimError
from sim.video import video_info

IDLE_TOLERANCE = 1e-3  # a step smaller than this share of a dimension's range counts as no motion
IDLE_WARN_SHARE = 0.05  # warn when more than this share of all frames is idle
FROZEN_LEVEL = 0.5  # mean absolute pixel change (0..255) below which two decoded frames are "the same"
FROZEN_WARN_SHARE = 0.1  # warn when a camera is frozen in this share of an episode's frames (and >= 3)


@dataclass
class Finding:
    level: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def dim_names(ds: LeRobotDataset, key: str) -> list[str]:
    """Per-dimension names of a numeric feature: its ``names`` when given, else ``key[j]``."""
    feat = ds.features.get(key, {})
    n = int(np.prod(feat.get("shape", [1])))
    names = feat.get("names")
    if isinstance(names, dict):  # older LeRobot: {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == n and all(isinstance(x, str) for x in names):
        return list(names)
    return [f"{key}[{j}]" for j in range(n)]


def _video_header(ds: LeRobotDataset, key: str) -> dict[str, Any]:
    try:
        return video_info(ds.video_path(0, key))
    except SimError as exc:
        return {"error": str(exc)}


def describe(ds: LeRobotDataset) -> dict[str, Any]:
    """Episodes, frames, fps, features (shape, dtype, codec), tasks with counts, per-dimension stats."""
    lengths = [ds.episode_length(i) for i in range(ds.num_episodes)]
    tasks: dict[str, dict[str, int]] = {}
    for i, n in enumerate(lengths):
        entry = tasks.setdefault(ds.episode_task(i), {"episodes": 0, "frames": 0})
        entry["episodes"] += 1
        entry["frames"] += n
    features = []
    for key, feat in ds.features.items():
        row: dict[str, Any] = {"key": key, "dtype": feat.get("dtype"), "shape": list(feat.get("shape", []))}
        if feat.get("dtype") == "video":
            header = _video_header(ds, key)
            vinfo = feat.get("info") or {}
            # info.json names the codec (av1); the file header names the decoder PyAV uses (libdav1d)
            row.update(codec=vinfo.get("video.codec") or header.get("codec"), decoder=header.get("codec"),
                       pix_fmt=vinfo.get("video.pix_fmt"), camera=camera_name(key))
            if "error" in header:
                row["error"] = header["error"]
        elif feat.get("dtype") == "image":
            row.update(codec="image in parquet", camera=camera_name(key))
        elif key not in INDEX_COLUMNS:
            row["names"] = dim_names(ds, key)
        features.append(row)
    stats = {key: {s: ds.stats[key].get(s) for s in ("min", "max", "mean", "std", "q01", "q99")}
             for key in ds.numeric_keys if key not in INDEX_COLUMNS and key in ds.stats}
    return {
        "root": str(ds.root), "codebase_version": ds.info.get("codebase_version"),
        "robot_type": ds.info.get("robot_type"), "episodes": ds.num_episodes, "frames": ds.num_frames,
        "fps": ds.fps, "duration_s": round(ds.num_frames / float(ds.fps), 3),
        "episode_length": {"min": min(lengths), "mean": round(float(np.mean(lengths)), 2), "max": max(lengths)},
        "features": features,
        "tasks": [{"task": t, **c} for t, c in sorted(tasks.items(), key=lambda kv: -kv[1]["episodes"])],
        "stats": stats, "stats_computed": ds.stats_computed,
    }


def format_description(d: dict[str, Any]) -> str:
    """``describe``'s dict as the text `embodied dataset info` prints."""
    lines = [f"dataset    {d['root']}  (LeRobot {d['codebase_version']}, robot {d['robot_type'] or '-'})",
             f"episodes   {d['episodes']}  (length min {d['episode_length']['min']}, mean "
             f"{d['episode_length']['mean']}, max {d['episode_length']['max']})",
             f"frames     {d['frames']}  at {d['fps']} fps ({d['duration_s']:.1f} s)", "features"]
    for f in d["features"]:
        extra = ""
        if "codec" in f:
            extra = (f"  {f['codec']}" + (f" {f['pix_fmt']}" if f.get("pix_fmt") else "")
                     + (f", decoder {f['decoder']}" if f.get("decoder") else "") + f"  (camera {f['camera']!r})")
        if f.get("error"):
            extra += f"  ERROR {f['error']}"
        lines.append(f"  {f['key']:<32s} {f['dtype']:<8s} {str(f['shape']):<14s}{extra}")
    lines.append(f"tasks ({len(d['tasks'])})")
    for t in d["tasks"]:
        lines.append(f"  {t['episodes']:>5d} episodes {t['frames']:>7d} frames  \"{t['task']}\"")
    note = (f" (computed from the data: {', '.join(k for k in d['stats_computed'] if k not in INDEX_COLUMNS)})"
            if d["stats_computed"] else "")
    lines.append(f"statistics per dimension{note}")
    for key, st in d["stats"].items():
        names = next((f.get("names") for f in d["features"] if f["key"] == key), None) or []
        lines.append(f"  {key}")
        lines.append(f"    {'dimension':<24s} {'min':>10s} {'max':>10s} {'mean':>10s} {'std':>10s} "
                     f"{'q01':>10s} {'q99':>10s}")
        for j, name in enumerate(names or [f"[{j}]" for j in range(len(st['mean'] or []))]):
            vals = [st[s][j] if st.get(s) is not None and j < len(st[s]) else float("nan")
                    for s in ("min", "max", "mean", "std", "q01", "q99")]
            lines.append(f"    {name:<24s} " + " ".join(f"{float(v):>10.4g}" for v in vals))
    return "\n".join(lines)


# --------------------------------------------------------------------------- check

def _some(idx: np.ndarray, k: int = 5) -> str:
    items = [str(int(x)) for x in np.asarray(idx).reshape(-1)[:k]]
    return ", ".join(items) + (", ..." if np.size(idx) > k else "")


def _check_stats(ds: LeRobotDataset, out: list[Finding]) -> None:
    for key in ds.numeric_keys:
        st = ds.stats.get(key, {})
        for name in ("min", "max", "mean", "std", "q01", "q99"):
            values = np.asarray(st.get(name, []), dtype=np.float64)
            if values.size and not np.isfinite(values).all():
                out.append(Finding("error", f"stats.json {key}.{name} holds NaN or infinite values"))
        if key in INDEX_COLUMNS or "min" not in st:
            continue
        lo, hi = np.asarray(st["min"], np.float64).reshape(-1), np.asarray(st["max"], np.float64).reshape(-1)
        names = dim_names(ds, key)
        const = np.flatnonzero(lo == hi)
        if const.size:
            which = ", ".join(f"{names[j]} = {lo[j]:.4g}" for j in const[:6] if j < len(names))
            out.append(Finding("warning", f"{key}: {const.size} constant dimension(s) in every frame ({which})"))
    if ds.stats_computed:
        out.append(Finding("warning", "meta/stats.json is missing or incomplete; statistics of "
                           f"{', '.join(ds.stats_computed)} were computed from the data for this check"))


def _check_episode(ds: LeRobotDataset, i: int, ep: dict[str, Any], out: list[Finding]) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode checks on the numeric columns; returns the idle and duplicate masks."""
    meta = ds.episode_meta(i)
    n = int(meta["length"])
    for key in ds.numeric_keys:
        if key not in ep:
            out.append(Finding("error", f"episode {i}: feature {key} is in info.json but not in the data file"))
            continue
        values = np.asarray(ep[key])
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = np.flatnonzero(~np.isfinite(values.reshape(n, -1)).all(1))
            dims = np.flatnonzero(~np.isfinite(values.reshape(n, -1)).all(0))
            out.append(Finding("error", f"episode {i}: {key} has NaN/inf at frames {_some(bad)} "
                               f"(dimensions {_some(dims)})"))
    if "timestamp" in ep and n > 1:
        dt = np.diff(np.asarray(ep["timestamp"], np.float64))
        if (dt <= 0).any():
            out.append(Finding("error", f"episode {i}: timestamps not increasing at frames {_some(np.flatnonzero(dt <= 0) + 1)}"))
        elif (np.abs(dt - 1.0 / ds.fps) > 0.5 / ds.fps).any():
            out.append(Finding("warning", f"episode {i}: timestamp steps differ from 1/fps = {1 / ds.fps:.4g} s at "
                               f"frames {_some(np.flatnonzero(np.abs(dt - 1 / ds.fps) > 0.5 / ds.fps) + 1)}"))
    if "frame_index" in ep and not np.array_equal(ep["frame_index"], np.arange(n)):
        out.append(Finding("error", f"episode {i}: frame_index is not 0..{n - 1}"))
    if "index" in ep and "dataset_from_index" in meta:
        want = np.arange(int(meta["dataset_from_index"]), int(meta["dataset_from_index"]) + n)
        if not np.array_equal(ep["index"], want):
            out.append(Finding("error", f"episode {i}: index does not run from dataset_from_index "
                               f"{meta['dataset_from_index']}"))
    # actions against the statistics' range
    st = ds.stats.get("action", {})
    if "action" in ep and "min" in st and "action" not in ds.stats_computed:
        a = np.asarray(ep["action"], np.float64).reshape(n, -1)
        lo, hi = np.asarray(st["min"], np.float64), np.asarray(st["max"], np.float64)
        slack = 1e-6 * (1 + np.maximum(np.abs(lo), np.abs(hi)))
        outside = (a < lo - slack) | (a > hi + slack)
        if outside.any():
            names = dim_names(ds, "action")
            dims = np.flatnonzero(outside.any(0))
            out.append(Finding("error", f"episode {i}: {int(outside.any(1).sum())} action(s) outside the statistics' "
                               f"[min, max] in {', '.join(names[j] for j in dims[:6])} (stats.json describes other data)"))
    # idle and duplicate frames
    moving = [k for k in ("observation.state", "action") if k in ep]
    idle = np.zeros(max(n - 1, 0), bool)
    if moving and n > 1:
        idle[:] = True
        for key in moving:
            x = np.asarray(ep[key], np.float64).reshape(n, -1)
            st = ds.stats.get(key, {})
            scale = (np.asarray(st["max"], np.float64) - np.asarray(st["min"], np.float64)) if "min" in st else np.ptp(x, 0)
            step = np.abs(np.diff(x, axis=0)) / np.maximum(scale, 1e-9)
            idle &= (step < IDLE_TOLERANCE).all(1)
    dup = np.zeros(max(n - 1, 0), bool)
    values = [np.asarray(ep[k]).reshape(n, -1) for k in ds.numeric_keys if k in ep and k not in INDEX_COLUMNS]
    if values and n > 1:
        x = np.concatenate([v.astype(np.float64) for v in values], axis=1)
        dup = (x[1:] == x[:-1]).all(1)
    return idle, dup


def _check_videos(ds: LeRobotDataset, out: list[Finding]) -> None:
    """Per video file: the header's frame count against the parquet; per episode: the time span."""
    for key in ds.video_keys:
        expected: dict[Any, int] = {}
        for i in range(ds.num_episodes):
            try:
                path = ds.video_path(i, key)
            except SimError as exc:
                out.append(Finding("error", str(exc)))
                continue
            meta = ds.episode_meta(i)
            n = int(meta["length"])
            expected[path] = expected.get(path, 0) + n
            lo, hi = meta.get(f"videos/{key}/from_timestamp"), meta.get(f"videos/{key}/to_timestamp")
            if lo is not None and hi is not None and round((hi - lo) * ds.fps) < n:
                out.append(Finding("error", f"episode {i}: {key} spans {hi - lo:.3f} s of video "
                                   f"({round((hi - lo) * ds.fps)} frames) for {n} frames in the parquet"))
        for path, n in expected.items():
            try:
                header = video_info(path)
            except SimError as exc:
                out.append(Finding("error", str(exc)))
                continue
            if header["frames"] and header["frames"] < n:
                out.append(Finding("error", f"video {path} has {header['frames']} frames, the parquet has {n} "
                                   f"for the episodes stored in it"))


def check(ds: LeRobotDataset, decode: bool = False) -> list[Finding]:
    """Every finding, errors first; an unreadable episode is a finding, not an exception."""
    out: list[Finding] = []
    _check_stats(ds, out)
    total, idle_n, dup_eps, idle_eps = 0, 0, [], []
    for i in range(ds.num_episodes):
        try:
            ep = ds.episode(i, decode_video=False)
            total += len(ep.get("index", ep.get("frame_index", [])))
            idle, dup = _check_episode(ds, i, ep, out)
        except SimError as exc:
            out.append(Finding("error", f"episode {i}: {exc}"))
            continue
        idle_n += int(idle.sum())
        if idle.any():
            idle_eps.append(i)
        if dup.any():
            dup_eps.append((i, int(dup.sum())))
        if decode:
            for key in ds.camera_keys:
                try:
                    frames = ds.episode_frames(i, key).astype(np.int16)
                except SimError as exc:
                    out.append(Finding("error", f"episode {i}: {exc}"))
                    continue
                if len(frames) > 1:
                    # the image stays the same while the robot moves (an arm at rest may look the same)
                    same = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3)) < FROZEN_LEVEL
                    frozen = int((same & ~idle).sum()) if len(idle) == len(same) else int(same.sum())
                    if frozen >= max(3, FROZEN_WARN_SHARE * len(frames)):
                        out.append(Finding("warning", f"episode {i}: camera {camera_name(key)} shows the same "
                                           f"image in {frozen} of {len(frames)} frames while the robot moves "
                                           "(frozen camera?)"))
    if total != ds.num_frames:
        out.append(Finding("error", f"info.json says {ds.num_frames} frames, the episodes hold {total}"))
    if total and idle_n / total > IDLE_WARN_SHARE:
        out.append(Finding("warning", f"{idle_n} of {total} frames ({100 * idle_n / total:.0f} %) are idle: state "
                           f"and action unchanged from the previous frame (episodes {_some(np.array(idle_eps))})"))
    if dup_eps:
        n_dup = sum(c for _, c in dup_eps)
        out.append(Finding("warning", f"{n_dup} duplicate frame(s), every value identical to the previous frame "
                           f"(episodes {_some(np.array([e for e, _ in dup_eps]))})"))
    _check_videos(ds, out)
    return sorted(out, key=lambda f: f.level != "error")
