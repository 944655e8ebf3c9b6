"""Raw observations and instructions -> the tensors the model eats, with one-line errors.

Shared by training (batched from a dataset) and inference (from an env), so both see exactly the
same resizing, normalisation and padding. Images go through ``perception.image``, the one
preprocessing every encoder uses; instructions through the checkpoint's ``perception.text``
tokenizer.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from perception.image import resize_images
from perception.text import Tokenizer
from policy.errors import PolicyError


def check_image(image: object, name: str, size: int) -> np.ndarray:
    """An ``[size, size, 3]`` uint8 RGB array, or a PolicyError naming what is wrong."""
    if not isinstance(image, np.ndarray):
        raise PolicyError(f"image {name!r} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise PolicyError(f"image {name!r} must be uint8 RGB, got dtype {image.dtype}")
    if image.shape != (size, size, 3):
        raise PolicyError(f"image {name!r} must have shape ({size}, {size}, 3), got {image.shape}")
    return image


def encode_instructions(texts: Sequence[str], tokenizer: Tokenizer,
                        max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and mask ``[B, max_len]``: BOS (when the tokenizer has one) and the text,
    its last ``max_len`` tokens if longer; empty instructions are refused."""
    ids = torch.full((len(texts), max_len), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros((len(texts), max_len), dtype=torch.long)
    bos = [] if tokenizer.bos_id is None else [tokenizer.bos_id]
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise PolicyError("the instruction is empty; say what the robot should do")
        tok = (bos + tokenizer.encode(text.strip()))[-max_len:]
        ids[i, max_len - len(tok):] = torch.tensor(tok)
        mask[i, max_len - len(tok):] = 1
    return ids, mask


def normalize_state(state: np.ndarray, stats: Mapping[str, Sequence[float]] | None) -> torch.Tensor:
    """Standardise proprioception with the saved mean/std (std floored to avoid blow-ups)."""
    x = np.asarray(state, dtype=np.float32)
    if stats is None:
        return torch.from_numpy(x)
    mean = np.asarray(stats["mean"], dtype=np.float32)
    std = np.maximum(np.asarray(stats["std"], dtype=np.float32), 1e-3)
    if x.shape[-1] != mean.shape[0]:
        raise PolicyError(f"state has {x.shape[-1]} dims, the checkpoint expects {mean.shape[0]}")
    return torch.from_numpy(np.clip((x - mean) / std, -5, 5).astype(np.float32))


def observations_to_arrays(observations: Sequence[Mapping], cameras: Sequence[str],
                           obs_size: int, model_size: int) -> np.ndarray:
    """Validated camera images of each observation -> uint8 ``[B, C, S, S, 3]`` at model size."""
    batch = []
    for obs in observations:
        if not isinstance(obs, Mapping):
            raise PolicyError("an observation must be a dict of camera images (and 'state')")
        per_cam = []
        for cam in cameras:
            if cam not in obs:
                raise PolicyError(f"observation lacks camera {cam!r} (has: {sorted(obs)})")
            per_cam.append(check_image(obs[cam], cam, obs_size))
        batch.append(np.stack(per_cam))
    return resize_images(np.stack(batch), model_size)
