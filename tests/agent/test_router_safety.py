import numpy as np
import pytest

from agent.router import route
from agent.safety import SafetyFilter

COLORS = ("red", "green", "blue", "yellow")
SHAPES = ("cube", "cylinder")


@pytest.mark.parametrize("text,kind,family,target,extra", [
    ("pick up the red cube", "command", "pick_up", "red cube", {}),
    ("Please lift the blue cylinder.", "command", "pick_up", "blue cylinder", {}),
    ("can you push the green cube to the left?", "command", "push", "green cube", {"side": "left"}),
    ("put the yellow cube in the bowl", "command", "put_in", "yellow cube", {"receptacle": "bowl"}),
    ("move the red cube onto the plate", "command", "put_in", "red cube", {"receptacle": "plate"}),
    ("touch the red cylinder", "command", "reach", "red cylinder", {}),
    ("where is the cue?", "question", "", "", {"topic": "where"}),
    ("what did the robot just do?", "question", "", "", {"topic": "history"}),
    ("what do you see on the table?", "question", "", "", {"topic": "scene"}),
    ("which ball did the cue ball hit first?", "question", "", "", {"topic": "video"}),
    ("STOP", "stop", "", "", {}),
    ("please stop", "stop", "", "", {}),
    ("push the red cube", "unknown", "", "", {}),
    ("sing a song", "unknown", "", "", {}),
    ("", "unknown", "", "", {}),
])
def test_routes(text, kind, family, target, extra):
    r = route(text, COLORS, SHAPES)
    assert r.kind == kind
    assert r.family == family
    assert r.target == target
    for key, value in extra.items():
        assert getattr(r, key) == value


def test_safety_clamps_refuses_and_keeps_workspace():
    f = SafetyFilter()
    out = f(np.array([0.2, 0, 0, 0, 0, 1.0, 2.0]))
    np.testing.assert_allclose(out, [0.05, 0, 0, 0, 0, 0.25, 1.0], atol=1e-7)
    assert f.clamped == 1
    assert np.all(f(np.array([np.nan] * 7)) == 0) and f.refused == 1
    # At the table top, moving down is cancelled but sideways motion stays.
    out = f(np.array([0, 0.01, -0.03, 0, 0, 0, 0]), tcp_position=np.array([0.5, 0.0, 0.02]))
    assert out[2] == 0.0 and out[1] == pytest.approx(0.01) and f.workspace_stops == 1
    # Moving back into the box from outside is allowed.
    out = f(np.array([0, 0, 0.03, 0, 0, 0, 0]), tcp_position=np.array([0.5, 0.0, 0.0]))
    assert out[2] == pytest.approx(0.03)
