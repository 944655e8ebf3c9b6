"""Failure classes read off real MuJoCo episodes driven by the scripted expert."""

import numpy as np

import sim
from policy.failures import (LOST_TARGET, NEVER_REACHED, TOOK_DISTRACTOR, EpisodeWatcher,
                             tally)
from sim.tabletop.experts import Expert


def _scene_with_a_distractor():
    env = sim.make("PickUp", image_size=(32, 32))
    for seed in range(50):
        env.reset(seed=seed)
        if len(env.unwrapped.episode.objects) >= 2:
            return env
    raise AssertionError("no seed with a distractor")


def _drive(env, watcher, steps):
    expert = Expert(env, seed=0, noise=0.0)
    expert.reset()
    for _ in range(steps):
        env.step(expert.act())
        watcher.step()


def test_lifting_another_object_is_taking_a_distractor():
    env = _scene_with_a_distractor()
    watcher = EpisodeWatcher(env)  # the instruction's target, as the evaluator sees it
    other = env.unwrapped.episode.objects[1].description
    env.unwrapped.set_goal("pick_up", other)  # the "policy" goes for the other object
    _drive(env, watcher, 40)
    assert watcher.verdict(False) == TOOK_DISTRACTOR
    env.close()


def test_standing_still_never_reaches_and_lifting_without_finishing_is_counted_apart():
    env = _scene_with_a_distractor()
    idle = EpisodeWatcher(env)
    for _ in range(3):
        env.step(np.zeros(7, np.float32))
        idle.step()
    assert idle.verdict(False) == NEVER_REACHED
    assert idle.verdict(True) == "success"
    lifted = EpisodeWatcher(env)
    _drive(env, lifted, 40)  # the expert lifts the real target; call it a failure anyway
    assert lifted.verdict(False) == LOST_TARGET
    assert tally([NEVER_REACHED, LOST_TARGET, "success", NEVER_REACHED])[NEVER_REACHED] == 2
    env.close()
