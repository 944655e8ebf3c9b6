"""Billiards physics and events without rendering: strikes, contacts, cushions, rest, determinism."""

import numpy as np
import pytest

from sim.billiards import table
from sim.billiards.shot import simulate_shot
from sim.billiards.world import BilliardsWorld
from sim.errors import SimError


@pytest.fixture(scope="module")
def world():
    w = BilliardsWorld(cameras=())
    yield w
    w.close()


def _park_others(world, cue_xy, others=None):
    """Cue ball at ``cue_xy``, named balls at given spots, the rest in a far corner cluster."""
    others = others or {}
    xy = []
    for i, name in enumerate(world.ball_names):
        if name == "cue":
            xy.append(cue_xy)
        elif name in others:
            xy.append(others[name])
        else:  # a row near the bottom-left, out of the way
            xy.append((-1.0 + 0.07 * i, -0.5))
    world.reset(np.random.default_rng(0))
    world.place_balls(np.array(xy))
    import mujoco

    mujoco.mj_forward(world.model, world.data)


def test_straight_shot_into_cushion_gives_strike_then_cushion(world):
    _park_others(world, (0.5, 0.0))
    rec = simulate_shot(world, aim=0.0, power=0.3, record=False)
    kinds = [e.kind for e in rec.events]
    assert kinds[0] == "strike"
    assert rec.events[0].b == "cue"
    cushions = [e for e in rec.events if e.kind == "cushion"]
    assert cushions and cushions[0].a == "cue" and cushions[0].b == "cushion_right"
    # Events are time-ordered and one touch gives one event (no duplicates within the debounce).
    times = [e.t for e in rec.events]
    assert times == sorted(times)
    assert sum(1 for e in rec.events if e.kind == "strike") == 1


def test_ball_ball_contact_names_both_balls_and_transfers_motion(world):
    _park_others(world, (-0.5, 0.0), {"red": (0.0, 0.0)})
    rec = simulate_shot(world, aim=0.0, power=0.2, record=False)
    bb = [e for e in rec.events if e.kind == "ball_ball"]
    assert bb and (bb[0].a, bb[0].b) == ("cue", "red")
    red = rec.ball_names.index("red")
    # A full-ball hit: red takes the cue ball's speed along +x; the rolling cue ball only follows
    # on with its topspin (about 2/7 of its speed), so it ends well behind red.
    assert rec.ball_pos[-1, red, 0] > 0.3
    assert abs(rec.ball_pos[-1, red, 1]) < 0.05
    cue = rec.ball_names.index("cue")
    assert rec.ball_pos[-1, cue, 0] < 0.6 * rec.ball_pos[-1, red, 0]


def test_balls_come_to_rest_and_stay_on_the_cloth(world):
    world.reset(np.random.default_rng(3), "rack")
    rec = simulate_shot(world, aim=0.0, power=1.0, record=False, max_time=12.0)
    assert rec.duration < 12.0  # ended because everything stopped, not by the cap
    in_play = ~world.potted
    assert np.all(world.ball_speeds()[in_play] < 0.01)
    assert np.all(np.linalg.norm(rec.ball_vel[-1, in_play], axis=1) < 0.01)
    assert np.linalg.norm(rec.ball_vel[:, 0], axis=1).max() > 4.0  # a full-power break
    z = rec.ball_pos[-1, in_play, 2]
    assert np.allclose(z, table.BED_Z + table.BALL_RADIUS, atol=2e-3)
    # The break spread the rack: many ball-ball contacts.
    assert sum(e.kind == "ball_ball" for e in rec.events) >= 5


def test_ball_dropped_into_a_pocket_is_potted(world):
    # A slow roll straight into the top-right corner pocket.
    _park_others(world, (1.0, 0.365))
    aim = np.arctan2(table.HALF_WIDTH - 0.365, table.HALF_LENGTH - 1.0)
    rec = simulate_shot(world, aim=aim, power=0.15, record=False)
    pots = [e for e in rec.events if e.kind == "pot"]
    assert [(e.a, e.b) for e in pots] == [("cue", "top_right")]
    assert rec.potted[-1, rec.ball_names.index("cue")]
    assert rec.ball_pos[-1, 0, 2] < table.BED_Z  # under the cloth, out of play


def test_same_seed_same_shot(world):
    out = []
    for _ in range(2):
        world.reset(np.random.default_rng(7), "scatter")
        out.append(simulate_shot(world, aim=0.7, power=0.6, record=False))
    assert np.array_equal(out[0].ball_pos, out[1].ball_pos)
    assert [e.to_dict() for e in out[0].events] == [e.to_dict() for e in out[1].events]
    world.reset(np.random.default_rng(8), "scatter")
    other = simulate_shot(world, aim=0.7, power=0.6, record=False)
    assert not np.array_equal(other.ball_pos[0], out[0].ball_pos[0])


def test_bad_shot_arguments_are_user_errors(world):
    world.reset(np.random.default_rng(0))
    with pytest.raises(SimError):
        simulate_shot(world, aim=float("nan"), power=0.5)
    with pytest.raises(SimError):
        simulate_shot(world, aim=0.0, power=1.5)


def test_player_targets_pottable_balls_and_explores_when_asked(world):
    from sim.billiards.player import ScriptedPlayer

    world.reset(np.random.default_rng(0), "scatter")
    state = world.state()
    player = ScriptedPlayer(np.random.default_rng(0), aim_noise_deg=0.0, power_noise=0.0)
    options = player.candidates(state)
    assert options and all(b != "cue" for *_, b, _ in options)
    assert [o[0] for o in options] == sorted(o[0] for o in options)
    aim, power, target = player.plan(state)
    assert (aim, target) == (options[0][1], options[0][3]) and 0.0 < power <= 1.0
    explorer = ScriptedPlayer(np.random.default_rng(0), explore=1.0)
    plans = [explorer.plan(state) for _ in range(5)]
    assert all(t is None for *_, t in plans) and len({round(a, 6) for a, *_ in plans}) == 5
