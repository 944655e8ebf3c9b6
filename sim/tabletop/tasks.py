"""Task families: what an episode looks like, how it is described in words, and when it is done.

An episode is sampled from a seeded RNG into a frozen ``EpisodeSpec`` (objects with colour,
shape and pose, the target, a side or a receptacle, the instruction). Success predicates are
plain functions of a ``TaskState`` snapshot of the sim, so tests can build positive and
negative cases by hand without stepping physics.

Directions ("left"/"right") are as seen in the agentview image, whose camera faces the robot:
"left" is world -y, "right" is world +y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import SimError
from sim.tabletop import scene

FAMILIES = ("reach", "pick_up", "push", "put_in")
MAX_STEPS = {"reach": 60, "pick_up": 80, "push": 100, "put_in": 120}  # ~2-3x what the expert needs

# Named colours with well separated RGB (no white: the plate is white).
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.65, 0.15),
    "blue": (0.1, 0.25, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.55, 0.15, 0.75),
    "orange": (1.0, 0.5, 0.0),
    "cyan": (0.1, 0.8, 0.85),
    "pink": (1.0, 0.5, 0.75),
}
SIDES = {"left": np.array([0.0, -1.0]), "right": np.array([0.0, 1.0])}

# Paraphrase templates. "heldout" phrasings never appear with instruction_split="train", so a
# policy can be evaluated on wording it has not seen.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "reach": {
        "train": ("touch the {obj}", "reach the {obj}", "move the gripper to the {obj}",
                  "put your gripper on the {obj}"),
        "heldout": ("go and touch the {obj}", "tap the {obj}"),
    },
    "pick_up": {
        "train": ("pick up the {obj}", "lift the {obj}", "grasp the {obj} and lift it",
                  "pick the {obj} up"),
        "heldout": ("raise the {obj} off the table", "grab the {obj} and hold it up"),
    },
    "push": {
        "train": ("push the {obj} to the {side}", "slide the {obj} to the {side}",
                  "push the {obj} towards the {side}"),
        "heldout": ("nudge the {obj} over to the {side}", "shove the {obj} {side}wards"),
    },
    "put_in": {
        "train": ("put the {obj} {prep} the {rec}", "place the {obj} {prep2} the {rec}",
                  "move the {obj} {prep2} the {rec}"),
        "heldout": ("drop the {obj} {prep} the {rec}", "the {obj} goes {prep} the {rec}"),
    },
}
# More training-only wording for policies that read language through a pretrained encoder
# (instruction_split="extended" = "train" + these). They avoid the held-out phrasings' verbs and
# word orders (tap, raise, grab, hold, nudge, shove, drop, "goes", "off the table", "over to"), so
# ``--split heldout`` stays a test of wording never trained on.
EXTRA_TEMPLATES: dict[str, tuple[str, ...]] = {
    "reach": ("go to the {obj}", "approach the {obj}", "please touch the {obj}",
              "can you reach the {obj}", "bring the gripper to the {obj}", "move your hand onto the {obj}",
              "make contact with the {obj}", "reach out to the {obj}"),
    "pick_up": ("take the {obj}", "please pick up the {obj}", "lift up the {obj}",
                "could you pick up the {obj}", "pick up the {obj} from the table", "grasp and lift the {obj}",
                "get the {obj} and lift it", "lift the {obj} into the air"),
    "push": ("please push the {obj} to the {side}", "push the {obj} {side}", "slide the {obj} {side}",
             "move the {obj} to the {side}", "sweep the {obj} to the {side}",
             "push the {obj} to the {side} side", "could you slide the {obj} to the {side}"),
    "put_in": ("set the {obj} {prep} the {rec}", "please put the {obj} {prep} the {rec}",
               "place the {obj} {prep} the {rec}", "transfer the {obj} {prep2} the {rec}",
               "could you move the {obj} {prep2} the {rec}", "put the {obj} {prep2} the {rec}"),
}
# Operators' synonyms for the shapes, used only with instruction_split="extended".
NOUN_SYNONYMS = {"cube": ("block",), "cylinder": ("can", "tube")}
SPLITS = ("train", "heldout", "all", "extended")

# Colour/shape combinations never placed in a scene with object_split="train" and always the
# target with object_split="heldout": a test of combinations the policy has not seen. Each colour
# and each shape still appears in training (with the other shape / other colours).
HELDOUT_COMBOS = (("green", "cylinder"), ("purple", "cube"), ("orange", "cylinder"), ("cyan", "cube"))
OBJECT_SPLITS = ("all", "train", "heldout")

# Success thresholds (metres).
REACH_TOL = 0.02
LIFT_HEIGHT = 0.05
PUSH_DISTANCE = 0.08
RESTING_TOL = 0.015


@dataclass(frozen=True)
class ObjectSpec:
    slot: str  # pool body name, e.g. "cube2"
    color: str
    shape: str
    xy: tuple[float, float]
    yaw: float

    @property
    def description(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class EpisodeSpec:
    family: str
    objects: tuple[ObjectSpec, ...]  # objects[0] is the target
    instruction: str
    side: str | None = None  # push
    receptacle: str | None = None  # put_in: "bowl" | "plate"
    receptacle_xy: tuple[float, float] | None = None

    @property
    def target(self) -> ObjectSpec:
        return self.objects[0]


@dataclass
class TaskState:
    """What the predicates look at: a snapshot of the sim (positions in metres, world frame)."""

    tcp_pos: np.ndarray
    target_pos: np.ndarray  # centre of the target object now
    target_start: np.ndarray  # centre of the target object at reset
    target_half_height: float
    left_touch: bool  # left finger pad in contact with the target
    right_touch: bool
    side: str | None = None
    receptacle: str | None = None
    receptacle_pos: np.ndarray | None = None


def reach_success(s: TaskState) -> bool:
    """TCP within 2 cm of the centre of the target's top face."""
    top = s.target_pos + np.array([0.0, 0.0, s.target_half_height])
    return bool(np.linalg.norm(s.tcp_pos - top) < REACH_TOL)


def pick_up_success(s: TaskState) -> bool:
    """Target lifted >= 5 cm off the table and held between both fingers."""
    lifted = s.target_pos[2] - s.target_half_height >= LIFT_HEIGHT
    return bool(lifted and s.left_touch and s.right_touch)


def push_success(s: TaskState) -> bool:
    """Target moved >= 8 cm towards the named side, resting on the table and released."""
    if s.side not in SIDES:
        return False
    moved = float(np.dot(s.target_pos[:2] - s.target_start[:2], SIDES[s.side]))
    resting = abs(s.target_pos[2] - s.target_half_height) < RESTING_TOL
    released = not (s.left_touch or s.right_touch)
    return bool(moved >= PUSH_DISTANCE and resting and released)


def put_in_success(s: TaskState) -> bool:
    """Target resting inside the bowl / on the plate and released."""
    if s.receptacle_pos is None or s.receptacle not in scene.RECEPTACLES:
        return False
    if s.receptacle == "bowl":
        radius, floor_top = scene.BOWL_RADIUS - 0.02, 0.008
    else:
        radius, floor_top = scene.PLATE_RADIUS - 0.01, 2 * scene.PLATE_HALF_THICK
    horizontal = np.linalg.norm(s.target_pos[:2] - s.receptacle_pos[:2])
    height = s.target_pos[2] - (s.receptacle_pos[2] + floor_top) - s.target_half_height
    released = not (s.left_touch or s.right_touch)
    return bool(horizontal < radius and -0.01 < height < RESTING_TOL and released)


PREDICATES = {"reach": reach_success, "pick_up": pick_up_success, "push": push_success,
              "put_in": put_in_success}


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise SimError(f"unknown tabletop task {family!r}; known: {', '.join(FAMILIES)}")
    return family


def check_colors(colors: tuple[str, ...] | None) -> tuple[str, ...]:
    if colors is None:
        return tuple(COLORS)
    colors = tuple(colors)
    bad = [c for c in colors if c not in COLORS]
    if bad or not colors:
        raise SimError(f"unknown colour(s) {bad or colors!r}; known: {', '.join(COLORS)}")
    return colors


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise SimError(f"unknown instruction_split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def check_object_split(split: str) -> str:
    if split not in OBJECT_SPLITS:
        raise SimError(f"unknown object_split {split!r}; use one of {', '.join(OBJECT_SPLITS)}")
    return split


def templates(family: str, split: str) -> tuple[str, ...]:
    t = TEMPLATES[family]
    if split == "extended":
        return t["train"] + EXTRA_TEMPLATES[family]
    return t["train"] + t["heldout"] if split == "all" else t[split]


def _target_combo(rng: np.random.Generator, target_colors: tuple[str, ...], object_split: str) -> tuple[str, str]:
    """The target's colour and shape. With object_split "all" the draws are the original ones, so
    existing seeds keep their scenes."""
    if object_split == "all":
        return str(rng.choice(target_colors)), str(rng.choice(scene.SHAPES))
    held = object_split == "heldout"
    combos = [(c, s) for c in target_colors for s in scene.SHAPES if ((c, s) in HELDOUT_COMBOS) == held]
    if not combos:
        raise SimError(f"no {object_split} colour/shape combination among target colours {target_colors}")
    return combos[int(rng.integers(len(combos)))]


def _far_from(xy: np.ndarray, others: list[np.ndarray], dist: float) -> bool:
    return all(np.linalg.norm(xy - o) >= dist for o in others)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def sample_episode(rng: np.random.Generator, family: str, target_colors: tuple[str, ...],
                   split: str = "train", max_distractors: int = 3, object_split: str = "all") -> EpisodeSpec:
    """Draw one episode: target, 0..max_distractors distractors, placements and the instruction.

    ``split`` picks the instruction templates; ``object_split`` keeps ``HELDOUT_COMBOS`` out of
    the scene ("train") or makes one of them the target ("heldout").
    """
    side = receptacle = None
    rec_xy = None
    if family == "push":
        side = str(rng.choice(list(SIDES)))
        target_xy = np.array([rng.uniform(0.42, 0.6), rng.uniform(-0.12, 0.12)])
    else:
        target_xy = np.array([rng.uniform(0.38, 0.62), rng.uniform(-0.2, 0.2)])
    if family == "put_in":
        receptacle = str(rng.choice(scene.RECEPTACLES))
        for _ in range(100):
            rec_xy = np.array([rng.uniform(0.4, 0.6), rng.uniform(-0.22, 0.22)])
            if np.linalg.norm(rec_xy - target_xy) > 0.17:
                break
        else:  # move the target to the other side of the table
            rec_xy = np.array([0.5, -0.2 * np.sign(target_xy[1] or 1.0)])
            target_xy = np.array([target_xy[0], 0.2 * np.sign(target_xy[1] or 1.0)])

    target_color, target_shape = _target_combo(rng, target_colors, object_split)
    used = {(target_color, target_shape)}
    if object_split == "train":
        used.update(HELDOUT_COMBOS)  # never placed as distractors either
    slots = {s: 0 for s in scene.SHAPES}

    def take_slot(shape: str) -> str:
        name = f"{shape}{slots[shape]}"
        slots[shape] += 1
        return name

    def yaw() -> float:
        return float(rng.uniform(-np.pi / 4, np.pi / 4))

    objects = [ObjectSpec(take_slot(target_shape), target_color, target_shape,
                          (float(target_xy[0]), float(target_xy[1])), yaw())]
    placed = [target_xy]
    n_distractors = int(rng.integers(0, max_distractors + 1))
    for _ in range(n_distractors):
        # A colour/shape combination not used yet keeps the instruction unambiguous.
        combos = [(c, s) for c in COLORS for s in scene.SHAPES if (c, s) not in used]
        color, shape = combos[int(rng.integers(len(combos)))]
        for _ in range(200):
            xy = np.array([rng.uniform(0.32, 0.68), rng.uniform(-0.3, 0.3)])
            if not _far_from(xy, placed, 0.09):
                continue
            if rec_xy is not None and np.linalg.norm(xy - rec_xy) < 0.15:
                continue
            if side is not None:  # keep the push corridor clear
                d = SIDES[side]
                if _segment_distance(xy, target_xy - 0.1 * d, target_xy + 0.2 * d) < 0.09:
                    continue
            break
        else:
            continue  # no room: fewer distractors this time
        used.add((color, shape))
        placed.append(xy)
        objects.append(ObjectSpec(take_slot(shape), color, shape, (float(xy[0]), float(xy[1])), yaw()))

    template = str(rng.choice(templates(family, split)))
    preps = {"bowl": ("in", "into"), "plate": ("on", "onto")}
    prep, prep2 = preps.get(receptacle or "", ("", ""))
    described = objects[0].description
    if split == "extended" and rng.random() < 0.3:
        described = f"{target_color} {rng.choice(NOUN_SYNONYMS[target_shape])}"
    instruction = template.format(obj=described, side=side or "", rec=receptacle or "",
                                  prep=prep, prep2=prep2)
    return EpisodeSpec(family, tuple(objects), instruction, side, receptacle,
                       None if rec_xy is None else (float(rec_xy[0]), float(rec_xy[1])))
