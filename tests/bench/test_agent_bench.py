"""bench.agent_bench: operator paraphrases run end to end by the agent with the shipped policy."""

import argparse
from pathlib import Path

import pytest

from bench import agent_bench
from bench.cli import BENCHMARKS
from common.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_paraphrases_are_not_the_policys_templates():
    from sim.tabletop import tasks

    assert BENCHMARKS["agent"] == "bench.agent_bench"
    for family, phrasings in agent_bench.PARAPHRASES.items():
        known = set(tasks.TEMPLATES[family]["train"]) | set(tasks.TEMPLATES[family]["heldout"]) \
            | set(tasks.EXTRA_TEMPLATES[family])
        assert not set(phrasings) & known, family


def test_one_scene_per_family_runs_to_success_in_the_operators_words():
    args = argparse.Namespace(quick=True, out=None, episodes=1, families="pick_up,push",
                              checkpoint=str(ROOT / "checkpoints" / "vla-default"))
    result = agent_bench.run(args)
    assert set(result["per_family"]) == {"pick_up", "push"}
    para = [e["paraphrase"] for e in result["episodes"]]
    assert all(e["paraphrase"]["text"] != e["training_phrasing"]["text"] for e in result["episodes"])
    assert result["command_success"] == 1.0, para  # seeds where the shipped policy succeeds
    with pytest.raises(UserError):
        agent_bench.run(argparse.Namespace(quick=True, out=None, episodes=1, families="stack",
                                           checkpoint=args.checkpoint))
