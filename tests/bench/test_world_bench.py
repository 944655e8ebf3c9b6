"""bench.world_bench: the documented keys, with one scene per family so the test stays quick."""

import argparse
import json

from bench import world_bench
from bench.cli import BENCHMARKS

KEYS = ("precision", "recall", "color_accuracy", "shape_accuracy", "position_err_mm_median",
        "position_err_mm_p90", "id_switches_per_100_frames", "agent_answer_agreement", "fps",
        "resolution")


def test_registered():
    assert BENCHMARKS["world"] == "bench.world_bench"


def test_run_produces_the_documented_keys(capsys):
    args = argparse.Namespace(quick=True, out=None, scenes=1, stride=6, size=128, seed=0,
                              cameras="agentview,wrist")
    result = world_bench.run(args)
    assert all(k in result for k in KEYS)
    assert result["resolution"] == "128x128" and result["cameras"] == ["agentview", "wrist"]
    assert set(result["per_family"]) == set(world_bench.FAMILIES)
    assert result["frames"] == sum(f["frames"] for f in result["per_family"].values()) > 8
    # one expert scene per family: the perceiver should get nearly everything right
    assert result["precision"] >= 0.9 and result["recall"] >= 0.9
    assert result["color_accuracy"] >= 0.9 and result["shape_accuracy"] >= 0.9
    assert 0.0 <= result["position_err_mm_median"] <= result["position_err_mm_p90"] < 30.0
    assert result["agent_answer_agreement"] >= 0.8 and result["questions"] >= result["frames"] * 2
    assert result["fps"] > 0 and 0.0 < result["cpu_per_wall"] <= 1.2
    assert result["nothing_here_frames"] == 0
    json.dumps(result)  # plain JSON types only
    assert "family" in capsys.readouterr().err  # the human table goes to stderr
