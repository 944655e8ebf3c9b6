"""bench.niah_bench: the keys the issue names, a context that does not grow with the stream, and
the needle found, at toy sizes."""

import argparse
import json

from bench import niah_bench


def test_needle_found_with_a_fixed_context_and_flat_memory():
    args = argparse.Namespace(quick=True, out=None, lengths="96,384", trials=1, slots=16, budget=4,
                              tokens_per_frame=8, needle_frames=4)
    result = niah_bench.run(args)
    assert set(result["accuracy"]) == {"96", "384"}
    assert result["accuracy"] == {"96": 1.0, "384": 1.0}
    assert result["context_tokens"] == {"96": 32, "384": 32}  # budget x tokens, whatever the length
    assert result["memory_segments"] == {"96": 16, "384": 16}
    assert result["memory_kb"]["96"] == result["memory_kb"]["384"]
    assert all(v > 0 for v in result["peak_rss_mb"].values())
    json.dumps(result)
