"""Keyframes around perceived events for a question (issue 25): `embodied ask --events REPORT`."""

import json

import numpy as np
import pytest

from video_qa.ask import VideoQA, report_event_times
from video_qa.errors import VideoQAError


def test_report_event_times_ranks_pots_first(tmp_path):
    events = [{"t": 1.0, "kind": "strike", "a": "cue_stick", "b": "cue"},
              {"t": 1.4, "kind": "ball_ball", "a": "cue", "b": "red"},
              {"t": 1.9, "kind": "cushion", "a": "cue", "b": "right"},
              {"t": 3.9, "kind": "pot", "a": "red", "b": "top_right"}]
    (tmp_path / "report.json").write_text(json.dumps({"events": events}))
    assert report_event_times(tmp_path) == [3.9, 1.0, 1.4, 1.9]
    with pytest.raises(VideoQAError, match="no shot report"):
        report_event_times(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(VideoQAError, match="not a readable shot report"):
        report_event_times(tmp_path / "bad.json")


def test_the_answer_looks_at_the_first_last_and_event_frames():
    from video_qa.modeling_videolm import VideoLM
    from tests.video_qa.helpers import tiny_config

    model = VideoLM(tiny_config(num_frames=4)).eval()
    qa = VideoQA(model, "motion")
    frames = np.zeros((120, 16, 16, 3), np.uint8)
    frames[5:20, 4:8, 4:8] = 255  # all the motion early on
    times = list(np.arange(120) / 30)
    ans = qa.answer(frames, "when was the red ball potted?", times, event_times=[3.5])
    assert ans.frame_times[0] == 0.0 and ans.frame_times[-1] == round(times[-1], 2)
    assert 3.5 in ans.frame_times and len(ans.frame_times) == 4


def test_a_subtitle_model_reads_the_reports_events_beside_the_frames(tmp_path, monkeypatch):
    from video_qa.ask import report_facts
    from video_qa.modeling_videolm import VideoLM
    from tests.video_qa.helpers import tiny_config

    events = [{"t": 1.4, "kind": "ball_ball", "a": "cue", "b": "red"},
              {"t": 3.9, "kind": "pot", "a": "red", "b": "top_right"}]
    (tmp_path / "report.json").write_text(json.dumps({"events": events, "layout": ["red", "cue"]}))
    facts = report_facts(tmp_path)
    assert facts["layout"] == ["red", "cue"] and [e["t"] for e in facts["events"]] == [1.4, 3.9]
    seen = []
    for subtitles in ("events", "none"):
        model = VideoLM(tiny_config(num_frames=4, subtitles=subtitles)).eval()
        real = model.generate
        monkeypatch.setattr(model, "generate", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
        frames = np.zeros((120, 16, 16, 3), np.uint8)
        VideoQA(model, "uniform").answer(frames, "when was the red ball potted?",
                                         list(np.arange(120) / 30), event_times=[3.9], facts=facts)
    texts = seen[0][0]
    assert texts[0] == "left to right: red white" and any("red potted 3.9s" in t for t in texts)
    assert seen[1] is None  # a model trained without subtitles gets none
