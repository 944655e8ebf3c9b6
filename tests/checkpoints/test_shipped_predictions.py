"""The shipped checkpoints load unchanged and predict what they predicted when they were pinned.

Refactors of preprocessing, tokenizers, LM builders or loading must keep these; a deliberate change
re-pins with ``python -m tests.checkpoints.pins --write`` and says why in its commit.
"""

import json

import numpy as np

from tests.checkpoints import pins


def test_vla_default_predicts_the_pinned_chunks():
    expected = np.asarray(json.loads(pins.PINNED.read_text())["policy_chunks"])
    got = np.asarray(pins.policy_chunks(pins.load_inputs()))
    assert got.shape == expected.shape == (len(pins.INSTRUCTIONS), 4, 7)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the pins themselves are not degenerate: different instructions give different chunks
    assert np.abs(expected[0] - expected[1]).max() > 1e-3


def test_videoqa_default_gives_the_pinned_answers():
    expected = json.loads(pins.PINNED.read_text())["qa_answers"]
    got = pins.qa_answers(pins.load_inputs())
    assert got == expected
    assert len(set(expected)) > 3


def test_the_shipped_policy_reads_the_colour_word():
    """Issue 23: changing only the instruction's colour word changes the trained policy's action
    (the scene of the pinned inputs has several objects; the policy must head for the named one)."""
    from policy.predict import Policy

    from tests.checkpoints.pins import VLA, load_inputs

    inputs = load_inputs()
    obs = {k: inputs[k] for k in ("agentview", "wrist", "state")}
    policy = Policy.from_pretrained(VLA)
    assert policy.describe().get("text_encoder", policy.model.cfg.text_encoder) == "minilm"
    red, blue = (policy.predict_chunk([obs], [f"pick up the {c} cube"])[0] for c in ("red", "blue"))
    same = policy.predict_chunk([obs], ["pick up the red cube"])[0]
    np.testing.assert_array_equal(red, same)  # deterministic, so the difference below is the word
    assert np.abs(red[:, :3] - blue[:, :3]).max() > 1e-3, (red, blue)
