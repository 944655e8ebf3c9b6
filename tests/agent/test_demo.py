"""The demo's stages leave what they promise on disk: a quick demo end to end, and the training
stage (collect -> train -> closed-loop eval) at a toy size."""

import json
from pathlib import Path

import pytest

from agent.demo import policy_score_line, qa_score_line, run_demo, stage_train
from common.stats import wilson_interval

VLA_EVAL = Path("checkpoints/vla-default/eval.json")
QA_EVAL = Path("checkpoints/videoqa-default/eval.json")


def _printed_scores_match_eval_json(out: str) -> None:
    """The shipped scores the demo prints are the checkpoints' own eval.json values."""
    vla = json.loads(VLA_EVAL.read_text())
    for task, r in vla["tasks"].items():
        assert f"{round(100 * r['success_rate'])}% ({task})" in out
        assert f"of {r['episodes']} held-out episodes" in out
    qa = json.loads(QA_EVAL.read_text())
    assert f"held-out test accuracy {qa['overall_non_descriptive']:.3f}" in out
    assert f"counting {qa['accuracy']['counting']:.3f}" in out


def test_score_lines_quote_eval_json_not_literals(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({"tasks": {
        "Reach": {"success_rate": 0.37, "episodes": 30}, "PushLeft": {"success_rate": 0.5, "episodes": 30}}}))
    line = policy_score_line(tmp_path)
    assert "37% (Reach) and 50% (PushLeft) of 30 held-out episodes" in line
    (tmp_path / "eval.json").write_text(json.dumps({
        "overall_non_descriptive": 0.4321, "accuracy": {"counting": 0.25, "description": 0.1}}))
    line = qa_score_line(tmp_path)
    assert "0.432" in line and "counting 0.250" in line and "description" not in line
    assert "has no eval.json" in policy_score_line(tmp_path / "missing")


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
    turns = agent["transcript"]
    assert [t["operator"] for t in turns][0] == "what do you see on the table?" and len(turns) == 5
    kinds = [t["kind"] for t in turns]
    assert kinds[:2] == ["answer", "answer"] and kinds[2] in ("done", "stopped") and kinds[3:] == ["answer", "help"]
    assert turns[3]["agent"].startswith("I was asked to \"pick up the ")
    out = capsys.readouterr().out
    assert "demo finished" in out and "skipped with --quick" in out
    _printed_scores_match_eval_json(out)


def test_training_stage_collects_trains_and_evaluates(tmp_path):
    result = stage_train(tmp_path, quick=False, episodes=4, steps=4, eval_episodes=1)
    saved = json.loads((tmp_path / "train_eval.json").read_text())
    successes = sum(r["successes"] for r in saved["tasks"].values())
    assert result["episodes"] == 2 and result["success_rate"] == successes / 2
    assert result["ci95"] == pytest.approx(list(wilson_interval(successes, 2)))
    assert (tmp_path / "train" / "checkpoint" / "model.safetensors").is_file()
    assert (tmp_path / "train_data" / "meta" / "info.json").is_file()
    assert json.loads((tmp_path / "train_eval.json").read_text())["episodes"] == 2
