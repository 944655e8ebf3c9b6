"""Generating a folder of shots: files per shot, an index, reproducible from the seed."""

import json

from sim.billiards.generate import GenerateConfig, generate_shots
from sim.billiards.shot import load_shot


def test_generate_writes_loadable_shots_and_an_index(tmp_path):
    cfg = GenerateConfig(episodes=1, shots_per_episode=2, width=64, height=48, shadows=False,
                         explore=0.0, aim_noise_deg=0.0, max_time=4.0)
    summaries = generate_shots(cfg, tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "shots.jsonl").read_text().splitlines()]
    assert lines == summaries and 1 <= len(lines) <= 2
    assert lines[0]["target"] is not None  # the player aimed at a pot
    shot = load_shot(tmp_path / lines[0]["path"])
    assert shot.frames["player"].shape[1:] == (48, 64, 3)
    assert shot.events[0].kind == "strike" and shot.target == lines[0]["target"]
    assert [e.a for e in shot.events if e.kind == "pot"] == lines[0]["pots"]
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 0
