"""The clip cache: simulated clips and their questions on disk, and the dataset that reads them.

Layout::

    root/clips/<clip_id>.npz   frames uint8 [T, H, W, 3], times float [T]
    root/clips/<clip_id>.json  the summary (ground truth)
    root/qa.jsonl              one question per line: clip, type, template, heldout, split, q, a

Splits are by clip (episode), never by question. A clip and its questions depend only on the
data seed and the clip's index, so a :class:`DataRecipe` (seed, clip counts, data version) recorded
with a checkpoint is enough to make its held-out clips again on a fresh clone
(:func:`heldout_data`), without the training clips.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from common.atomic import atomic_path, write_text
from video_qa.errors import VideoQAError
from video_qa.questions import QA, questions_for
from video_qa.simulate import DATA_VERSION, simulate_billiards, simulate_tabletop

TEST_EVERY = 5  # clip k is a test clip when k % TEST_EVERY == 0: 20 % of episodes held out


def split_of(index: int) -> str:
    """The split of clip ``index`` (by episode, never by question)."""
    return "test" if index % TEST_EVERY == 0 else "train"


def clip_ids(n_billiards: int, n_tabletop: int) -> list[tuple[str, int]]:
    ids = [(f"billiards_{i:04d}", i) for i in range(n_billiards)]
    return ids + [(f"tabletop_{i:04d}", i) for i in range(n_tabletop)]


def clip_seed(data_seed: int, clip: str) -> int:
    """The simulator seed of ``clip`` (``billiards_0042``) in data made with ``data_seed``."""
    return data_seed * 100003 + int(clip.rsplit("_", 1)[1])


def _simulate_clip(root: Path, clip: str, i: int, seed: int) -> int:
    """Simulate one clip and write its files atomically; returns its frame count."""
    npz, meta = root / "clips" / f"{clip}.npz", root / "clips" / f"{clip}.json"
    if clip.startswith("billiards"):
        frames, times, summary = simulate_billiards(clip_seed(seed, clip))
    else:
        task = "PutIn" if i % 2 else "PickUp"
        frames, times, summary = simulate_tabletop(clip_seed(seed, clip), task)
    with atomic_path(npz, suffix=".npz") as tmp:
        np.savez_compressed(tmp, frames=frames, times=times)
    write_text(meta, json.dumps(summary))  # written last: its presence marks the clip complete
    return len(times)


def _cached(root: Path, clip: str) -> bool:
    """Both files there and the summary of the current version (older ones are simulated anew)."""
    npz, meta = root / "clips" / f"{clip}.npz", root / "clips" / f"{clip}.json"
    if not (npz.is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("version") == DATA_VERSION
    except json.JSONDecodeError:
        return False


def _simulate_star(job: tuple[Path, str, int, int]) -> tuple[str, int]:
    return job[1], _simulate_clip(*job)


def generate(root: str | Path, n_billiards: int = 60, n_tabletop: int = 60, seed: int = 0,
             log: Any = print, workers: int = 1, split: str | None = None) -> Path:
    """Simulate (or reuse) clips under ``root/clips`` and write ``root/qa.jsonl``. Resumable:
    a clip whose files exist is not simulated again. ``workers`` > 1 simulates clips in that many
    processes (spawned, not forked: a forked MuJoCo/EGL context is not safe); each clip depends
    only on its seed, so the data are the same whatever the number of workers. ``split`` ("train"
    or "test") makes only that split's clips; their clips and questions are the same as in the
    full data."""
    root = Path(root)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    ids = [(clip, i) for clip, i in clip_ids(n_billiards, n_tabletop)
           if split is None or split_of(i) == split]
    todo = [(root, clip, i, seed) for clip, i in ids if not _cached(root, clip)]
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            for clip, n in pool.imap_unordered(_simulate_star, todo):
                if log:
                    log(f"simulated {clip}: {n} frames")
    else:
        for job in todo:
            clip, n = _simulate_star(job)
            if log:
                log(f"simulated {clip}: {n} frames")
    qas: list[QA] = []
    for clip, i in ids:
        summary = json.loads((root / "clips" / f"{clip}.json").read_text())
        rng = np.random.default_rng([seed, i, 0 if clip.startswith("billiards") else 1])
        qas += questions_for(summary, clip, split_of(i), rng)
    return write_text(root / "qa.jsonl",
                      "".join(json.dumps(q.to_dict(), ensure_ascii=False) + "\n" for q in qas))


@dataclass(frozen=True)
class DataRecipe:
    """What :func:`generate` made a data directory from; recorded beside a checkpoint
    (``qa_train.json``) so its test clips can be made again where the data are not."""

    seed: int = 0
    n_billiards: int = 60
    n_tabletop: int = 60
    version: int = DATA_VERSION

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataRecipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in known})

    def name(self) -> str:
        return f"v{self.version}-seed{self.seed}-b{self.n_billiards}-t{self.n_tabletop}"


HELDOUT_ROOT = Path("runs/qa/heldout")


def heldout_data(recipe: DataRecipe, root: str | Path = HELDOUT_ROOT, workers: int = 1,
                 log: Any = print, resimulate: bool = False) -> Path:
    """The test clips and questions of ``recipe``, simulated once into ``root/<recipe name>`` and
    reused after (a fresh clone has no training data, and the held-out score needs only these).

    Clips of an older data version can no longer be made (the simulator changed, e.g. the billiards
    physics of version 3): that is an error unless ``resimulate``, which scores the checkpoint on
    the same recipe simulated by this code instead, and says so."""
    if recipe.version != DATA_VERSION:
        if not resimulate:
            raise VideoQAError(f"the checkpoint's data are version {recipe.version}, this code simulates "
                               f"version {DATA_VERSION}; pass --data-dir with the original data, or "
                               f"--resimulate to score it on the same recipe simulated by this code")
        if log:
            log(f"the checkpoint was trained on version {recipe.version} clips; scoring it on its test "
                f"recipe simulated by this code (version {DATA_VERSION})")
        recipe = replace(recipe, version=DATA_VERSION)
    out = Path(root) / recipe.name()
    if not (out / "qa.jsonl").is_file():
        if log:
            log(f"simulating the test clips of {recipe.name()} into {out} (once; cached after)")
        generate(out, recipe.n_billiards, recipe.n_tabletop, recipe.seed, log=log, workers=workers,
                 split="test")
    return out


class QADataset:
    """The cached clips and questions; frames stay in memory (small clips)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        qa_file = self.root / "qa.jsonl"
        if not qa_file.is_file():
            raise VideoQAError(f"no qa.jsonl in {root}; generate data first (embodied train-qa does)")
        self.qas = [QA.from_dict(json.loads(line)) for line in qa_file.read_text().splitlines() if line]
        self._clips: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}
        self._summaries: dict[str, dict[str, Any]] = {}

    def clip(self, clip: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        if clip not in self._clips:
            with np.load(self.root / "clips" / f"{clip}.npz") as z:
                frames, times = z["frames"], z["times"]
            summary = json.loads((self.root / "clips" / f"{clip}.json").read_text())
            self._clips[clip] = (frames, times, summary)
        return self._clips[clip]

    def summary(self, clip: str) -> dict[str, Any]:
        """A clip's ground truth without loading its frames."""
        if clip in self._clips:
            return self._clips[clip][2]
        if clip not in self._summaries:
            self._summaries[clip] = json.loads((self.root / "clips" / f"{clip}.json").read_text())
        return self._summaries[clip]

    def forget(self, clip: str) -> None:
        """Drop a clip's frames from memory (its summary stays): 128 px clips add up to gigabytes."""
        entry = self._clips.pop(clip, None)
        if entry is not None:
            self._summaries[clip] = entry[2]

    def select(self, split: str | None = None, heldout: bool | None = None) -> list[QA]:
        return [q for q in self.qas if (split is None or q.split == split)
                and (heldout is None or q.heldout == heldout)]

    def __iter__(self) -> Iterator[QA]:
        return iter(self.qas)
