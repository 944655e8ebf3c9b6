"""Billiards questions answered from a shot's report (agent/billiards_qa.py) and the Agent's hook:
intents and ball slots on a hand-made report (training phrasings and paraphrases), "not seen"
when the tracker saw nothing, None for questions the report does not answer."""

from __future__ import annotations

import json

import pytest

from agent.agent import Agent
from agent.billiards_qa import BilliardsQAError, answer_billiards, load_facts, read_ball
from common.errors import is_user_error
from perception.billiards.analysis import CueReading, ShotReport
from perception.billiards.types import PerceivedEvent

EVENTS = (PerceivedEvent(1.02, "strike", "cue_stick", "cue"), PerceivedEvent(1.45, "ball_ball", "cue", "red"),
          PerceivedEvent(2.16, "pot", "red", "top_right"), PerceivedEvent(2.36, "cushion", "cue", "cushion_right"),
          PerceivedEvent(2.9, "ball_ball", "red", "yellow"), PerceivedEvent(3.5, "pot", "yellow", "bottom_left"))
POTS = tuple(e for e in EVENTS if e.kind == "pot")


def make_report(**changes) -> ShotReport:
    facts = dict(strike_t=1.02, cue=CueReading(1.02, 6.4, 6.0, (-160.0, 160.0, 53.0), "rgb-d", 6),
                 cue_ball_speed_mps=1.82, cue_ball_direction_deg=6.9, first_hit="red", first_hit_t=1.45,
                 cut_angle_deg=28.6, object_ball_direction_deg=35.0, events=EVENTS, pots=POTS,
                 aimed_ball="red", aimed_ball_potted=True, cue_ball_potted=False)
    return ShotReport(**{**facts, **changes})


REPORT = make_report()
EMPTY = make_report(cue=None, cue_ball_speed_mps=None, cue_ball_direction_deg=None, first_hit=None,
                    first_hit_t=None, cut_angle_deg=None, events=EVENTS[:1], pots=(), aimed_ball_potted=False)

CASES = [  # question, intent, ball slot, words the answer must hold
    ("Which ball did the cue ball hit first?", "first_hit", "cue", ["red ball", "1.45 s"]),
    ("what did the cue ball strike first", "first_hit", "cue", ["red ball"]),
    ("did the white touch the blue first?", "first_hit", "blue", ["No:", "red ball"]),
    ("which ball was potted first?", "first_potted", None, ["red ball", "2.16 s", "top-right"]),
    ("what went in first?", "first_potted", None, ["red ball"]),
    ("which ball was potted last?", "last_potted", None, ["yellow ball", "3.50 s"]),
    ("When was the red ball potted?", "pot_time", "red", ["2.16 s", "top-right pocket"]),
    ("when did the red go in", "pot_time", "red", ["2.16 s"]),
    ("at what time did the yellow drop into a pocket", "pot_time", "yellow", ["3.50 s", "bottom-left"]),
    ("when did the black get sunk", "pot_time", "black", ["Not seen", "black ball"]),
    ("how many balls were potted?", "pot_count", None, ["2 balls"]),
    ("how many went in?", "pot_count", None, ["2 balls"]),
    ("was the yellow potted?", "was_potted", "yellow", ["Yes", "3.50 s"]),
    ("did the blue ball go down?", "was_potted", "blue", ["No"]),
    ("did the cue ball fall in?", "was_potted", "cue", ["No", "cue ball"]),
    ("did I pot the ball I aimed at?", "aimed", None, ["Yes", "red ball"]),
    ("What angle was my cue at?", "cue_angle", None, ["6.4 deg", "elevated 6.0 deg", "1.02 s"]),
    ("how was my cue angled when I hit?", "cue_angle", None, ["6.4 deg"]),
    ("how fast was the cue ball?", "speed", "cue", ["1.82 m/s", "6.9 deg"]),
    ("what was the speed of the white?", "speed", "cue", ["1.82 m/s"]),
    ("what was the cut angle?", "cut", None, ["28.6 deg", "red ball"]),
    ("how thin did I cut it?", "cut", None, ["28.6 deg"]),
]


@pytest.mark.parametrize("question, intent, ball, words", CASES)
def test_intents_slots_and_answers(question, intent, ball, words):
    ans = answer_billiards(question, REPORT)
    assert ans is not None, question
    assert (ans.intent, ans.ball) == (intent, ball)
    assert all(w in ans.text for w in words), ans.text
    assert ans.text.count(".") >= 1 and "\n" not in ans.text  # one sentence
    assert ans.to_dict()["source"] == "tracker"


@pytest.mark.parametrize("question", [
    "what do you see?", "where is the red cube?", "pick up the blue cylinder", "sing me a song",
    "what did the robot just do?", "where is the cue ball?", "when did the cue ball stop?",
    "how many objects are on the table?", "what happened in the video?", "put the yellow cube in the bowl",
    "which cube did you move first?", "what time is it?",
])
def test_questions_the_report_does_not_answer_get_none(question):
    assert answer_billiards(question, REPORT) is None


def test_not_seen_is_said_never_guessed():
    answers = {q: answer_billiards(q, EMPTY).text for q in (
        "Which ball did the cue ball hit first?", "When was the red ball potted?", "which ball was potted first?",
        "What angle was my cue at?", "how fast was the cue ball?", "what was the cut angle?")}
    assert all(a.startswith("Not seen") for a in answers.values()), answers
    assert answer_billiards("how many balls were potted?", EMPTY).value == 0
    assert answer_billiards("did I pot the ball I aimed at?", EMPTY).text.startswith("No")
    rgb_only = make_report(cue=CueReading(1.02, 6.4, None, (0.0, 0.0, 0.0), "rgb", 6))
    assert "elevation unknown" in answer_billiards("What angle was my cue at?", rgb_only).text


def test_ball_slot_words():
    balls = ("cue", "yellow", "red", "black")
    assert read_ball("did the white hit the red first?", balls) == "red"
    assert read_ball("was the cue ball potted?", balls) == "cue"
    assert read_ball("what angle was my cue at?", balls) is None
    assert read_ball("was the 8 potted?", balls) == "black"


def test_report_json_on_disk(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"video": "x.mp4", **REPORT.to_dict()}))
    for source in (path, tmp_path, REPORT.to_dict()):
        assert answer_billiards("when was the red ball potted?", source).value == pytest.approx(2.16)
    for bad in (tmp_path / "missing.json", tmp_path / "nope"):
        with pytest.raises(BilliardsQAError) as err:
            load_facts(bad)
        assert is_user_error(err.value) and "\n" not in str(err.value)
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(BilliardsQAError, match="not a shot report"):
        load_facts(tmp_path / "other.json")


def test_agent_answers_from_the_loaded_shot(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(REPORT.to_dict()))
    agent = Agent(None, shot=tmp_path)
    reply = agent.handle("when did the red go in")
    assert reply.kind == "answer" and "2.16 s" in reply.text
    assert reply.data["source"] == "tracker" and reply.data["intent"] == "pot_time"
    assert "28.6 deg" in agent.handle("what was the cut angle?").text  # the router alone calls it unknown
    assert agent.handle("sing me a song").kind == "help"  # not the report's: the usual path
    assert "no live view" in agent.respond("what do you see?").text


def test_the_shot_wins_over_the_video_model_only_where_it_answers():
    from agent.world import SimWorld

    world = SimWorld("PickUp", seed=3, image_size=32, cameras=("agentview",))
    try:
        plain = Agent(world)
        assert "no video-QA model" in plain.handle("Which ball did the cue ball hit first?").text
        coached = Agent(world)
        coached.load_shot(REPORT)
        first = coached.handle("Which ball did the cue ball hit first?")
        assert first.data["source"] == "tracker" and first.data["value"] == "red"
        seen = coached.handle("what do you see?")  # the world's question, still the world's answer
        assert seen.kind == "answer" and "source" not in seen.data and seen.data["objects"]
    finally:
        world.close()


def test_coach_ask_prints_the_conversation(capsys):
    from agent.coach_cli import ask_about_shot

    answers = ask_about_shot(REPORT, ["which ball went in first?", "how many balls were potted?"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "operator> which ball went in first?" and out[1].startswith("agent>    ")
    assert "red ball" in out[1] and "2 balls" in out[3]
    assert [a["intent"] for a in answers] == ["first_potted", "pot_count"]


def test_chat_answers_from_a_shot_report_and_refuses_a_missing_one_in_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "report.json").write_text(json.dumps(REPORT.to_dict()))
    chat = [sys.executable, "-m", "agent", "agent", "chat", "--no-policy", "--no-qa"]
    out = subprocess.run(chat + ["--shot", str(tmp_path)], input="which ball did the cue ball hit first?\nquit\n",
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "billiards shot report" in out.stdout
    answer = [line for line in out.stdout.splitlines() if "agent>" in line]  # after the "you> " prompt
    assert len(answer) == 1 and REPORT.first_hit in answer[0]
    bad = subprocess.run(chat + ["--shot", str(tmp_path / "nowhere")], input="quit\n",
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no shot report" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
