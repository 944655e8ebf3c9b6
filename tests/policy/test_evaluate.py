import json

import numpy as np
import pytest

from policy.errors import PolicyError
from policy.evaluate import EvalConfig, evaluate, fill_template
from policy_helpers import save_sim_checkpoint


def test_closed_loop_eval_writes_json_and_video(tmp_path):
    save_sim_checkpoint(tmp_path / "ckpt")
    (tmp_path / "mine.txt").write_text("# my phrasing\nplease poke the {obj}\n")
    cfg = EvalConfig(checkpoint=str(tmp_path / "ckpt"), task="Reach", episodes=2, num_envs=2,
                     out=str(tmp_path / "eval.json"), video_dir=str(tmp_path / "videos"), videos=1,
                     instructions=str(tmp_path / "mine.txt"), colors="red")
    result = evaluate(cfg)
    saved = json.loads((tmp_path / "eval.json").read_text())
    reach = saved["tasks"]["Reach"]
    assert reach["episodes"] == 2 and reach["success_rate"] == reach["successes"] / 2
    assert len(reach["ci95"]) == 2 and reach["ci95"][0] <= reach["success_rate"] <= reach["ci95"][1]
    assert reach["seeds"] == [100000, 100001]
    assert all(i.startswith("please poke the red ") for i in reach["example_instructions"])
    assert 1 <= reach["mean_episode_length"] <= 60
    from policy.failures import FAILURE_CLASSES
    assert set(reach["failures"]) == set(FAILURE_CLASSES)  # every failed episode gets a class
    assert sum(reach["failures"].values()) == reach["episodes"] - reach["successes"]
    assert len(reach["videos"]) == 1 and (tmp_path / "videos").exists()
    assert result["success_rate"] == reach["success_rate"]
    # Robots batched into one model call per step play exactly what each would play alone: the
    # executor keeps one queue per robot, so the episodes end the same way at the same step.
    alone = evaluate(EvalConfig(**{**cfg.__dict__, "num_envs": 1, "out": "", "video_dir": ""}))["tasks"]["Reach"]
    for key in ("successes", "mean_episode_length", "failures", "example_instructions"):
        assert alone[key] == reach[key], key


def test_bad_instruction_file_and_template(tmp_path):
    from policy.evaluate import read_instruction_file

    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(PolicyError, match="no instructions"):
        read_instruction_file(str(tmp_path / "empty.txt"))

    class Ep:
        class target:
            description = "red cube"
        side, receptacle = "left", None

    assert fill_template("push the {obj} to the {side}", Ep) == "push the red cube to the left"
    with pytest.raises(PolicyError, match="unknown field"):
        fill_template("lift the {thing}", Ep)
