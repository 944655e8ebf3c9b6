"""The shared helpers: values, round-trips and failure behaviour."""

import argparse
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pytest

from common import atomic
from common.config import add_dataclass_args, from_args
from common.errors import UserError, is_user_error
from common.schedule import warmup_cosine
from common.stats import wilson_interval


def test_wilson_interval_values():
    lo, hi = wilson_interval(40, 50)
    assert lo == pytest.approx(0.6696, abs=1e-3) and hi == pytest.approx(0.8876, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and 0.25 < wilson_interval(0, 10)[1] < 0.35
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-3), 1.0)
    lo, hi = wilson_interval(50, 100)
    assert abs((lo + hi) / 2 - 0.5) < 1e-9
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_warmup_cosine_shape():
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 100, 10, min_ratio=0.1) == pytest.approx(0.1)  # held after the end
    assert warmup_cosine(100, 100, 0) == pytest.approx(0.0)


def test_atomic_writes_replace_whole_and_leave_nothing_on_failure(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic.write_json(path, {"x": np.float32(1.5), "p": tmp_path, "t": (1, 2)})
    assert json.loads(path.read_text()) == {"x": 1.5, "p": str(tmp_path), "t": [1, 2]}
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(path.read_text())["x"] == 1.5  # the old file is intact
    assert os.listdir(path.parent) == ["a.json"]  # and no temp file is left
    with atomic.atomic_path(tmp_path / "arr.npz", suffix=".npz", sync=True) as tmp:
        np.savez(tmp, a=np.arange(3))
    assert np.load(tmp_path / "arr.npz")["a"].tolist() == [0, 1, 2]


def test_committed_files_and_directories_get_the_usual_modes(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "f.txt", "x")
        with atomic.atomic_dir(tmp_path / "d") as tmp:
            (tmp / "w").write_text("v")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_atomic_dir_replaces_an_existing_directory_only_when_complete(tmp_path):
    final = tmp_path / "ckpt"
    with atomic.atomic_dir(final) as tmp:
        (tmp / "w").write_text("v1")
    with pytest.raises(KeyError):
        with atomic.atomic_dir(final) as tmp:
            (tmp / "w").write_text("v2-partial")
            raise KeyError("crash")
    assert (final / "w").read_text() == "v1"
    with atomic.atomic_dir(final) as tmp:
        (tmp / "w").write_text("v2")
    assert (final / "w").read_text() == "v2"
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


@dataclass
class _Cfg:
    data: str = field(default="", metadata={"help": "input", "required": True})
    lr: float = field(default=1e-3, metadata={"help": "rate", "aliases": ("--learning-rate",)})
    mode: str = field(default="a", metadata={"help": "mode", "choices": ("a", "b")})
    flag: bool = field(default=False, metadata={"help": "switch"})
    out: str | None = field(default=None, metadata={"help": "where"})
    derived: int = field(default=3, metadata={"flag": False})


def test_dataclass_flags_round_trip_and_help():
    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, _Cfg)
    cfg = from_args(_Cfg, parser.parse_args(["--data", "d", "--lr", "1", "--flag"]))
    assert cfg == _Cfg(data="d", lr=1.0, flag=True)
    assert from_args(_Cfg, parser.parse_args(["--data", "d", "--learning-rate", "2"])).lr == 2.0
    text = parser.format_help()
    assert "(default: )" not in text and "(default: None)" not in text
    assert "(default: 0.001)" in text and "--learning-rate" not in text and "--derived" not in text
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --data is required
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--mode", "c"])


def test_user_errors_are_recognised():
    assert is_user_error(UserError("x")) and isinstance(UserError("x"), ValueError)

    class Marked(RuntimeError):
        user_error = True

    assert is_user_error(Marked()) and not is_user_error(RuntimeError())
