import pytest

from video_qa.questions import QA
from video_qa.evaluate import is_correct, score


def _qa(kind: str, answer: str, clip: str = "tabletop_0000") -> QA:
    return QA(clip, kind, 0, False, "test", "q?", answer)


def test_timestamps_count_within_tolerance_and_not_seen_must_match():
    assert is_correct("timestamp", "1.4s", "1.2s")
    assert not is_correct("timestamp", "1.6s", "1.2s")
    assert not is_correct("timestamp", "1.2s", "not seen")
    assert is_correct("attribute", " Red. ", "red")
    assert not is_correct("counting", "3", "4")


def test_score_by_type_and_without_the_descriptive_type():
    qas = [_qa("counting", "3"), _qa("counting", "2"), _qa("timestamp", "1.0s"),
           _qa("description", "picked up the red cube")]
    res = score(qas, ["3", "5", "1.5s", "something else"])
    assert res["accuracy"] == {"counting": 0.5, "description": 0.0, "timestamp": 0.0}
    assert res["overall"] == pytest.approx(1 / 4)
    assert res["overall_non_descriptive"] == pytest.approx(1 / 3)
    assert res["timestamp_mae_s"] == pytest.approx(0.5)
    assert res["count"] == {"counting": 2, "description": 1, "timestamp": 1}
