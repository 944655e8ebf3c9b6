"""Atomic commits: a crash never leaves a half-written file or directory under its final name.

Every writer of the stack goes through one of these:

- ``atomic_path(final)``: a context manager that yields a temporary path beside ``final`` for any
  writer (PIL, numpy, pyarrow, PyAV) and renames it onto ``final`` on success, or deletes it on
  failure. ``sync=True`` adds the fsyncs that make the file durable across a power cut.
- ``write_text`` / ``write_bytes`` / ``write_json``: the common cases of the above.
- ``atomic_dir(final)``: the same for a directory (checkpoints): build it in a temporary sibling,
  then swap it into place; an existing directory is replaced only once the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from common.jsonable import to_jsonable


def fsync_path(path: str | Path) -> None:
    """fsync a file or a directory (a directory's fsync makes a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(tmp: str | Path, final: str | Path, sync: bool = False, sync_dir: bool = True) -> None:
    """Rename ``tmp`` onto ``final`` (atomic on POSIX), optionally fsyncing the file and its folder.

    The rename alone protects against a process crash. The fsyncs protect against a power cut, and
    because they run in call order, a sequence of commits reaches the disk in that order.
    """
    tmp, final = Path(tmp), Path(final)
    if sync:
        fsync_path(tmp)
    os.replace(tmp, final)
    if sync and sync_dir:
        fsync_path(final.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_sibling(final: str | Path, suffix: str = "") -> Path:
    """A fresh, unique temporary file in ``final``'s folder (same filesystem: rename works).

    ``mkstemp`` creates it private (0600); it gets the mode a plain ``open`` would have given
    (0666 less the umask), so committed files are as readable as any other the user writes.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


@contextmanager
def atomic_path(final: str | Path, suffix: str = "", sync: bool = False,
                sync_dir: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``final``, on failure it is removed.

    ``suffix`` keeps writers that choose a format by extension happy (``".npz"``, ``".png"``).
    """
    final = Path(final)
    tmp = temp_sibling(final, suffix)
    try:
        yield tmp
        replace(tmp, final, sync=sync, sync_dir=sync_dir)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes, sync: bool = False, sync_dir: bool = True) -> Path:
    path = Path(path)
    with atomic_path(path, sync=sync, sync_dir=sync_dir) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: str | Path, text: str, sync: bool = False, sync_dir: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), sync=sync, sync_dir=sync_dir)


def write_json(path: str | Path, obj: Any, sync: bool = False, sync_dir: bool = True) -> Path:
    """Indented UTF-8 JSON of ``obj`` (dataclasses, paths and numpy values included), atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n"
    return write_text(path, text, sync=sync, sync_dir=sync_dir)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``final`` whole.

    An existing ``final`` is moved aside first and deleted only after the new directory is in
    place, so at every instant either the old or the new complete directory exists. On failure
    the temporary directory is removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; a checkpoint is shared like any folder
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            old.rmdir()
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
