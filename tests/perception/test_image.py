"""perception.image: the one preprocessing every encoder uses (INTER_AREA, uint8, then /255)."""

import numpy as np
import pytest
import torch

from perception.errors import PerceptionError
from perception.image import fit_within, preprocess_images, resize_images, to_tensor


def test_downscaling_by_two_is_the_rounded_block_mean():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2, :2] = 10  # block (0, 0): all 10
    img[0:2, 2:4, 0] = [[0, 255], [255, 255]]  # block (0, 1) red: mean 191.25
    img[2:4, 0:2, 1] = [[1, 2], [2, 2]]  # block (1, 0) green: mean 1.75
    out = resize_images(img, 2)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [10, 10, 10]
    assert out[0, 1, 0] == 191 and out[1, 0, 1] == 2 and out[1, 1].tolist() == [0, 0, 0]


def test_tensor_layout_and_values():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)  # [B, T, H, W, 3]
    x = preprocess_images(frames, 8)  # native size: no resampling at all
    assert x.shape == (2, 3, 3, 8, 8) and x.dtype == torch.float32
    assert x[1, 2, 0, 5, 7] == pytest.approx(frames[1, 2, 5, 7, 0] / 255.0)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(preprocess_images(frames[0, 0], 8), x[0, 0])  # one [H, W, 3] frame
    assert resize_images(frames, 8) is frames
    assert to_tensor(np.full((1, 2, 2, 3), 255, np.uint8)).eq(1.0).all()


def test_resizes_to_a_square_and_keeps_leading_dims():
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (2, 5, 80, 128, 3), dtype=np.uint8)  # billiards frames
    out = resize_images(clip, 32)
    assert out.shape == (2, 5, 32, 32, 3)
    np.testing.assert_array_equal(out[1, 3], resize_images(clip[1, 3], 32))
    flat = np.full((6, 6, 3), 77, np.uint8)
    assert (resize_images(flat, 3) == 77).all() and (resize_images(flat, 12) == 77).all()


def test_a_list_of_frames_of_different_sizes():
    a = np.full((64, 64, 3), 200, np.uint8)
    b = np.full((48, 96, 3), 10, np.uint8)
    x = preprocess_images([a, b], 16)
    assert x.shape == (2, 3, 16, 16)
    assert torch.allclose(x[0], torch.full((3, 16, 16), 200 / 255.0))
    assert torch.allclose(x[1], torch.full((3, 16, 16), 10 / 255.0))


def test_bad_images_are_one_line_errors():
    with pytest.raises(PerceptionError, match="uint8"):
        preprocess_images(np.zeros((4, 4, 3), np.float32), 2)
    with pytest.raises(PerceptionError, match="RGB"):
        preprocess_images(np.zeros((4, 4), np.uint8), 2)
    with pytest.raises(PerceptionError, match="no images"):
        resize_images([], 2)


def test_fit_within_keeps_the_aspect_and_resamples_like_every_encoder_input():
    rng = np.random.default_rng(2)
    wide = rng.integers(0, 256, (160, 256, 3), dtype=np.uint8)  # billiards at 2x
    thumb = fit_within(wide, 128)
    assert thumb.shape == (80, 128, 3) and thumb.dtype == np.uint8
    # a 2x block mean, as resize_images computes it on a square
    blocks = wide.reshape(80, 2, 128, 2, 3).astype(np.float64).mean((1, 3))
    assert np.abs(thumb - blocks).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(fit_within(wide[:128, :128], 64), resize_images(wide[:128, :128], 64))
    small = wide[:80, :100]
    kept = fit_within(small, 128)  # never upscaled; a copy the caller may keep
    assert kept.shape == small.shape and np.array_equal(kept, small) and not np.shares_memory(kept, small)
    assert fit_within(np.zeros((1, 500, 3), np.uint8), 100).shape == (1, 100, 3)  # at least 1 px
    with pytest.raises(PerceptionError, match="one"):
        fit_within(np.zeros((2, 8, 8, 3), np.uint8), 4)
