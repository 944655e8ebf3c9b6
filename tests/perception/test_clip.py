"""The CLIP-style encoder learns to match frames with their captions, and round-trips to disk."""

import numpy as np
import pytest

from perception.clip import ClipTrainConfig, FrameTextEncoder, load_encoder, train_clip
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
