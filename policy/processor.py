"""Raw observations and instructions -> the tensors the model eats, with one-line errors.

Shared by training (batched from a dataset) and inference (from an env), so both see exactly the
same resizing, normalisation and padding. Images go through ``perception.image``, the one
preprocessing every encoder uses; instructions through the checkpoint's ``perception.text``
tokenizer, or (``text_encoder="minilm"``) through the pretrained encoder of
``perception.text_encoder``, whose per-token states replace the token ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch

from perception.image import resize_images
from perception.text import Tokenizer
from policy.errors import PolicyError
from policy.inputs import (check_image, check_instructions, encode_instruction_ids,  # noqa: F401 - check_image re-exported
                           pad_token_states, stack_images)

if TYPE_CHECKING:
    from perception.text_encoder import TextEncoder


def encode_instructions(texts: Sequence[str], tokenizer: Tokenizer,
                        max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and mask ``[B, max_len]`` as torch tensors
    (``policy.inputs.encode_instruction_ids``, which every backend shares)."""
    ids, mask = encode_instruction_ids(texts, tokenizer, max_len)
    return torch.from_numpy(ids), torch.from_numpy(mask)


def encode_instruction_states(texts: Sequence[str], encoder: "TextEncoder",
                              max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pretrained encoder's per-token states, left-padded: float32 ``[B, max_len, 384]`` and
    mask ``[B, max_len]`` (the layout of ``encode_instructions``, states in place of ids).

    Each distinct string is encoded alone, once per process (the encoder's exact-string cache):
    a training set's few hundred instructions cost one forward pass each, and every later step of
    an episode is a lookup. Alone, so that a string's states never depend on the batch it first
    came in with, and equal what the exported text graph computes for it (batch 1, no padding).
    """
    texts = check_instructions(texts)
    per_text = {t: encoder.encode([t]).states[0].float().cpu().numpy() for t in dict.fromkeys(texts)}
    states, mask = pad_token_states([per_text[t] for t in texts], max_len)
    return torch.from_numpy(states), torch.from_numpy(mask)


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
