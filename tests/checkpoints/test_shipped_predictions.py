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
