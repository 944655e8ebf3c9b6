"""bench.sim_bench: the keys other tools read, with tiny sizes so the test stays quick."""

import argparse
import json

import pytest

pytest.importorskip("sim.tabletop.experts")

from bench import sim_bench  # noqa: E402


def test_run_produces_the_documented_keys(capsys):
    args = argparse.Namespace(quick=True, out=None, episodes=2, collect_episodes=1, sizes="32,48x32")
    result = sim_bench.run(args)
    assert set(result["expert_success"]) == {"Reach", "PickUp", "Push", "PutIn"}
    assert all(0.0 <= r <= 1.0 for r in result["expert_success"].values())
    assert result["episodes"] == {"Reach": 2, "PickUp": 2, "Push": 2, "PutIn": 2}
    assert set(result["render_fps"]) == {"32x32", "48x32"} and min(result["render_fps"].values()) > 0
    assert result["render_vs_32x32"]["32x32"] == 1.0
    assert result["physics_steps_per_s"]["tabletop"] > 100
    assert result["ik"]["converged"] > 0.5 and result["ik"]["median_ms"] > 0
    assert result["collection"]["episodes_per_min_with_video"] > 0
    json.dumps(result)  # plain JSON types only
    assert "expert" in capsys.readouterr().err  # the human table goes to stderr


def test_wilson_interval():
    lo, hi = sim_bench.wilson(10, 10)
    assert hi == 1.0 and 0.65 < lo < 0.75
    lo, hi = sim_bench.wilson(0, 10)
    assert lo == 0.0 and 0.25 < hi < 0.35
    lo, hi = sim_bench.wilson(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9
