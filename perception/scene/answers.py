"""The operator's scene questions answered from an object list: pure functions, no I/O.

The agent answers "what do you see?", "where is the red cube?", "is the red cube left of the
blue cylinder?" and "is there a green cube?" from a perceived list; the world benchmark asks the
same functions of the simulator's true list and compares. Anything with ``color``, ``shape``
(objects) or ``kind`` (receptacles) and ``position`` works, so ``SceneObject``/``Receptacle`` and
ground truth built into them are answered alike.

"Left" and "right" are as seen from the agent-view camera, which faces the robot: left is the
base frame's -y (the convention of the task instructions).
"""

from __future__ import annotations

from typing import Any, Sequence

WHERE_TOLERANCE_M = 0.03  # two answers to "where is X?" agree when this close


def describe(item: Any) -> str:
    """"red cube" for an object, "bowl" for a receptacle."""
    kind = getattr(item, "kind", None)
    return kind if kind is not None else f"{item.color} {item.shape}"


def matches(item: Any, description: str) -> bool:
    """Every word of ``description`` names the item's colour, shape or kind ("red", "cube",
    "red cube", "bowl"); articles are ignored."""
    words = [w for w in description.lower().split() if w not in ("the", "a", "an")]
    own = set(describe(item).split())
    return bool(words) and all(w in own for w in words)


def what_do_you_see(items: Sequence[Any]) -> tuple[str, ...]:
    """Sorted descriptions of everything in view."""
    return tuple(sorted(describe(i) for i in items))


def find(items: Sequence[Any], description: str) -> Any | None:
    """The item a description names, or None when none or several match (ambiguous)."""
    found = [i for i in items if matches(i, description)]
    return found[0] if len(found) == 1 else None


def where_is(items: Sequence[Any], description: str) -> tuple[float, float, float] | None:
    item = find(items, description)
    return None if item is None else tuple(float(v) for v in item.position)


def is_there(items: Sequence[Any], description: str) -> bool:
    return any(matches(i, description) for i in items)


def is_left_of(items: Sequence[Any], a: str, b: str) -> bool | None:
    """Whether ``a`` is left of ``b`` as the agent-view camera sees it; None if either is missing."""
    pa, pb = where_is(items, a), where_is(items, b)
    if pa is None or pb is None:
        return None
    return pa[1] < pb[1]


def same_answer(question: str, a: Any, b: Any) -> bool:
    """Do two answers to one question agree? Positions within ``WHERE_TOLERANCE_M``."""
    if question == "where" and a is not None and b is not None:
        return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 <= WHERE_TOLERANCE_M
    return a == b


def answer(items: Sequence[Any], question: tuple[str, ...]) -> Any:
    """Answer a question given as a tuple: ("see",), ("where", d), ("left", d1, d2), ("there", d)."""
    kind, *args = question
    if kind == "see":
        return what_do_you_see(items)
    if kind == "where":
        return where_is(items, args[0])
    if kind == "left":
        return is_left_of(items, args[0], args[1])
    if kind == "there":
        return is_there(items, args[0])
    raise ValueError(f"unknown question kind {kind!r}")
