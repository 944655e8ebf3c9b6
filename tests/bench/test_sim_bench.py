"""bench.sim_bench: the keys other tools read, with tiny sizes so the test stays quick."""

import argparse
import json

from bench import sim_bench


def test_run_produces_the_documented_keys(capsys):
    args = argparse.Namespace(quick=True, out=None, episodes=2, collect_episodes=1, sizes="32,48x32",
                              scaling_sizes="4,2", scaling_window=2)
    result = sim_bench.run(args)
    assert set(result["expert_success"]) == {"Reach", "PickUp", "Push", "PutIn"}
    assert all(0.0 <= r <= 1.0 for r in result["expert_success"].values())
    assert result["episodes"] == {"Reach": 2, "PickUp": 2, "Push": 2, "PutIn": 2}
    assert set(result["render_fps"]) == {"32x32", "48x32"} and min(result["render_fps"].values()) > 0
    assert result["render_vs_32x32"]["32x32"] == 1.0
    assert result["physics_steps_per_s"]["tabletop"] > 100
    assert result["ik"]["converged"] > 0.5 and result["ik"]["median_ms"] > 0
    assert result["collection"]["episodes_per_min_with_video"] > 0
    scaling = result["collection_scaling"]
    assert scaling["episodes"] == 6 and set(scaling["episodes_per_s"]) == {"2", "4"}
    assert min(scaling["episodes_per_s"].values()) > 0 and scaling["cpu_ratio"] > 0
    assert scaling["ratio"] == scaling["episodes_per_s"]["4"] / scaling["episodes_per_s"]["2"]
    assert scaling["stats_error"]["q01"] == 0.0 and scaling["stats_error"]["q99"] == 0.0  # small: exact
    assert scaling["stats_error"]["mean"] < 1e-6
    json.dumps(result)  # plain JSON types only
    assert "expert" in capsys.readouterr().err  # the human table goes to stderr

