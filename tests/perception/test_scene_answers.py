"""perception.scene.answers and the tracker's assignment: pure functions, hand-built inputs."""

import numpy as np

from perception.scene import answers
from perception.scene.track import Tracker, assign
from perception.scene.types import Receptacle, SceneObject


def _obj(i, color, shape, x, y):
    return SceneObject(id=i, color=color, shape=shape, position=(x, y, 0.02), size=(0.04, 0.04, 0.04))


ITEMS = [_obj(1, "red", "cube", 0.5, -0.1), _obj(2, "blue", "cylinder", 0.5, 0.1),
         _obj(3, "red", "cylinder", 0.4, 0.0), Receptacle("bowl", (0.6, 0.2, 0.0), 0.085)]


def test_questions():
    assert answers.what_do_you_see(ITEMS) == ("blue cylinder", "bowl", "red cube", "red cylinder")
    assert answers.where_is(ITEMS, "the red cube") == (0.5, -0.1, 0.02)
    assert answers.where_is(ITEMS, "red") is None  # two red things: ambiguous, not a guess
    assert answers.where_is(ITEMS, "green cube") is None
    assert answers.is_left_of(ITEMS, "red cube", "blue cylinder") is True  # -y is left
    assert answers.is_left_of(ITEMS, "blue cylinder", "red cube") is False
    assert answers.is_left_of(ITEMS, "green cube", "red cube") is None
    assert answers.is_there(ITEMS, "a bowl") and not answers.is_there(ITEMS, "plate")
    assert answers.answer(ITEMS, ("there", "red cylinder")) is True


def test_same_answer_tolerates_small_position_differences():
    assert answers.same_answer("where", (0.5, 0.0, 0.02), (0.51, 0.01, 0.02))
    assert not answers.same_answer("where", (0.5, 0.0, 0.02), (0.55, 0.0, 0.02))
    assert not answers.same_answer("where", None, (0.5, 0.0, 0.02))
    assert answers.same_answer("see", ("red cube",), ("red cube",))


def test_assign_is_the_minimum_cost_matching():
    cost = np.array([[0.01, 0.02], [0.015, 0.10]])
    # greedy would take (0, 0) first and leave row 1 with 0.10 (> gate): optimum crosses over
    assert sorted(assign(cost, gate=0.05)) == [(0, 1), (1, 0)]
    assert assign(np.array([[0.2]]), gate=0.15) == []


def test_tracker_keeps_ids_forgets_after_memory():
    tr = Tracker(memory_s=0.5)

    def obs(x):
        return {"color": "red", "position": np.array([x, 0.0, 0.02]), "cube_score": 1.0}

    (t1, seen), = tr.update(0.0, [obs(0.5)])
    (t2, _), = tr.update(0.1, [obs(0.54)])  # moved 4 cm: same object
    assert t1.id == t2.id and seen
    (t3, seen3), = tr.update(0.3, [])
    assert t3.id == t1.id and not seen3  # hidden, remembered
    assert tr.update(1.0, []) == []  # forgotten after memory_s
    (t4, _), = tr.update(1.1, [obs(0.5)])
    assert t4.id != t1.id
