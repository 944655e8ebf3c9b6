"""bench ros: both measurements run and produce the documented keys with sane values."""

import argparse

from bench import ros_bench


def test_ros_bench_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = ros_bench.run(argparse.Namespace(quick=True, frames=30, checkpoint=str(tmp_path / "none")))
    for key in ("image_hop_ms_p50", "image_hop_ms_p99", "drops", "zmq_overhead_ms"):
        assert key in result
    hop = result["image_hop"]
    assert hop["frames"] == 30 and 0 <= hop["drops"] <= 30 and hop["received"] + hop["drops"] == 30
    assert 0 < result["image_hop_ms_p50"] <= result["image_hop_ms_p99"]
    assert result["zmq"]["calls"] == 50 and result["zmq"]["policy"] == "numpy stand-in"
