"""The LeRobot v3.0 file layout, shared by our recorder (``sim.dataset``) and the reader
(``sim.dataset_reader``): path templates, feature naming, and the parquet helpers both use.

Kept apart so the writer and the reader import it, and not each other's internals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim.errors import SimError

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk directory, as in LeRobot: keeps directory listings short
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
GT_PATH = "gt/episode_{episode_index:06d}"
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
IMAGE_PREFIX = "observation.images."
# Numeric per-frame columns besides state and action (all get statistics, as in LeRobot).
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
VISUAL_DTYPES = ("video", "image")  # features that hold camera frames
TEXT_DTYPES = ("string",)


def chunk_file(episode_index: int) -> dict[str, int]:
    """Where our recorder puts episode ``episode_index`` (one file per episode)."""
    return {"chunk_index": episode_index // CHUNKS_SIZE, "file_index": episode_index % CHUNKS_SIZE}


def camera_name(key: str) -> str:
    """``observation.images.top`` -> ``top``; a key outside that prefix is its own name."""
    return key.removeprefix(IMAGE_PREFIX)


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The table at ``path``; a missing or corrupt (e.g. truncated) file is a one-line SimError."""
    if not path.is_file():
        raise SimError(f"missing dataset file {path}")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise SimError(f"corrupt parquet file {path}: {str(exc).splitlines()[0]}") from exc


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)


def column_to_numpy(table: pa.Table, name: str) -> np.ndarray:
    """A scalar column as ``[N]``, a list column (nested or not) as ``[N, D]`` (exact values)."""
    col = table.column(name).combine_chunks()
    n, nested = len(col), False
    while _is_list(col.type):
        col, nested = col.flatten(), True
    values = col.to_numpy(zero_copy_only=False)
    if not nested:
        return values
    return values.reshape(n, -1) if n else values.reshape(0, 0)
