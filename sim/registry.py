"""Task name -> environment entry point, registered with Gymnasium as ``embodied/<Task>-v0``.

Unknown names fail with the list of known ones and the closest match, as Gymnasium and openpi do.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

from sim.errors import SimError

# Task name -> (entry point "module:Class", default kwargs). Tabletop tasks share one env class
# parameterised by the task family; billiards is its own world.
TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "Reach": ("sim.tabletop.env:TabletopEnv", {"task": "reach"}),
    "PickUp": ("sim.tabletop.env:TabletopEnv", {"task": "pick_up"}),
    "Push": ("sim.tabletop.env:TabletopEnv", {"task": "push"}),
    "PutIn": ("sim.tabletop.env:TabletopEnv", {"task": "put_in"}),
    "Billiards": ("sim.billiards.env:BilliardsEnv", {}),
}
TABLETOP_TASKS: tuple[str, ...] = ("Reach", "PickUp", "Push", "PutIn")
NAMESPACE = "embodied"


def gym_id(task: str) -> str:
    return f"{NAMESPACE}/{task}-v0"


def check_task(task: str) -> str:
    """Return the canonical task name for ``task`` (also accepts the full Gymnasium id)."""
    name = task.removeprefix(NAMESPACE + "/").removesuffix("-v0")
    if name in TASKS:
        return name
    lowered = {k.lower(): k for k in TASKS}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, list(TASKS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise SimError(f"unknown task {task!r}.{hint} Known tasks: {', '.join(TASKS)}")


def register_all() -> None:
    """Register every task with Gymnasium (idempotent)."""
    for name, (entry, kwargs) in TASKS.items():
        if gym_id(name) not in gym.registry:
            gym.register(id=gym_id(name), entry_point=entry, kwargs=dict(kwargs))


def make(task: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with a helpful error for unknown names; kwargs go to the env constructor."""
    register_all()
    return gym.make(gym_id(check_task(task)), **kwargs)
