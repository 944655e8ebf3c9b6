"""bench.world_bench: the documented keys, with one scene per family so the test stays quick."""

import argparse
import json
from pathlib import Path

import pytest

from bench import world_bench
from bench.cli import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]

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


@pytest.mark.skipif(not (ROOT / world_bench.DEFAULT_POLICY).is_dir(), reason="no shipped checkpoint")
def test_policy_rollouts_in_the_policy_families_only(capsys, monkeypatch):
    """Reach (a family the shipped policy knows): scene 0 the expert's, scene 1 the policy's; push: experts."""
    monkeypatch.chdir(ROOT)
    args = argparse.Namespace(quick=True, out=None, scenes=2, stride=6, size=128, seed=0, cameras="agentview,wrist",
                              families="reach,push", policy=None, policy_families="reach,pick_up", policy_share=0.5)
    result = world_bench.run(args)
    assert result["rollouts"] == {"reach": "expert+policy", "push": "expert"}
    assert result["per_family"]["reach"]["rollouts"] == "expert+policy"
    assert set(result["per_family"]["reach"]["by_rollout"]) == {"expert", "policy"}
    assert set(result["per_family"]["push"]["by_rollout"]) == {"expert"}
    assert result["policy_image_size"] == 64 and set(result["policy_success"]) == {"reach"}
    by = result["by_rollout"]
    assert by["expert"]["frames"] + by["policy"]["frames"] == result["frames"] and by["policy"]["frames"] > 0
    assert by["policy"]["precision"] >= 0.9 and by["policy"]["recall"] >= 0.9
    json.dumps(result)
