"""Episodes on disk in the LeRobot v3 layout: our crash-safe writer (the reader, which also opens
datasets LeRobot wrote, is ``sim.dataset_reader.LeRobotDataset``, importable from here).

Layout under ``root`` (one file per episode, which the v3 templates allow: file_index follows the
episode index, so every episode is its own unit of commit)::

    meta/info.json                                 fps, features, totals, path templates
    meta/stats.json                                per feature: min max mean std count q01 q99
    meta/tasks.parquet                             task_index, task (the instruction text)
    meta/episodes/chunk-000/file-007.parquet    one row per episode: the COMMIT MARKER
    data/chunk-000/file-007.parquet             one row per frame
    videos/observation.images.<cam>/chunk-000/file-007.mp4
    gt/episode_000007.json / .npz                  ground truth (events, object poses, depth)

Crash safety. Every file is written to a temporary sibling (``.<name>.*.tmp``, by
``common.atomic``) and renamed into place; an episode's row in ``meta/episodes`` is renamed
LAST, so an episode exists exactly when its marker does.
``info.json``, ``stats.json`` and ``tasks.parquet`` are derived data, rewritten atomically after
every episode from the committed episodes only. Opening a writer on an existing directory keeps
the committed episodes, deletes temporary files and files of uncommitted episodes, and continues
at the next index. A lock file stops two writers from sharing one directory. With ``sync=True``
(the default) every episode file and its directory are fsynced before the marker is written, so
this holds across a power cut too, not only a process crash; ``sync=False`` trades that for speed
(about 10 ms per file on a slow disk).

Statistics (``sim.stats``). Each episode is summarised once when it is committed (exact moments,
min/max, a t-digest per numeric dimension, an exact 256-bin histogram per image channel) and folded
into a running aggregate, so writing ``stats.json`` after an episode costs the same at episode
5,000 as at episode 1. mean/std/min/max and all image statistics are exact; numeric q01/q99 are
exact on small datasets and t-digest estimates on large ones (see ``sim.stats``). The running
aggregate is not stored anywhere of its own: it is a function of the committed episodes, rebuilt
in episode order when a writer opens the directory (as the rest of the writer's state is), so after
any crash it describes exactly the episodes whose markers exist, bit for bit what one uninterrupted
run would have written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.atomic import atomic_path, write_json
from sim.dataset_layout import (ACTION_NAMES, CHUNKS_SIZE, CODEBASE_VERSION, DATA_PATH, EPISODES_PATH, GT_PATH,
                                IMAGE_PREFIX, INDEX_COLUMNS, VIDEO_PATH, chunk_file)
from sim.dataset_reader import LeRobotDataset
from sim.errors import SimError
from sim.stats import RunningStats, histogram_stats, image_histogram, numeric_stats, summarize_episode
from sim.video import VideoWriter, effective_pix_fmt, pick_codec

# The layout (paths, names) and the reader live in their own modules (``sim.dataset_layout``,
# ``sim.dataset_reader``); these names stay importable from here, as before the split.
__all__ = ["ACTION_NAMES", "CHUNKS_SIZE", "CODEBASE_VERSION", "DATA_PATH", "EPISODES_PATH", "GT_PATH",
           "IMAGE_PREFIX", "INDEX_COLUMNS", "VIDEO_PATH", "EpisodeRecorder", "LeRobotDataset", "LeRobotWriter",
           "committed_episode_indices"]
_chunk_file = chunk_file


def _is_no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _io_error(what: str, exc: OSError) -> SimError:
    reason = "disk full" if _is_no_space(exc) else (exc.strerror or str(exc))
    return SimError(f"cannot write {what}: {reason}")


# --------------------------------------------------------------------------- atomic file helpers
# Every file goes through common.atomic (temporary sibling renamed into place). With ``sync`` the
# file, then its directory, are fsynced around the rename, in call order, so an episode's files
# reach the disk in commit order (marker last).

def _write_parquet_atomic(path: Path, table: pa.Table, sync: bool, sync_dir: bool = True) -> None:
    with atomic_path(path, sync=sync, sync_dir=sync_dir) as tmp:
        pq.write_table(table, tmp)


def _fixed_list(values: np.ndarray) -> pa.Array:
    """``[T, D]`` array -> parquet fixed-size list column (exact round trip)."""
    values = np.ascontiguousarray(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


# --------------------------------------------------------------------------- writer

class LeRobotWriter:
    """Append episodes to a LeRobot v3 dataset at ``root``, resuming whatever is committed there.

    >>> writer = LeRobotWriter("data/pickup", fps=10, cameras=["agentview"], image_size=(128, 128),
    ...                        state_dim=9)
    >>> ep = writer.start_episode(task="pick up the red cube", seed=3)
    >>> ep.add_frame({"agentview": rgb}, state, action)   # once per kept step
    >>> ep.finish(success=True, ground_truth={"events": []})   # or ep.discard()
    """

    def __init__(self, root: str | Path, *, fps: int, cameras: Sequence[str],
                 image_size: tuple[int, int], state_dim: int, robot_type: str = "embodied_arm",
                 state_names: Sequence[str] | None = None, crf: int = 10, sync: bool = True,
                 pix_fmt: str = "yuv444p") -> None:
        self.root = Path(root)
        self.fps = int(fps)
        self.cameras = list(cameras)
        self.width, self.height = int(image_size[0]), int(image_size[1])
        self.state_dim = int(state_dim)
        self.robot_type = robot_type
        self.state_names = list(state_names) if state_names else [f"s{i}" for i in range(state_dim)]
        self.crf = crf
        # Full-resolution chroma and a low crf: small objects keep their colour (see sim.video).
        # Checked here, before anything is created on disk.
        self.pix_fmt = effective_pix_fmt(pix_fmt)
        self.sync = sync  # fsync files and directories: survive power cuts, not only process crashes
        self._seeds: list[int] = []  # per committed episode, in order (-1 where none was given)
        self._num_frames = 0
        self._stats = RunningStats()  # folded over the committed episodes, in order
        self._tasks: dict[str, int] = {}
        self._lock_fd: int | None = None
        self._recording: EpisodeRecorder | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock()
            self._recover()
        except OSError as exc:
            self.close()
            raise _io_error(f"dataset at {self.root}", exc) from exc
        except BaseException:
            self.close()
            raise

    # ---- opening: lock, scan, clean, reload
    def _lock(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise SimError(f"cannot write dataset at {self.root}: permission denied")
        self._lock_fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SimError(f"another process is writing the dataset at {self.root}") from None

    def _recover(self) -> None:
        info_path = self.root / "meta" / "info.json"
        markers = committed_episode_indices(self.root)
        if markers and info_path.is_file():
            self._check_compatible(json.loads(info_path.read_text()))
        if markers != list(range(len(markers))):
            raise SimError(f"dataset at {self.root} has gaps in its episode indices: {markers[:10]}...")
        _remove_uncommitted(self.root, len(markers), self.cameras)
        reader = LeRobotDataset(self.root, _partial=True) if markers else None
        for i in markers:  # the running statistics are rebuilt from the committed episodes only
            row = reader.episode_meta(i)
            self._tasks.setdefault(row["tasks"][0], int(row["task_index"]))
            self._stats.add_episode(*reader._stats_inputs(i))
            self._seeds.append(int(row["seed"]))
            self._num_frames += int(row["length"])
        self._write_meta()

    def _check_compatible(self, info: dict) -> None:
        feats = info.get("features", {})
        want_cams = sorted(IMAGE_PREFIX + c for c in self.cameras)
        have_cams = sorted(k for k in feats if k.startswith(IMAGE_PREFIX))
        problems = []
        if info.get("fps") != self.fps:
            problems.append(f"fps {info.get('fps')} != {self.fps}")
        if have_cams != want_cams:
            problems.append(f"cameras {have_cams} != {want_cams}")
        elif feats[want_cams[0]]["shape"] != [self.height, self.width, 3]:
            problems.append(f"image shape {feats[want_cams[0]]['shape']} != {[self.height, self.width, 3]}")
        if have_cams == want_cams:
            # A dataset keeps the pixel format it was started with (older ones are yuv420p), so
            # one dataset never mixes formats whatever the defaults of the resuming run.
            self.pix_fmt = feats[want_cams[0]].get("info", {}).get("video.pix_fmt", self.pix_fmt)
        if feats.get("observation.state", {}).get("shape") != [self.state_dim]:
            problems.append(f"state shape {feats.get('observation.state', {}).get('shape')} != {[self.state_dim]}")
        if problems:
            raise SimError(f"existing dataset at {self.root} was recorded differently ({'; '.join(problems)}); "
                           "choose another output directory")

    def close(self) -> None:
        """Release the directory lock (the process exiting does this too)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "LeRobotWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_episodes(self) -> int:
        return len(self._seeds)

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def episode_seeds(self) -> list[int]:
        """Seeds of the committed episodes in order (-1 where none was given): resume uses the last."""
        return list(self._seeds)

    def start_episode(self, task: str, seed: int | None = None, task_family: str = "") -> "EpisodeRecorder":
        """Begin recording the next episode; frames stream into temporary files until ``finish``.

        One episode at a time: the index is only known to be free once the previous one is
        committed or discarded.
        """
        if self._recording is not None and not self._recording.done:
            raise SimError(f"episode {self._recording.index} is still being recorded; finish or discard it first")
        self._recording = EpisodeRecorder(self, self.num_episodes, task, seed, task_family)
        return self._recording

    # ---- committing
    def _commit(self, rec: "EpisodeRecorder", success: bool, ground_truth: dict[str, Any]) -> int:
        ep = rec.index
        loc = _chunk_file(ep)
        n = len(rec.actions)
        task_index = self._tasks.get(rec.task, len(self._tasks))
        start = self.num_frames
        frame_index = np.arange(n, dtype=np.int64)
        numeric = {
            "observation.state": np.asarray(rec.states, dtype=np.float32).reshape(n, self.state_dim),
            "action": np.asarray(rec.actions, dtype=np.float32).reshape(n, len(ACTION_NAMES)),
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(n, ep, dtype=np.int64),
            "index": start + frame_index,
            "task_index": np.full(n, task_index, dtype=np.int64),
        }
        data = pa.table({k: (_fixed_list(v) if v.ndim == 2 else pa.array(v)) for k, v in numeric.items()})
        hists = {f"{IMAGE_PREFIX}{cam}": h for cam, h in rec.hists.items()}
        summary = summarize_episode(numeric)  # before the commit: nothing after the marker can fail
        written: list[Path] = []
        try:
            # 1. videos (already encoded into temporary files while recording; fsynced on close)
            for writer in rec.videos.values():
                writer.close()
                written.append(writer.path)
            # 2. frames
            data_path = self.root / DATA_PATH.format(**loc)
            _write_parquet_atomic(data_path, data, sync=self.sync)
            written.append(data_path)
            # 3. ground truth
            gt_base = self.root / GT_PATH.format(episode_index=ep)
            gt = {"events": [], **ground_truth, "episode_index": ep, "task": rec.task_family,
                  "instruction": rec.task, "seed": rec.seed, "success": bool(success), "length": n,
                  "fps": self.fps}
            gt_json = gt_base.with_suffix(".json")
            write_json(gt_json, gt, sync=self.sync)
            written.append(gt_json)
            if rec.gt_frames:
                gt_npz = gt_base.with_suffix(".npz")
                with atomic_path(gt_npz, sync=self.sync) as tmp, open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **{k: np.stack(v) for k, v in rec.gt_frames.items()})
                written.append(gt_npz)
            # 4. the commit marker, last
            row: dict[str, Any] = {
                "episode_index": ep, "tasks": [rec.task], "task_index": task_index,
                "task_family": rec.task_family, "length": n, "success": bool(success),
                "seed": -1 if rec.seed is None else int(rec.seed),
                "data/chunk_index": loc["chunk_index"], "data/file_index": loc["file_index"],
                "dataset_from_index": start, "dataset_to_index": start + n,
                "meta/episodes/chunk_index": loc["chunk_index"], "meta/episodes/file_index": loc["file_index"],
            }
            for cam in self.cameras:
                key = IMAGE_PREFIX + cam
                row.update({f"videos/{key}/chunk_index": loc["chunk_index"],
                            f"videos/{key}/file_index": loc["file_index"],
                            f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": n / self.fps})
            for key, values in numeric.items():
                for stat, value in numeric_stats(values).items():
                    row[f"stats/{key}/{stat}"] = value
            for key, hist in hists.items():
                for stat, value in histogram_stats(hist).items():
                    row[f"stats/{key}/{stat}"] = np.asarray(value).reshape(-1).tolist()
                row[f"stats/{key}/hist"] = hist.reshape(-1).tolist()
            marker = self.root / EPISODES_PATH.format(**loc)
            _write_parquet_atomic(marker, pa.Table.from_pylist([row]), sync=self.sync)
        except OSError as exc:
            for path in written:
                path.unlink(missing_ok=True)
            rec.discard()
            raise _io_error(f"episode {ep} to {self.root}", exc) from exc
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            rec.discard()
            raise
        # Committed. Derived metadata follows; a crash here is repaired by the next open.
        self._tasks.setdefault(rec.task, task_index)
        self._seeds.append(-1 if rec.seed is None else int(rec.seed))
        self._num_frames += n
        self._stats.merge_summary(summary, hists)
        try:
            self._write_meta()
        except OSError as exc:
            raise _io_error(f"metadata of {self.root}", exc) from exc
        return ep

    # ---- derived metadata
    def _features(self) -> dict[str, Any]:
        feats: dict[str, Any] = {}
        for cam in self.cameras:
            feats[IMAGE_PREFIX + cam] = {
                "dtype": "video", "shape": [self.height, self.width, 3],
                "names": ["height", "width", "channels"],
                "info": {"video.height": self.height, "video.width": self.width,
                         "video.codec": "h264" if pick_codec() == "libx264" else "mpeg4",
                         "video.pix_fmt": self.pix_fmt, "video.is_depth_map": False,
                         "video.fps": self.fps, "video.channels": 3, "has_audio": False},
            }
        feats["observation.state"] = {"dtype": "float32", "shape": [self.state_dim], "names": self.state_names}
        feats["action"] = {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": ACTION_NAMES}
        feats["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for key in INDEX_COLUMNS[1:]:
            feats[key] = {"dtype": "int64", "shape": [1], "names": None}
        return feats

    def _write_meta(self) -> None:
        meta = self.root / "meta"
        n_eps = self.num_episodes
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type,
            "total_episodes": n_eps, "total_frames": self.num_frames, "total_tasks": len(self._tasks),
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
            "fps": self.fps, "splits": {"train": f"0:{n_eps}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": self._features(),
        }
        tasks = sorted(self._tasks.items(), key=lambda kv: kv[1])
        # Derived files: fsync the content but not the directory. After a power cut the previous
        # version may come back, which the reader tolerates (see LeRobotDataset) and the next
        # writer rewrites.
        sync = {"sync": self.sync, "sync_dir": False}
        _write_parquet_atomic(meta / "tasks.parquet", pa.table({
            "task_index": pa.array([i for _, i in tasks], pa.int64()),
            "task": pa.array([t for t, _ in tasks], pa.string())}), **sync)
        if self.num_episodes:
            # O(1) per episode: the running aggregate, never the previous episodes' files
            write_json(meta / "stats.json", self._stats.to_json(), **sync)
        else:
            (meta / "stats.json").unlink(missing_ok=True)
        write_json(meta / "info.json", info, **sync)


class EpisodeRecorder:
    """One episode in progress: images stream into temporary mp4s, the rest stays in memory."""

    def __init__(self, writer: LeRobotWriter, index: int, task: str, seed: int | None,
                 task_family: str) -> None:
        self.writer, self.index, self.task, self.seed, self.task_family = writer, index, task, seed, task_family
        loc = _chunk_file(index)
        self.videos = {cam: VideoWriter(writer.root / VIDEO_PATH.format(video_key=IMAGE_PREFIX + cam, **loc),
                                        fps=writer.fps, crf=writer.crf, pix_fmt=writer.pix_fmt,
                                        sync=writer.sync)
                       for cam in writer.cameras}
        self.hists = {cam: np.zeros((3, 256), np.int64) for cam in writer.cameras}
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.gt_frames: dict[str, list[np.ndarray]] = {}
        self.done = False

    def __len__(self) -> int:
        return len(self.actions)

    def add_frame(self, images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray,
                  ground_truth: dict[str, np.ndarray] | None = None) -> None:
        """Record one step: the observation (images, state) and the action taken from it.

        ``ground_truth`` holds per-frame numeric arrays (object positions, depth...), stacked into
        ``gt/episode_XXXXXX.npz``; every frame must give the same keys and shapes.
        """
        if self.done:
            raise SimError(f"episode {self.index} is already finished")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        if action.shape != (len(ACTION_NAMES),) or state.shape != (self.writer.state_dim,):
            raise SimError(f"expected action[{len(ACTION_NAMES)}] and state[{self.writer.state_dim}], "
                           f"got {list(action.shape)} and {list(state.shape)}")
        for cam, video in self.videos.items():
            if cam not in images:
                raise SimError(f"frame is missing camera {cam!r} (has {sorted(images)})")
            img = images[cam]
            if img.shape != (self.writer.height, self.writer.width, 3):
                raise SimError(f"camera {cam!r} frame is {img.shape}, dataset expects "
                               f"{(self.writer.height, self.writer.width, 3)}")
            try:
                video.write(img)
            except SimError:
                self.discard()
                raise
            self.hists[cam] += image_histogram(img)
        self.states.append(state)
        self.actions.append(action)
        for key, value in (ground_truth or {}).items():
            self.gt_frames.setdefault(key, []).append(np.asarray(value))

    def finish(self, success: bool, ground_truth: dict[str, Any] | None = None) -> int:
        """Commit the episode atomically and return its index."""
        if self.done:
            raise SimError(f"episode {self.index} is already finished")
        if not self.actions:
            self.discard()
            raise SimError(f"episode {self.index} has no frames to save")
        self.done = True
        return self.writer._commit(self, success, ground_truth or {})

    def discard(self) -> None:
        """Drop the episode: its temporary videos are deleted, the index is reused."""
        self.done = True
        for video in self.videos.values():
            video.abort()


def committed_episode_indices(root: Path) -> list[int]:
    """Episode indices whose commit marker (meta/episodes row file) exists, sorted."""
    found = []
    for path in (Path(root) / "meta" / "episodes").glob("chunk-*/file-*.parquet"):
        chunk = int(path.parent.name.split("-")[1])
        found.append(chunk * CHUNKS_SIZE + int(path.stem.split("-")[1]))
    return sorted(found)


def _remove_uncommitted(root: Path, n_committed: int, cameras: Sequence[str]) -> list[Path]:
    """Delete ``*.tmp`` files and the files of episodes >= ``n_committed`` (no marker)."""
    removed = []
    for path in root.rglob("*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path)
    patterns = [("data", "chunk-*/file-*.parquet")] + [
        (f"videos/{IMAGE_PREFIX}{c}", "chunk-*/file-*.mp4") for c in cameras]
    for base, pattern in patterns:
        for path in (root / base).glob(pattern):
            ep = int(path.parent.name.split("-")[1]) * CHUNKS_SIZE + int(path.stem.split("-")[1])
            if ep >= n_committed:
                path.unlink()
                removed.append(path)
    for path in (root / "gt").glob("episode_*.*"):
        if int(path.stem.split("_")[1]) >= n_committed:
            path.unlink()
            removed.append(path)
    return removed
