"""The routing sets' shared parts: a fixed scene for the router and the file format's parser.

A set is a text file: ``@world <objects, comma separated> | <receptacles>`` starts a scene group,
then one utterance per line with its expected route after a separator (a TAB in the first set,
`` || `` in the later ones); blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.world import WorldObject

COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink")  # sim.tabletop.tasks.COLORS
SHAPES = ("cube", "cylinder")  # sim.tabletop.scene.SHAPES


class FixedWorld:
    """A scene as the router sees it: the objects and receptacles on the table."""

    def __init__(self, objects: list[str], receptacles: list[str]) -> None:
        self._objects = [WorldObject(n, *n.split(), np.zeros(3)) for n in objects]
        self._receptacles = receptacles

    def objects(self) -> list[WorldObject]:
        return self._objects

    def receptacles(self) -> list[str]:
        return self._receptacles


@dataclass
class Case:
    text: str
    label: str
    world: FixedWorld
    line: int

    @property
    def kind(self) -> str:
        return self.label.split()[0]


def _names(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def load_cases(path: Path, separator: str) -> list[Case]:
    cases: list[Case] = []
    world = None
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("@world"):
            objects, _, recs = line[len("@world"):].partition("|")
            world = FixedWorld(_names(objects), _names(recs))
            continue
        text, sep, label = line.rpartition(separator)
        assert sep and world is not None, f"line {i}: {line!r}"
        cases.append(Case(text.strip(), label.strip(), world, i))
    return cases


def route_all(cases: list[Case]) -> list[tuple[Case, Any]]:
    """Every case routed against its own scene."""
    from agent.router import route

    return [(c, route(c.text, COLORS, SHAPES, world=c.world)) for c in cases]


def show(rows: list[tuple[Case, Any]]) -> str:
    """The mistakes, one line each, for an assertion message."""
    return "\n".join(f"  line {c.line}: {c.text!r} expected {c.label!r}, got {r.kind} {r.family or r.topic} "
                     f"{r.target!r} {r.side}{r.receptacle} ({r.intent} {r.score:.2f}) {r.question}"
                     for c, r in rows)


def check_coverage(cases: list[Case], kinds: set[str], targets_on_table: bool = True) -> None:
    """A set is big enough, uses every route kind and every command family, and (optionally) each
    command's target is on its scene's table."""
    assert len(cases) >= 300
    assert {c.kind for c in cases} == kinds
    families = {c.label.split()[1] for c in cases if c.kind == "command"}
    assert families == {"reach", "pick_up", "push", "put_in"}
    if targets_on_table:
        for c in cases:
            if c.kind == "command":
                assert " ".join(c.label.split()[2:4]) in [o.name for o in c.world.objects()], c
