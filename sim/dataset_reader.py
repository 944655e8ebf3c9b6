"""Read any LeRobot v3.0 dataset: ours (``sim.dataset.LeRobotWriter``) or one LeRobot itself wrote.

What differs between writers, and how this reader finds its way through each:

* Tasks. Ours keep ``meta/tasks.parquet`` as columns ``task_index, task``; LeRobot's writer saves a
  pandas frame whose index is the task string (a column ``__index_level_0__``, or whatever the
  file's pandas metadata names as its index). Both are read; without the file, the task strings
  come from the episodes' ``tasks`` lists.
* Episodes. Located through ``meta/episodes``: the data file (``data/chunk_index``,
  ``data/file_index``) and, per camera, the video file and ``from_timestamp``/``to_timestamp``
  inside it. Ours keep one episode per file; LeRobot packs many episodes into one data file and one
  video file per camera, so rows are selected by ``episode_index`` and frames by time
  (``from_timestamp`` + each frame's ``timestamp``, matched to the decoded frames' own times within
  half a frame period: frame-accurate whatever the keyframe interval or codec PyAV decodes).
* Cameras. Any number, any name: every feature of dtype ``video`` (an mp4 per camera) or
  ``image`` (PNG/JPEG bytes inside the parquet, as Hugging Face ``datasets`` stores them).
* State and action. Any size; the feature shapes come from ``meta/info.json``.
* Statistics. ``meta/stats.json`` is used when it covers every numeric feature with
  min/max/mean/std/count/q01/q99. Otherwise the numeric statistics are computed from the data
  files (exactly as our recorder computes them, ``sim.stats``), logged as a warning, and listed in
  ``stats_computed``; the dataset on disk is never modified. Image statistics are kept from the
  file when present; they are not recomputed (that would decode every frame, and nothing here
  normalises images with them).

The interface training code relies on (``policy`` reads through it):

``LeRobotDataset(root)``
    ``fps``, ``info``, ``features`` (``info["features"]``), ``num_episodes``, ``num_frames``,
    ``cameras`` (names: ``top`` for ``observation.images.top``), ``camera_keys`` (the feature keys,
    video and image), ``camera_key(name)``, ``camera_shape(name) -> (H, W, 3)``,
    ``state_dim`` / ``action_dim`` (0 where the feature is absent), ``tasks`` ({task_index: text}),
    ``stats`` (per numeric feature: min max mean std count q01 q99 lists), ``stats_computed``.
``episode(i, decode_video=True, cameras=None)``
    a dict of numpy arrays: every parquet column (``action [T, A] float32``,
    ``observation.state [T, D] float32``, ``timestamp``, ``frame_index``, ``index``...), each
    camera's frames under its feature key as ``uint8 [T, H, W, 3]`` (only ``cameras`` when given),
    plus ``task`` (str), ``success`` (bool, or None when the writer did not record it),
    ``seed`` (-1 when unknown), ``task_family``.
``episode_frames(i, camera)``, ``episode_length(i)``, ``episode_meta(i)`` (its ``meta/episodes``
row), ``episode_task(i)``, ``episode_ground_truth(i)`` (our recorder's ground truth only).

Every problem is a :class:`SimError` naming the file: a truncated parquet, a missing video, an
info.json for another codebase version, an episode index out of range.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sim.dataset_layout import (EPISODES_PATH, GT_PATH, IMAGE_PREFIX, INDEX_COLUMNS, TEXT_DTYPES, VISUAL_DTYPES,
                                camera_name, chunk_file, column_to_numpy, read_parquet)
from sim.errors import SimError
from sim.stats import aggregate_stats
from sim.video import decode_window

log = logging.getLogger(__name__)

STAT_KEYS = ("min", "max", "mean", "std", "count", "q01", "q99")
V21_CONVERSION = "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=<your/dataset>"
_REQUIRED_INFO = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path")


def check_codebase_version(info: dict, where: Path) -> None:
    """Only v3.x layouts are readable; v2.x gets the name of LeRobot's conversion script."""
    version = str(info.get("codebase_version", ""))
    if version.startswith("v3."):
        return
    if version.startswith("v2."):
        raise SimError(f"{where} is a LeRobot {version} dataset; this reader reads v3.0. Convert it with "
                       f"LeRobot's script: {V21_CONVERSION}")
    raise SimError(f"{where} has codebase_version {version or '(none)'!r}; only LeRobot v3.0 datasets are read")


def load_info(root: Path) -> dict[str, Any]:
    """``meta/info.json``, checked for the fields the reader needs."""
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise SimError(f"not a dataset: {path} is missing")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SimError(f"corrupt {path}: {exc}") from exc
    if not isinstance(info, dict):
        raise SimError(f"corrupt {path}: not a JSON object")
    check_codebase_version(info, path)
    missing = [k for k in _REQUIRED_INFO if k not in info]
    if any(f.get("dtype") == "video" for f in info.get("features", {}).values()) and "video_path" not in info:
        missing.append("video_path")
    if missing:
        raise SimError(f"{path} lacks {', '.join(missing)}")
    return info


def read_tasks(path: Path) -> dict[int, str]:
    """``meta/tasks.parquet`` in either schema: a ``task`` column, or the task in the pandas index."""
    table = read_parquet(path)
    names = table.column_names
    if "task_index" not in names:
        raise SimError(f"{path} has no task_index column (columns: {names})")
    text_col = "task" if "task" in names else None
    if text_col is None:
        pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
        index_cols = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
        text_col = next((c for c in (*index_cols, "__index_level_0__") if c in names), None)
    if text_col is None:
        raise SimError(f"{path} holds no task strings: no 'task' column and no pandas index (columns: {names})")
    return {int(i): str(t) for i, t in zip(table.column("task_index").to_pylist(), table.column(text_col).to_pylist())}


def _decode_image(cell: Any, where: str) -> np.ndarray:
    """One image cell of a parquet (Hugging Face ``Image``: {bytes, path}, or raw bytes) -> RGB uint8."""
    from PIL import Image

    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if not data:
        raise SimError(f"{where}: image has no embedded bytes (path {cell.get('path') if isinstance(cell, dict) else None!r})")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise SimError(f"{where}: undecodable image: {exc}") from exc


class LeRobotDataset:
    """A LeRobot v3.0 dataset on disk, read-only; see the module docstring for the interface."""

    _DATA_CACHE = 2  # data files kept in memory: LeRobot packs many episodes in one

    def __init__(self, root: str | Path, _partial: bool = False) -> None:
        self.root = Path(root)
        self.info: dict[str, Any] = load_info(self.root)
        self.fps = self.info["fps"]
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.camera_keys = [k for k, f in self.features.items() if f.get("dtype") in VISUAL_DTYPES]
        self.video_keys = [k for k in self.camera_keys if self.features[k]["dtype"] == "video"]
        self.image_keys = [k for k in self.camera_keys if self.features[k]["dtype"] == "image"]
        self.numeric_keys = [k for k, f in self.features.items()
                             if f.get("dtype") not in (*VISUAL_DTYPES, *TEXT_DTYPES)]
        self._partial = _partial  # our writer reopens a dataset whose derived files may lag
        self._meta_cache: dict[int, dict[str, Any]] = {}
        self._meta_index: dict[int, Path] | None = None  # episode -> meta file, for packed layouts
        self._data_cache: dict[Path, pa.Table] = {}
        self.stats_computed: list[str] = []
        self.tasks: dict[int, str] = {}
        self.stats: dict[str, Any] = {}
        if _partial:
            return
        if self.num_episodes <= 0:
            raise SimError(f"dataset {self.root} has no episodes")
        tasks_path = self.root / "meta" / "tasks.parquet"
        if tasks_path.is_file():
            self.tasks = read_tasks(tasks_path)
        else:
            log.warning("%s has no meta/tasks.parquet: task strings taken from meta/episodes", self.root)
        self.stats = self._load_stats()

    # ---- sizes and names
    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def cameras(self) -> list[str]:
        return [camera_name(k) for k in self.camera_keys]

    def camera_key(self, camera: str) -> str:
        """The feature key of camera ``camera`` (its name, or the key itself)."""
        for key in self.camera_keys:
            if camera in (key, camera_name(key)):
                return key
        raise SimError(f"dataset {self.root} has no camera {camera!r}; it has {', '.join(self.cameras) or 'none'}")

    def camera_shape(self, camera: str) -> tuple[int, int, int]:
        shape = self.features[self.camera_key(camera)]["shape"]
        names = self.features[self.camera_key(camera)].get("names") or []
        if list(names)[:1] == ["channels"]:  # some writers store [C, H, W]
            return int(shape[1]), int(shape[2]), int(shape[0])
        return int(shape[0]), int(shape[1]), int(shape[2])

    def _dim(self, key: str) -> int:
        return int(np.prod(self.features[key]["shape"])) if key in self.features else 0

    @property
    def state_dim(self) -> int:
        return self._dim("observation.state")

    @property
    def action_dim(self) -> int:
        return self._dim("action")

    def __len__(self) -> int:
        return self.num_episodes

    def _check_index(self, i: int) -> None:
        if not self._partial and not 0 <= i < self.num_episodes:
            raise SimError(f"episode {i} out of range: the dataset has {self.num_episodes} "
                           f"(0..{self.num_episodes - 1})")

    # ---- meta/episodes
    def _meta_rows(self, path: Path) -> list[dict[str, Any]]:
        return read_parquet(path).to_pylist()

    def episode_meta(self, i: int) -> dict[str, Any]:
        """Episode ``i``'s row in ``meta/episodes`` (length, tasks, file locations, per-episode stats)."""
        self._check_index(i)
        if i in self._meta_cache:
            return self._meta_cache[i]
        direct = self.root / EPISODES_PATH.format(**chunk_file(i))  # our one-file-per-episode layout
        if self._meta_index is None and direct.is_file():
            for row in self._meta_rows(direct):
                self._meta_cache.setdefault(int(row["episode_index"]), row)
            if i in self._meta_cache:
                return self._meta_cache[i]
        if self._meta_index is None:
            self._meta_index = self._index_meta_files()
        if i not in self._meta_index:
            raise SimError(f"episode {i} is not in {self.root / 'meta' / 'episodes'}")
        for row in self._meta_rows(self._meta_index[i]):
            self._meta_cache.setdefault(int(row["episode_index"]), row)
        return self._meta_cache[i]

    def _index_meta_files(self) -> dict[int, Path]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise SimError(f"dataset {self.root} has no meta/episodes files")
        index: dict[int, Path] = {}
        for path in files:
            for ep in read_parquet(path, columns=["episode_index"]).column("episode_index").to_pylist():
                index[int(ep)] = path
        return index

    def episode_length(self, i: int) -> int:
        return int(self.episode_meta(i)["length"])

    def episode_task(self, i: int) -> str:
        """The episode's (first) task string."""
        meta = self.episode_meta(i)
        tasks = meta.get("tasks") or []
        if tasks:
            return str(tasks[0])
        if "task_index" in meta and int(meta["task_index"]) in self.tasks:
            return self.tasks[int(meta["task_index"])]
        return ""

    # ---- frames
    def _data_path(self, i: int) -> Path:
        meta = self.episode_meta(i)
        loc = {"chunk_index": meta["data/chunk_index"], "file_index": meta["data/file_index"]}
        return self.root / self.info["data_path"].format(**loc)

    def _data_table(self, path: Path) -> pa.Table:
        if path not in self._data_cache:
            table = read_parquet(path)
            if "episode_index" not in table.column_names:
                raise SimError(f"corrupt data file {path}: no episode_index column")
            while len(self._data_cache) >= self._DATA_CACHE:
                self._data_cache.pop(next(iter(self._data_cache)))
            self._data_cache[path] = table
        return self._data_cache[path]

    def _episode_table(self, i: int) -> pa.Table:
        meta = self.episode_meta(i)
        path = self._data_path(i)
        table = self._data_table(path)
        table = table.filter(pc.equal(table.column("episode_index"), i))
        if table.num_rows != meta["length"]:
            raise SimError(f"episode {i} has {table.num_rows} frames in its data file {path}, "
                           f"metadata says {meta['length']}")
        return table

    def _numeric(self, table: pa.Table, key: str) -> np.ndarray:
        values = column_to_numpy(table, key)
        if self.features.get(key, {}).get("dtype") == "float32":
            values = values.astype(np.float32, copy=False)
        return values

    def episode(self, i: int, decode_video: bool = True, cameras: Sequence[str] | None = None) -> dict[str, Any]:
        """All frames of episode ``i`` as numpy arrays (camera frames decoded unless told otherwise)."""
        meta = self.episode_meta(i)
        table = self._episode_table(i)
        keys = [self.camera_key(c) for c in cameras] if cameras is not None else self.camera_keys
        out: dict[str, Any] = {}
        for name in table.column_names:
            if name in self.image_keys:
                if decode_video and name in keys:
                    out[name] = self._images_from_table(i, table, name)
            elif self.features.get(name, {}).get("dtype") not in TEXT_DTYPES:
                out[name] = self._numeric(table, name)
        out["task"] = self.episode_task(i)
        if "task_index" in out and len(out["task_index"]) and not self._partial:
            out["task"] = self.tasks.get(int(out["task_index"][0]), out["task"])
        out["task_family"] = meta.get("task_family", "")
        out["success"] = bool(meta["success"]) if meta.get("success") is not None else None
        out["seed"] = int(meta["seed"]) if meta.get("seed") is not None else -1
        if decode_video:
            for key in self.video_keys:
                if key in keys:
                    out[key] = self._episode_video(i, key, out.get("timestamp"))
        return out

    def episode_frames(self, i: int, camera: str) -> np.ndarray:
        """``uint8 [T, H, W, 3]`` frames of one camera (by name or feature key)."""
        key = self.camera_key(camera)
        if key in self.image_keys:
            return self._images_from_table(i, self._episode_table(i), key)
        return self._episode_video(i, key, None)

    def _images_from_table(self, i: int, table: pa.Table, key: str) -> np.ndarray:
        where = f"episode {i} {key} in {self._data_path(i)}"
        return np.stack([_decode_image(cell, where) for cell in table.column(key).to_pylist()])

    def video_path(self, i: int, key: str) -> Path:
        meta = self.episode_meta(i)
        try:
            loc = {"chunk_index": meta[f"videos/{key}/chunk_index"], "file_index": meta[f"videos/{key}/file_index"]}
        except KeyError:
            raise SimError(f"episode {i} has no video location for {key} in meta/episodes") from None
        return self.root / self.info["video_path"].format(video_key=key, **loc)

    def _episode_video(self, i: int, key: str, timestamps: np.ndarray | None) -> np.ndarray:
        """Frames at ``from_timestamp + timestamp`` of each of the episode's frames, matched by time."""
        meta = self.episode_meta(i)
        n = int(meta["length"])
        if timestamps is None:
            timestamps = (column_to_numpy(self._episode_table(i), "timestamp")
                          if "timestamp" in self.features else np.arange(n) / self.fps)
        path = self.video_path(i, key)
        start = float(meta.get(f"videos/{key}/from_timestamp") or 0.0)
        wanted = start + np.asarray(timestamps, dtype=np.float64)
        tol = 0.5 / float(self.fps)  # half a frame period: the nearest frame, never its neighbour
        times, frames = decode_window(path, float(wanted.min()) - tol, float(wanted.max()) + tol)
        if len(times) == 0:
            raise SimError(f"video {path} has 0 frames for episode {i} (expected {n} from t={start:.3f}s)")
        j = np.searchsorted(times, wanted)
        before, after = np.clip(j - 1, 0, len(times) - 1), np.clip(j, 0, len(times) - 1)
        nearest = np.where(np.abs(times[before] - wanted) <= np.abs(times[after] - wanted), before, after)
        if len(times) < n or np.any(np.abs(times[nearest] - wanted) > tol):
            raise SimError(f"video {path} has {len(times)} frames for episode {i} between "
                           f"t={wanted.min():.3f}s and t={wanted.max():.3f}s, expected {n}")
        return np.stack([frames[k] for k in nearest])

    # ---- statistics
    def _stats_inputs(self, i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Episode ``i``'s numeric columns and (our recorder's) image histograms: what statistics merge."""
        row, table = self.episode_meta(i), self._episode_table(i)
        numeric = {k: column_to_numpy(table, k) for k in self.numeric_keys if k in table.column_names}
        hists = {key: np.asarray(row[f"stats/{key}/hist"], dtype=np.int64).reshape(3, 256)
                 for key in self.camera_keys if row.get(f"stats/{key}/hist") is not None}
        return numeric, hists

    def _load_stats(self) -> dict[str, Any]:
        stats_path = self.root / "meta" / "stats.json"
        stats: dict[str, Any] = {}
        if stats_path.is_file():
            try:
                stats = json.loads(stats_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise SimError(f"corrupt {stats_path}: {exc}") from exc
        lacking = [k for k in self.numeric_keys if not all(s in stats.get(k, {}) for s in STAT_KEYS)]
        stale = "index" in stats and stats["index"].get("count") != [self.num_frames]
        if not stats_path.is_file() or lacking or stale:
            # Read-only: computed in memory from the data files, never written back.
            absent = [s for s in STAT_KEYS if any(s not in stats.get(k, {}) for k in lacking)]
            why = ("no meta/stats.json" if not stats_path.is_file() else
                   f"meta/stats.json lacks {'/'.join(absent)} for {', '.join(lacking)}" if lacking else
                   "meta/stats.json describes another number of frames")
            inputs = [self._stats_inputs(i) for i in range(self.num_episodes)]
            computed = aggregate_stats([n for n, _ in inputs], [h for _, h in inputs])
            self.stats_computed = sorted(k for k in computed if k in self.numeric_keys or k not in stats)
            if stale:  # a crash between stats.json and info.json (our writer): everything is recomputed
                stats = computed
            else:
                stats = {**stats, **{k: {**stats.get(k, {}), **v} for k, v in computed.items()}}
            log.warning("%s: %s; computed statistics of %s from the data files", self.root, why,
                        ", ".join(self.stats_computed))
        return stats

    # ---- our recorder's extras
    def episode_ground_truth(self, i: int) -> dict[str, Any]:
        """The ground-truth log: the JSON fields plus the per-frame arrays of the npz under ``"frames"``."""
        self._check_index(i)
        base = self.root / GT_PATH.format(episode_index=i)
        json_path = base.with_suffix(".json")
        if not json_path.is_file():
            raise SimError(f"episode {i} has no ground truth at {json_path}")
        gt = json.loads(json_path.read_text())
        npz_path = base.with_suffix(".npz")
        gt["frames"] = {}
        if npz_path.is_file():
            try:
                with np.load(npz_path, allow_pickle=False) as data:
                    gt["frames"] = {k: data[k] for k in data.files}
            except (OSError, ValueError) as exc:
                raise SimError(f"corrupt ground truth {npz_path}: {exc}") from exc
        return gt

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self.num_episodes):
            yield self.episode(i)


__all__ = ["INDEX_COLUMNS", "IMAGE_PREFIX", "LeRobotDataset", "STAT_KEYS", "check_codebase_version", "load_info",
           "read_tasks"]
