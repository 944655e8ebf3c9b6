"""The demo's stages leave what they promise on disk: a quick demo end to end, and the training
stage (collect -> train -> closed-loop eval) at a toy size."""

import json

from agent.demo import run_demo, stage_train


def test_quick_demo_writes_its_artefacts(tmp_path, capsys):
    assert run_demo(tmp_path, quick=True) == 0
    summary = json.loads((tmp_path / "demo.json").read_text())
    sim = next(v for k, v in summary.items() if k.startswith("Simulator"))
    assert sim["episodes"] == 4 and sim["frames"] > 40
    assert (tmp_path / "expert_pickup.mp4").stat().st_size > 10_000
    policy = next(v for k, v in summary.items() if k.startswith("Policy:"))
    assert set(policy["tasks"]) == {"Reach", "PickUp"} and policy["episodes"] == 4
    qa = next(v for k, v in summary.items() if k.startswith("Video QA"))
    assert {r["type"] for r in qa["questions"]} == {"counting", "ordering", "attribute", "timestamp",
                                                    "spatial", "yesno", "state"}
    assert all(len(r["frame_times"]) == 8 for r in qa["questions"])
    assert qa["correct"] == sum(r["correct"] for r in qa["questions"])
    assert (tmp_path / "qa_tabletop.mp4").stat().st_size > 1_000
    agent = next(v for k, v in summary.items() if k.startswith("Agent"))
    assert agent, "the operator conversation ran"
    out = capsys.readouterr().out
    assert "demo finished" in out and "skipped with --quick" in out


def test_training_stage_collects_trains_and_evaluates(tmp_path):
    result = stage_train(tmp_path, quick=False, episodes=4, steps=4, eval_episodes=1)
    assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0
    assert (tmp_path / "train" / "checkpoint" / "model.safetensors").is_file()
    assert (tmp_path / "train_data" / "meta" / "info.json").is_file()
    assert json.loads((tmp_path / "train_eval.json").read_text())["episodes"] == 2
