"""The end-to-end demo: each stage shows one capability and leaves its artefacts on disk."""

from __future__ import annotations

from pathlib import Path


def run_demo(out: str | Path, quick: bool = False) -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"embodied demo: artefacts in {out}/")
    return 0
