import re

import numpy as np

from video_qa import questions
from video_qa.dataset import QADataset, generate
from video_qa.labels import AUX_LABELS, SPATIAL_LABELS, frame_labels
from video_qa.questions import NOT_SEEN, QA, billiards_questions, tabletop_questions
from video_qa.simulate import DATA_VERSION


def _shot_summary():
    names = ["cue", "yellow", "blue", "red"]
    return {"source": "billiards", "ball_names": names, "times": [0.0, 0.5, 1.0, 1.5, 2.0],
            "pot_times": {"red": 1.7, "blue": 1.2}, "first_hit": "blue",
            "start_uv": {"cue": [10.0], "yellow": [20.0], "blue": [30.0], "red": [40.0]}}


def _answers(qas, kind):
    return {q.question: q.answer for q in qas if q.type == kind}


def test_billiards_questions_match_ground_truth():
    qas = billiards_questions(_shot_summary(), "c", "train", np.random.default_rng(0))
    assert {q.type for q in qas} == set(questions.TYPES)
    assert set(_answers(qas, "counting").values()) == {"2"}
    assert set(_answers(qas, "ordering").values()) == {"blue"}
    assert set(_answers(qas, "attribute").values()) == {"blue"}  # blue was potted first (1.2 s)
    for q, a in _answers(qas, "timestamp").items():
        expected = {"red": "1.7s", "blue": "1.2s"}
        ball = q.split("the ")[1].split(" ball")[0]
        assert a == expected.get(ball, NOT_SEEN)
    for q, a in _answers(qas, "yesno").items():
        ball = q.split("the ")[1].split(" ball")[0]
        assert a == ("yes" if ball in ("red", "blue") else "no")
    for q, a in _answers(qas, "state").items():
        t = float(re.search(r"(\d+\.\d)s", q).group(1))
        assert int(a) == 4 - (t >= 1.2) - (t >= 1.7)
    for q, a in _answers(qas, "spatial").items():
        words = q.replace("white", "cue").split()
        a_ball, b_ball = [w for w in words if w in ("cue", "yellow", "blue", "red")]
        order = ["cue", "yellow", "blue", "red"]
        assert a == ("yes" if order.index(a_ball) < order.index(b_ball) else "no")
    assert set(_answers(qas, "description").values()) == {"cue hit blue; potted blue, red"}


def test_each_type_has_a_held_out_template_never_used_in_training_questions():
    qas = billiards_questions(_shot_summary(), "c", "train", np.random.default_rng(1))
    for kind in questions.TYPES:
        held = {q.template for q in qas if q.type == kind and q.heldout}
        seen = {q.template for q in qas if q.type == kind and not q.heldout}
        assert held == {len(questions.BILLIARDS_TEMPLATES[kind]) - 1}
        assert not held & seen


def test_tabletop_questions_match_ground_truth():
    summary = {"source": "tabletop", "instruction": "pick the red cube up", "times": [0.0, 0.1, 0.2, 0.3],
               "objects": [{"name": "red cube", "color": "red", "shape": "cube", "is_target": True, "u": 5.0},
                           {"name": "blue cylinder", "color": "blue", "shape": "cylinder",
                            "is_target": False, "u": 50.0}],
               "receptacle": None, "lift_time": 0.2, "all_colors": ["red", "blue", "green"],
               "all_shapes": ["cube", "cylinder"]}
    qas = tabletop_questions(summary, "t", "test", np.random.default_rng(0))
    assert set(_answers(qas, "counting").values()) == {"2"}
    assert set(_answers(qas, "attribute").values()) == {"red"}
    assert set(_answers(qas, "timestamp").values()) == {"0.2s"}
    for q, a in _answers(qas, "spatial").items():
        assert a == ("yes" if q.index("red cube") < q.index("blue cylinder") else "no")
    for q, a in _answers(qas, "state").items():
        t = float(re.search(r"(\d+\.\d)s", q).group(1))
        assert a == ("yes" if t >= 0.2 else "no")
    for q, a in _answers(qas, "yesno").items():
        assert a == ("yes" if ("red cube" in q or "blue cylinder" in q) else "no")
    summary["lift_time"] = None
    qas = tabletop_questions(summary, "t", "test", np.random.default_rng(0))
    assert set(_answers(qas, "timestamp").values()) == {NOT_SEEN}


def test_generated_clips_match_the_simulator(tmp_path):
    """One real billiards shot and one tabletop episode: summary == the sim's own record."""
    qa_file = generate(tmp_path, n_billiards=1, n_tabletop=1, log=None)
    ds = QADataset(tmp_path)
    frames, times, summary = ds.clip("billiards_0000")
    assert frames.shape[0] == len(times) == len(summary["times"]) and frames.dtype == np.uint8
    pot_events = {e["a"]: e["t"] for e in summary["events"] if e["kind"] == "pot"}
    assert set(summary["pot_times"]) == set(pot_events)
    counting = [q for q in ds.qas if q.clip == "billiards_0000" and q.type == "counting"]
    assert counting[0].answer == str(len(pot_events))
    frames, times, summary = ds.clip("tabletop_0000")
    assert summary["success"] and summary["lift_time"] is not None
    assert summary["width"] == frames.shape[2]  # the columns "u" is measured in
    lifted = np.array(summary["lifted"])
    assert not lifted[0] and lifted[-1]
    assert abs(times[np.argmax(lifted)] - summary["lift_time"]) < 0.01
    # per-frame pixels (version 2): the first frame's column is the one spatial questions use,
    # and every point lies inside the frame it was measured in
    assert summary["version"] == DATA_VERSION and summary["height"] == frames.shape[1]
    for obj in summary["objects"]:
        track = summary["track"][obj["name"]]
        assert len(track) == len(times) and abs(track[0][0] - obj["u"]) < 0.06
        assert all(0 <= u < summary["width"] and 0 <= v < summary["height"] for u, v in track)
    target = next(o for o in summary["objects"] if o["is_target"])
    lifted_track = summary["track"][target["name"]]
    assert lifted_track[-1][1] < lifted_track[0][1]  # lifted: higher in the image (smaller row)
    shot = ds.summary("billiards_0000")
    assert set(shot["track"]) == set(shot["ball_names"])
    for ball, track in shot["track"].items():
        assert (track[-1] is None) == (ball in shot["pot_times"])  # potted balls leave the table
    # splits are by clip: every question of a clip shares its split
    assert len({(q.clip, q.split) for q in ds.qas}) == 2
    assert qa_file.read_text().count("\n") == len(ds.qas)


def test_frame_labels_follow_the_ground_truth():
    col = {name: i for i, name in enumerate(AUX_LABELS)}
    shot = {"source": "billiards", "pot_times": {"green": 2.5}}
    labels, mask = frame_labels(shot, np.array([1.0, 3.0]))
    assert labels[0, col["on_table:green"]] == 1 and labels[1, col["on_table:green"]] == 0
    assert labels[1, col["on_table:red"]] == 1 and mask[:, col["lifted"]].sum() == 0
    episode = {"source": "tabletop", "lift_time": 2.0, "receptacle": {"kind": "bowl", "u": 60.0},
               "objects": [{"name": "green cylinder", "color": "green", "is_target": True, "u": 10.0},
                           {"name": "blue cube", "color": "blue", "is_target": False, "u": 40.0}]}
    labels, mask = frame_labels(episode, np.array([1.0, 2.5]))
    assert labels[:, col["present:blue cube"]].tolist() == [1, 1]
    assert labels[:, col["present:blue cylinder"]].tolist() == [0, 0]
    assert labels[:, col["lifted"]].tolist() == [0, 1]
    assert labels[:, col["lifted:green"]].tolist() == [0, 1] and labels[1, col["lifted:blue"]] == 0
    assert mask[:, col["on_table:cue"]].sum() == 0 and mask[:, col["lifted"]].sum() == 2


def test_spatial_labels_say_where_each_object_is_and_mask_the_rest():
    n = len(AUX_LABELS)
    col = {name: n + i for i, name in enumerate(SPATIAL_LABELS)}
    episode = {"source": "tabletop", "lift_time": None, "receptacle": {"kind": "bowl", "u": 60.0},
               "objects": [{"name": "green cylinder", "color": "green", "is_target": True, "u": 10.0},
                           {"name": "blue cube", "color": "blue", "is_target": False, "u": 40.0}]}
    labels, mask = frame_labels(episode, np.array([0.0, 1.0, 2.0]))
    assert labels.shape == (3, n + len(SPATIAL_LABELS)) and mask.shape == labels.shape
    # 64 px wide: cuts at 16, 32 and 48 px
    assert [labels[0, col[f"left_of:green cylinder@{c}"]] for c in (0.25, 0.5, 0.75)] == [1, 1, 1]
    assert [labels[0, col[f"left_of:blue cube@{c}"]] for c in (0.25, 0.5, 0.75)] == [0, 0, 1]
    assert [labels[0, col[f"left_of:bowl@{c}"]] for c in (0.25, 0.5, 0.75)] == [0, 0, 0]
    assert mask[:, n:].sum() == 3 * 9  # three things x three cuts, on every frame
    assert mask[:, col["left_of:red cube@0.5"]].sum() == 0  # absent: no label
    wide, _ = frame_labels({**episode, "width": 128}, np.array([0.0]))  # cuts at 32, 64, 96 px
    assert [wide[0, col[f"left_of:blue cube@{c}"]] for c in (0.25, 0.5, 0.75)] == [0, 1, 1]
    shot = {"source": "billiards", "pot_times": {}}
    assert frame_labels(shot, np.array([0.0]))[1][:, n:].sum() == 0  # balls move: masked


def test_questions_record_which_thing_they_name_and_where_the_name_ends():
    summary = {"source": "tabletop", "instruction": "pick the red cube up", "times": [0.0, 0.1, 0.2, 0.3],
               "objects": [{"name": "red cube", "color": "red", "shape": "cube", "is_target": True, "u": 5.0},
                           {"name": "blue cylinder", "color": "blue", "shape": "cylinder",
                            "is_target": False, "u": 50.0}],
               "receptacle": {"kind": "bowl", "u": 30.0}, "lift_time": 0.2,
               "all_colors": ["red", "blue", "green"], "all_shapes": ["cube", "cylinder"]}
    for seed in range(5):
        for q in tabletop_questions(summary, "t", "train", np.random.default_rng(seed)):
            for thing, end in q.refs:
                said = "object" if thing == "lifted" else thing
                assert q.question[:end].endswith(said), (q.question, thing)
            if q.type == "spatial":
                assert len(q.refs) == 2 and q.refs[0][1] < q.refs[1][1]  # a, then b
            if q.type == "yesno":
                assert [t for t, _ in q.refs] == [q.question.split(" a ")[1].split("?")[0].replace(" on the table", "")]
            if q.type in ("counting", "description"):
                assert q.refs == ()
    shot = billiards_questions(_shot_summary(), "c", "train", np.random.default_rng(0))
    spatial = next(q for q in shot if q.type == "spatial")
    words = [w for w in spatial.question.replace("?", "").split() if w in ("white", "yellow", "blue", "red")]
    assert [t for t, _ in spatial.refs] == ["ball:" + ("cue" if w == "white" else w) for w in words]
    back = QA.from_dict(spatial.to_dict())  # refs survive qa.jsonl
    assert back == spatial
