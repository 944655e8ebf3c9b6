"""The routing sets' shared parts: a fixed scene for the router and the file format's parser.

A set is a text file: ``@world <objects, comma separated> | <receptacles>`` starts a scene group,
then one utterance per line with its expected route after a separator (a TAB in the first set,
`` || `` in the later ones); blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
