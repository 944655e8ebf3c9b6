"""What every benchmark shares: the machine record and the JSON hand-off.

Convention (DESIGN.md): `--quick` finishes in about a minute, `--out` writes the JSON, and the same
JSON is the last thing printed on stdout. Ratios are always against a baseline measured in the
same run, because absolute numbers from different machines do not compare.
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from common.atomic import write_json
from common.jsonable import to_jsonable

_PACKAGES = ("torch", "transformers", "peft", "mujoco", "gymnasium", "numpy", "pyzmq", "av",
             "opencv-python-headless", "ros-kilted-rclpy")


def machine_info() -> dict[str, Any]:
    """CPU count, GPU if any, and the versions of the packages that decide the numbers."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": gpu,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "packages": versions,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def emit(name: str, result: dict[str, Any], out: str | Path | None, quick: bool) -> dict[str, Any]:
    """Attach the machine record, write ``out`` if given, and print the JSON last on stdout."""
    full = {"benchmark": name, "quick": quick, "machine": machine_info(), **result}
    if out:
        write_json(out, full)
    print(json.dumps(to_jsonable(full), indent=2))
    return full
