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
from policy.inputs import check_image, encode_instruction_ids, stack_images  # noqa: F401 - check_image re-exported


def encode_instructions(texts: Sequence[str], tokenizer: Tokenizer,
                        max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and mask ``[B, max_len]`` as torch tensors
    (``policy.inputs.encode_instruction_ids``, which every backend shares)."""
    ids, mask = encode_instruction_ids(texts, tokenizer, max_len)
    return torch.from_numpy(ids), torch.from_numpy(mask)


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
    return resize_images(stack_images(observations, cameras, obs_size), model_size)
