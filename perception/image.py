"""One image preprocessing for every encoder: uint8 RGB frames -> float ``[..., 3, S, S]`` in [0, 1].

Why one function: the encoders are meant to be interchangeable between packages (a frame encoder
pretrained for video QA, the policy's vision tower, the CLIP-style frame-text encoder). If each
package resized its own way, an encoder trained in one would see different pixels in another.
Each encoder then applies its own normalisation (mean/std in ``perception.encoders``, centring in
``perception.clip``) to these [0, 1] values.

Resampling: OpenCV's ``INTER_AREA`` to a square ``S x S``, rounded to uint8, then divided by 255.

- The shipped checkpoints keep their predictions: the video-QA model and its frame encoder were
  trained, and are pinned, with exactly this (billiards frames are 80x128 and are stretched to its
  128 px), and the policy runs at its native 64 px, where nothing is resampled at all. The policy's
  old path (torch bilinear with antialiasing) would have changed the pinned QA answers.
- Downscaling by an integer factor is the exact mean of each block of pixels, as a lower-resolution
  sensor would integrate them: antialiased, with no ringing and no blur beyond the block.
- Measured against the policy's old path (torch bilinear with antialiasing, rounded to uint8) on
  simulator frames, mean |difference| in grey levels (99th percentile, max): 128->64 0.68 (11, 46),
  256->64 0.44 (9, 46), 96->64 0.40 (7, 29), 256->128 0.36 (11, 60), 80x128->128 0.42 (7, 43),
  64->128 upscaling 1.29 (21, 87); the large ones sit on sharp edges such as a small object's
  outline. What the models make of it: the shipped policy fed 128 px frames (10 Reach/PickUp
  resets) gave chunks whose 28 action bins agreed but for 0-2 bins, most by 2-3 bins (once 13);
  the shipped video-QA model changed 1-2 of 8 answers per clip (tabletop 256 px, billiards
  80x128 and 160x256). Small, but a model must see what it was trained on: hence one method.
- Rounding to uint8 before scaling is what both old paths did; it also lets the policy keep its
  training frames in memory at model size as uint8 (``resize_images``) and convert each batch later
  (``to_tensor``), seeing exactly the values ``preprocess_images`` gives at inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from perception.errors import PerceptionError

if TYPE_CHECKING:
    import torch

Images = np.ndarray | Sequence[np.ndarray]


def resize_images(images: Images, size: int) -> np.ndarray:
    """uint8 ``[..., H, W, 3]`` (or a list of ``[H, W, 3]`` frames of any sizes) -> uint8
    ``[..., size, size, 3]``; frames already at ``size`` are returned untouched."""
    if isinstance(images, np.ndarray):
        arr = _check(images)
        if arr.shape[-3:-1] == (size, size):
            return arr
        flat = arr.reshape(-1, *arr.shape[-3:])
        out = np.stack([_resize_one(f, size) for f in flat]) if len(flat) else \
            np.zeros((0, size, size, 3), np.uint8)
        return out.reshape(*arr.shape[:-3], size, size, 3)
    frames = [_check(np.asarray(f)) for f in images]
    if not frames:
        raise PerceptionError("no images to preprocess")
    if any(f.ndim != 3 for f in frames):
        raise PerceptionError("a list of images must hold single [H, W, 3] frames")
    return np.stack([f if f.shape[:2] == (size, size) else _resize_one(f, size) for f in frames])


def to_tensor(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]`` in [0, 1] (no resampling)."""
    import torch  # here, not at the top: resizing alone (the robot side) needs no torch

    arr = _check(images)
    x = torch.from_numpy(np.ascontiguousarray(arr))
    if device is not None:
        x = x.to(device)
    return x.float().div_(255.0).movedim(-1, -3)


def preprocess_images(images: Images, size: int,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 RGB ``[H, W, 3]`` / ``[..., H, W, 3]`` / a list of frames -> float
    ``[..., 3, size, size]`` in [0, 1]: what every encoder eats."""
    return to_tensor(resize_images(images, size), device)


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` scaled down, aspect kept, so its longer side is ``max_side`` (sides
    rounded, at least 1 px); an image already that small is returned as a copy. For what is kept
    at a reduced size and resized to an encoder's square later (video QA's memory keyframes), with
    the same resampling as :func:`resize_images`."""
    image = _check(np.asarray(image))
    if image.ndim != 3:
        raise PerceptionError(f"expected one [H, W, 3] image, got shape {image.shape}")
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image.copy()
    return _resize(image, max(1, round(w * scale)), max(1, round(h * scale)))


def _resize_one(frame: np.ndarray, size: int) -> np.ndarray:
    return _resize(frame, size, size)


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The one resampling call: OpenCV's area interpolation."""
    import cv2

    return cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=cv2.INTER_AREA)


def _check(images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8:
        raise PerceptionError(f"images must be uint8 RGB, got dtype {images.dtype}")
    if images.ndim < 3 or images.shape[-1] != 3:
        raise PerceptionError(f"images must be [..., H, W, 3] RGB, got shape {images.shape}")
    return images
