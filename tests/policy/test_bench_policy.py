import argparse

from bench import policy_bench


def test_bench_reports_every_path_and_ratios():
    args = argparse.Namespace(quick=True, chunk=2, big_layers=0, threads=1, out=None)
    result = policy_bench.run(args)
    for key in ("actions_per_s", "reaction_latency_ms", "speedup_vs_generate"):
        assert {"generate", "cached", "parallel", "parallel_chunked"} <= set(result[key])
    assert result["speedup_vs_generate"]["generate"] == 1.0
    # one pass for 2 actions must beat 7 generate steps for 1 action, even on a noisy machine
    assert result["speedup_vs_generate"]["parallel_chunked"] > 2.0
    assert "skipped" in result["llama7b_width"]
