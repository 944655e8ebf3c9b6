"""Run directories: every run writes its config, metrics and artefacts into one folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from common.atomic import write_json
from common.jsonable import to_jsonable


def new_run_dir(kind: str, root: str | Path = "runs", name: str | None = None) -> Path:
    """Create ``root/kind/<YYYYmmdd-HHMMSS>[-name]`` (suffixed if it exists) and return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / kind / (f"{stamp}-{name}" if name else stamp)
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


class RunLog:
    """``config.json`` once, ``metrics.jsonl`` appended and flushed line by line."""

    def __init__(self, run_dir: str | Path, config: Any = None) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            write_json(self.dir / "config.json", config)
        self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")

    def log(self, **metrics: Any) -> None:
        self._metrics.write(json.dumps(to_jsonable(metrics)) + "\n")
        self._metrics.flush()

    def close(self) -> None:
        self._metrics.close()

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
