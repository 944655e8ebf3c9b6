"""Task sampling and success predicates: each predicate is checked on positive and negative
hand-built states, and instructions respect the paraphrase split and the colour filter."""

import numpy as np
import pytest

from sim.errors import SimError
from sim.tabletop import tasks
from sim.tabletop.tasks import TaskState


def _state(**kw):
    base = dict(tcp_pos=np.array([0.5, 0.0, 0.3]), target_pos=np.array([0.5, 0.0, 0.02]),
                target_start=np.array([0.5, 0.0, 0.02]), target_half_height=0.02,
                left_touch=False, right_touch=False)
    base.update(kw)
    return TaskState(**base)


def test_reach_predicate():
    assert tasks.reach_success(_state(tcp_pos=np.array([0.5, 0.005, 0.045])))
    assert not tasks.reach_success(_state(tcp_pos=np.array([0.5, 0.0, 0.07])))  # 3 cm above the top
    assert not tasks.reach_success(_state(tcp_pos=np.array([0.53, 0.0, 0.04])))


def test_pick_up_predicate():
    held = dict(left_touch=True, right_touch=True)
    assert tasks.pick_up_success(_state(target_pos=np.array([0.5, 0.0, 0.08]), **held))
    assert not tasks.pick_up_success(_state(target_pos=np.array([0.5, 0.0, 0.06]), **held))  # 4 cm
    assert not tasks.pick_up_success(_state(target_pos=np.array([0.5, 0.0, 0.08]), left_touch=True))
    assert not tasks.pick_up_success(_state(target_pos=np.array([0.5, 0.0, 0.02]), **held))


def test_push_predicate():
    moved_left = np.array([0.5, -0.09, 0.02])
    assert tasks.push_success(_state(target_pos=moved_left, side="left"))
    assert not tasks.push_success(_state(target_pos=moved_left, side="right"))  # wrong side
    assert not tasks.push_success(_state(target_pos=np.array([0.5, -0.05, 0.02]), side="left"))
    assert not tasks.push_success(_state(target_pos=moved_left, side="left", right_touch=True))
    assert not tasks.push_success(_state(target_pos=moved_left + [0, 0, 0.05], side="left"))  # lifted


def test_put_in_predicate():
    bowl = np.array([0.5, 0.2, 0.0])
    inside = np.array([0.51, 0.19, 0.008 + 0.02 + 0.002])
    assert tasks.put_in_success(_state(target_pos=inside, receptacle="bowl", receptacle_pos=bowl))
    assert not tasks.put_in_success(_state(target_pos=inside, receptacle="bowl", receptacle_pos=bowl,
                                           left_touch=True))  # still held
    assert not tasks.put_in_success(_state(target_pos=inside + [0, 0, 0.06], receptacle="bowl",
                                           receptacle_pos=bowl))  # hovering above
    assert not tasks.put_in_success(_state(target_pos=np.array([0.5, 0.0, 0.02]), receptacle="bowl",
                                           receptacle_pos=bowl))  # on the table beside it
    plate = np.array([0.5, -0.2, 0.0])
    on_plate = np.array([0.47, -0.22, 0.01 + 0.025])
    assert tasks.put_in_success(_state(target_pos=on_plate, target_half_height=0.025,
                                       receptacle="plate", receptacle_pos=plate))
    beside = np.array([0.5, -0.2 + 0.1, 0.025])  # on the table just past the plate's rim
    assert not tasks.put_in_success(_state(target_pos=beside, target_half_height=0.025,
                                           receptacle="plate", receptacle_pos=plate))


def test_sampling_is_unambiguous_and_respects_split_and_colors():
    rng = np.random.default_rng(0)
    heldout = {t for f in tasks.FAMILIES for t in tasks.TEMPLATES[f]["heldout"]}
    for i in range(200):
        family = tasks.FAMILIES[i % 4]
        ep = tasks.sample_episode(rng, family, ("red", "blue"), "train")
        combos = [(o.color, o.shape) for o in ep.objects]
        assert len(set(combos)) == len(combos)  # no distractor looks like the target
        assert ep.target.color in ("red", "blue")
        assert ep.target.description in ep.instruction
        assert 1 <= len(ep.objects) <= 4
        xy = np.array([o.xy for o in ep.objects])
        d = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy))
        assert d.min() >= 0.09
        if family == "push":
            assert ep.side in ep.instruction
        if family == "put_in":
            assert ep.receptacle in ep.instruction
    phrasings = {tasks.sample_episode(rng, "pick_up", ("red",), "heldout").instruction for _ in range(30)}
    assert phrasings == {t.format(obj="red cube") for t in tasks.TEMPLATES["pick_up"]["heldout"]} | \
        {t.format(obj="red cylinder") for t in tasks.TEMPLATES["pick_up"]["heldout"]}
    assert not heldout & set(t for f in tasks.FAMILIES for t in tasks.TEMPLATES[f]["train"])


def test_colors_are_distinct_and_errors_are_clear():
    rgb = np.array(list(tasks.COLORS.values()))
    assert len(rgb) >= 6
    d = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb))
    assert d.min() > 0.3
    with pytest.raises(SimError, match="known"):
        tasks.check_colors(("magenta",))
    with pytest.raises(SimError):
        tasks.check_split("test")
    with pytest.raises(SimError):
        tasks.check_family("stack")


def test_object_split_keeps_heldout_combinations_out_of_training():
    rng = np.random.default_rng(3)
    held = set(tasks.HELDOUT_COMBOS)
    targets = set()
    for i in range(400):
        family = tasks.FAMILIES[i % 4]
        ep = tasks.sample_episode(rng, family, tuple(tasks.COLORS), "train", 3, object_split="train")
        combos = {(o.color, o.shape) for o in ep.objects}
        assert not combos & held, (ep.instruction, combos)
        targets.add((ep.target.color, ep.target.shape))
    # every colour and every shape is still trained on
    assert {c for c, _ in targets} == set(tasks.COLORS)
    for _ in range(100):
        ep = tasks.sample_episode(rng, "pick_up", tuple(tasks.COLORS), "train", 3, object_split="heldout")
        assert (ep.target.color, ep.target.shape) in held
    # "all" draws exactly what it drew before the split existed (same RNG stream)
    a = tasks.sample_episode(np.random.default_rng(7), "push", tuple(tasks.COLORS), "train", 3)
    b = tasks.sample_episode(np.random.default_rng(7), "push", tuple(tasks.COLORS), "train", 3, object_split="all")
    assert a == b
    with pytest.raises(SimError, match="object_split"):
        tasks.check_object_split("test")


def test_extended_wording_never_uses_a_heldout_phrasing():
    rng = np.random.default_rng(5)
    for family in tasks.FAMILIES:
        assert set(tasks.EXTRA_TEMPLATES[family]).isdisjoint(tasks.TEMPLATES[family]["heldout"])
        seen = {tasks.sample_episode(rng, family, ("red",), "extended").instruction for _ in range(200)}
        heldout = {tasks.sample_episode(np.random.default_rng(k), family, ("red",), "heldout").instruction
                   for k in range(60)}
        assert seen.isdisjoint(heldout)
        assert len(seen) > len(tasks.TEMPLATES[family]["train"]) * 2
    assert any("block" in s for s in seen) or any("can" in s or "tube" in s for s in seen)
