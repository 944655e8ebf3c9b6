"""Per-frame subtitles from a billiards shot's events: the simulator's truth in training, the
tracker's perception (the shot filmed again at 640x480) in evaluation."""

import json

import pytest

from agent.cli import main
from tests.video_qa.helpers import tiny_config
from video_qa.configuration_train import TRAIN_META
from video_qa.dataset import DataRecipe, QADataset, generate
from video_qa.inputs import clip_views, example_for
from video_qa.modeling_videolm import VideoLM
from video_qa.simulate import DATA_VERSION
from video_qa.subtitles import event_lines, facts_from_summary, subtitles

FACTS = {"layout": ["red", "cue", "yellow"],
         "events": [{"t": 1.1, "kind": "strike", "a": "cue_stick", "b": "cue"},
                    {"t": 1.34, "kind": "ball_ball", "a": "cue", "b": "red"},
                    {"t": 1.9, "kind": "ball_ball", "a": "yellow", "b": "cue"},
                    {"t": 2.16, "kind": "pot", "a": "red", "b": "top_right"},
                    {"t": 6.0, "kind": "pot", "a": "cue", "b": "bottom_left"}]}


def test_each_event_goes_beside_the_first_frame_at_or_after_it():
    lines = subtitles(FACTS, [0.0, 1.0, 1.34, 2.0, 3.0])
    assert lines == ["left to right: red white yellow", "", "cue hit red 1.3s", "",
                     "red potted 2.2s; white potted 6.0s"]  # after the last frame: beside the last
    # only the cue ball's first contact is stated; the strike and later contacts are not
    assert [text for _, text in event_lines(FACTS)] == ["cue hit red 1.3s", "red potted 2.2s",
                                                       "white potted 6.0s"]
    assert subtitles(None, [0.0, 1.0]) == ["", ""]


def test_truth_facts_order_the_balls_by_image_column():
    summary = {"ball_names": ["cue", "red", "blue"], "start_uv": {"cue": [50.0], "red": [10.0], "blue": [90.0]},
               "events": [{"t": 2.0, "kind": "pot", "a": "red", "b": "x"},
                          {"t": 1.0, "kind": "ball_ball", "a": "cue", "b": "red"}]}
    facts = facts_from_summary(summary)
    assert facts["layout"] == ["red", "cue", "blue"]
    assert [e["t"] for e in facts["events"]] == [1.0, 2.0]  # in time order


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    generate(root, 1, 1, seed=3, log=None)
    return root


def test_a_subtitle_model_gets_the_text_in_its_prompt_and_others_do_not(data):
    ds = QADataset(data)
    q = next(q for q in ds.qas if q.clip == "billiards_0000")
    with_subs = VideoLM(tiny_config(grounding=False, subtitles="events"))
    views = clip_views(ds, ["billiards_0000", "tabletop_0000"], "uniform", 3, with_subs)
    assert views["tabletop_0000"].texts == ["", "", ""]  # tabletop clips say nothing
    texts = views["billiards_0000"].texts
    assert texts[0].startswith("left to right: ") and len(texts) == 3
    ex = example_for(ds, q, "uniform", 3, views)
    text_id = with_subs.tokenizer.token_id("<text>")
    assert text_id in with_subs.collate([ex])["input_ids"][0].tolist()
    assert len(with_subs.generate(None, [ex["times"]], [q.question], [ex["texts"]],
                                  patches=ex["patches"][None])) == 1
    plain = VideoLM(tiny_config(grounding=False))
    assert clip_views(ds, ["billiards_0000"], "uniform", 3, plain)["billiards_0000"].texts is None


def test_eval_qa_reads_what_the_tracker_perceives_and_checks_it_is_the_same_shot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = VideoLM(tiny_config(grounding=False, subtitles="events"))
    ckpt = model.save_pretrained(tmp_path / "ckpt")
    (ckpt / TRAIN_META).write_text(json.dumps({"sampler": "uniform", "data_dir": "runs/qa/gone",
                                               "data": DataRecipe(seed=3, n_billiards=1, n_tabletop=1).to_dict()}))
    assert main(["eval-qa", "--checkpoint", str(ckpt), "--out", "e.json"]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["subtitles"] == "perceived"
    data = tmp_path / "runs" / "qa" / "heldout" / f"v{DATA_VERSION}-seed3-b1-t1"
    perceived = json.loads((data / "perceived" / "billiards_0000.json").read_text())
    truth = facts_from_summary(QADataset(data).summary("billiards_0000"))
    # the tracker sees what the simulator did: the same layout, first contact and pots
    assert perceived["layout"] == truth["layout"]
    said = [text.rsplit(" ", 1)[0] for _, text in event_lines(perceived)]
    assert said == [text.rsplit(" ", 1)[0] for _, text in event_lines(truth)]
    assert all(abs(a - b) < 0.1 for (a, _), (b, _) in zip(event_lines(perceived), event_lines(truth)))
    capsys.readouterr()
    perceived["check"]["first_hit"] = "nobody"  # a cache that describes another shot is refused
    (data / "perceived" / "billiards_0000.json").write_text(json.dumps(perceived))
    assert main(["eval-qa", "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the clip's shot" in err[0]
    assert main(["eval-qa", "--checkpoint", str(ckpt), "--facts", "truth", "--out", "t.json"]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["subtitles"] == "truth"


def test_renamed_events_name_the_same_ball_in_the_subtitles_and_the_answers(data):
    import numpy as np

    from video_qa.configuration_train import TrainQAConfig
    from video_qa.train import _draw, renamed_events

    ds = QADataset(data)
    summary = ds.summary("billiards_0000")
    summary = {**summary, "first_hit": "red", "pot_times": {"red": 2.0},  # a shot with a hit and a pot
               "events": [{"t": 1.0, "kind": "ball_ball", "a": "cue", "b": "red"},
                          {"t": 2.0, "kind": "pot", "a": "red", "b": "top_right"}]}
    renamed = renamed_events(summary, np.random.default_rng(1))
    ball = renamed["first_hit"]
    assert ball != "cue" and list(renamed["pot_times"]) == [ball]
    assert [(e["a"], e["b"]) for e in renamed["events"]] == [("cue", ball), (ball, "top_right")]
    assert facts_from_summary(renamed)["layout"] == facts_from_summary(summary)["layout"]  # frames' own
    model = VideoLM(tiny_config(grounding=False, subtitles="events"))
    views = clip_views(ds, ["billiards_0000"], "uniform", 3, model)
    ds._summaries["billiards_0000"] = summary  # (after clip_views, which caches the clip's own)
    cfg = TrainQAConfig(event_rename=1.0, questions_per_clip=40)
    for seed in range(5):
        ex = _draw(ds, "billiards_0000", cfg, model.cfg, views, np.random.default_rng(seed))
        hit = next(a for q, a in zip(ex["questions"], ex["answers"]) if "first" in q and "cue ball" in q)
        assert f"cue hit {hit} 1.0s" in " ".join(ex["texts"])  # the answer is what the text says
