import pytest

from ros_nodes.watchdog import Watchdog


def test_unseen_inputs_are_stale_and_freshness_expires():
    now = [0.0]
    dog = Watchdog(0.2, ("images", "state"), clock=lambda: now[0])
    assert dog.stale() == ["images", "state"]
    dog.feed("images")
    dog.feed("state")
    assert dog.ok()
    now[0] = 0.15
    dog.feed("state")
    now[0] = 0.25
    assert dog.stale() == ["images"]
    now[0] = 0.36
    assert dog.stale() == ["images", "state"]
    with pytest.raises(ValueError):
        Watchdog(0.0, ("x",))
