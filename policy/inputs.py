"""What every policy backend checks and encodes before its model runs, in numpy only.

The torch ``Policy`` and the ONNX Runtime ``OnnxPolicy`` must refuse exactly the same inputs with
the same one-line errors (an edge robot running the exported graph deserves the same protection
as the lab's torch model), so both call :func:`prepare_inputs`. No torch here: the exported
backend runs where only numpy, tokenizers and onnxruntime are installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from perception.text import Tokenizer
from policy.errors import PolicyError

if TYPE_CHECKING:
    from policy.action_tokenizer import ActionTokenizer

# A state further from the training mean than this many standard deviations is not a pose the robot
# can be in but a broken sensor or a unit mistake: millimetres for metres put the tool ~7,000 std
# away, degrees for radians a joint ~600 std away (shipped checkpoint). The std is floored at 0.1
# for this check (10 cm, 0.1 rad: states are in SI units), so every dimension accepts deviations
# of at least 10 units: any reachable pose passes, even along dimensions that barely moved in the
# data (a quaternion component, std 0.001; |q| <= 1), and a sane state is never refused.
# Normalisation itself still clips at 5 std, as in training.
STATE_RANGE_STDS = 100.0
STATE_RANGE_STD_FLOOR = 0.1


@dataclass(frozen=True)
class InputSpec:
    """What a checkpoint reads: cameras at ``image_size``, instructions of ``max_text_tokens``
    tokens, and a ``state_dim`` state checked against ``state_stats`` when ``use_state``."""

    cameras: tuple[str, ...]
    image_size: int
    max_text_tokens: int
    use_state: bool
    state_dim: int
    state_stats: Mapping[str, Sequence[float]] | None


def check_image(image: object, name: str, size: int) -> np.ndarray:
    """An ``[size, size, 3]`` uint8 RGB array, or a PolicyError naming what is wrong."""
    if not isinstance(image, np.ndarray):
        raise PolicyError(f"image {name!r} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise PolicyError(f"image {name!r} must be uint8 RGB, got dtype {image.dtype}")
    if image.shape != (size, size, 3):
        raise PolicyError(f"image {name!r} must have shape ({size}, {size}, 3), got {image.shape}")
    return image


def stack_images(observations: Sequence[Mapping], cameras: Sequence[str], size: int) -> np.ndarray:
    """Validated camera images of each observation -> uint8 ``[B, C, size, size, 3]``."""
    batch = []
    for obs in observations:
        if not isinstance(obs, Mapping):
            raise PolicyError("an observation must be a dict of camera images (and 'state')")
        per_cam = []
        for cam in cameras:
            if cam not in obs:
                raise PolicyError(f"observation lacks camera {cam!r} (has: {sorted(obs)})")
            per_cam.append(check_image(obs[cam], cam, size))
        batch.append(np.stack(per_cam))
    return np.stack(batch)


def encode_instruction_ids(texts: Sequence[str], tokenizer: Tokenizer,
                           max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded int64 ids and mask ``[B, max_len]``: BOS (when the tokenizer has one) and the
    text, its last ``max_len`` tokens if longer; empty instructions are refused."""
    ids = np.full((len(texts), max_len), tokenizer.pad_id, dtype=np.int64)
    mask = np.zeros((len(texts), max_len), dtype=np.int64)
    bos = [] if tokenizer.bos_id is None else [tokenizer.bos_id]
    for i, text in enumerate(check_instructions(texts)):
        tok = (bos + tokenizer.encode(text))[-max_len:]
        ids[i, max_len - len(tok):] = tok
        mask[i, max_len - len(tok):] = 1
    return ids, mask


def check_instructions(texts: Sequence[str]) -> list[str]:
    """The instructions, stripped of surrounding space; an empty one is refused."""
    out = []
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise PolicyError("the instruction is empty; say what the robot should do")
        out.append(text.strip())
    return out


def pad_token_states(states: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-instruction token states ``[T_i, D]`` (a pretrained text encoder's) -> left-padded
    float32 ``[B, max_len, D]`` and int64 mask ``[B, max_len]``, each its last ``max_len`` tokens if
    longer: the layout ``encode_instruction_ids`` gives token ids, shared by every backend."""
    dim = int(states[0].shape[-1])
    out = np.zeros((len(states), max_len, dim), dtype=np.float32)
    mask = np.zeros((len(states), max_len), dtype=np.int64)
    for i, s in enumerate(states):
        s = np.asarray(s, dtype=np.float32)[-max_len:]
        out[i, max_len - len(s):] = s
        mask[i, max_len - len(s):] = 1
    return out, mask


def check_states(states: Sequence[object], stats: Mapping | None, dim: int) -> np.ndarray:
    """``[B, dim]`` float32 states, or a PolicyError: wrong shape, non-finite, or out of range."""
    out = []
    for i, state in enumerate(states):
        try:
            x = np.asarray(state, dtype=np.float64)
        except (TypeError, ValueError):
            raise PolicyError(f"observation {i}: 'state' is not an array of numbers") from None
        if x.shape != (dim,):
            raise PolicyError(f"observation {i}: 'state' has shape {x.shape}, the checkpoint expects ({dim},)")
        if not np.all(np.isfinite(x)):
            raise PolicyError(f"observation {i}: 'state' contains NaN or infinity at "
                              f"{np.flatnonzero(~np.isfinite(x)).tolist()}: refusing to act on it")
        if stats is not None:
            scale = np.maximum(np.asarray(stats["std"], np.float64), STATE_RANGE_STD_FLOOR)
            far = np.abs(x - np.asarray(stats["mean"], np.float64)) / scale > STATE_RANGE_STDS
            if far.any():
                j = int(np.flatnonzero(far)[0])
                raise PolicyError(f"observation {i}: 'state'[{j}] = {x[j]:.6g} is far outside the "
                                  f"checkpoint's state statistics (mean {stats['mean'][j]:.4g}, std "
                                  f"{stats['std'][j]:.4g}): a broken sensor or wrong units?")
        out.append(x)
    return np.stack(out).astype(np.float32)


def prepare_inputs(observations: Sequence[Mapping], instructions: Sequence[str], spec: InputSpec,
                   tokenizer: Tokenizer | None) -> tuple[np.ndarray, np.ndarray | None,
                                                         np.ndarray | None, np.ndarray | None]:
    """Checked ``(images [B, C, S, S, 3] uint8, ids [B, L], mask [B, L], states [B, D] | None)``.

    States are raw (not normalised): each backend standardises them its own way (in torch, or
    inside the exported graph). Checks run in this order: batch sizes, images, instructions,
    states. ``tokenizer=None`` (a checkpoint conditioned on a pretrained text encoder, which
    encodes the strings itself) checks the instructions and returns ``None`` for ids and mask.
    """
    if len(observations) != len(instructions):
        raise PolicyError(f"{len(observations)} observations but {len(instructions)} instructions")
    images = stack_images(observations, spec.cameras, spec.image_size)
    if tokenizer is None:
        check_instructions(instructions)
        ids = mask = None
    else:
        ids, mask = encode_instruction_ids(instructions, tokenizer, spec.max_text_tokens)
    states = None
    if spec.use_state:
        if any("state" not in o for o in observations):
            raise PolicyError("this checkpoint uses proprioception: observations need 'state'")
        states = check_states([o["state"] for o in observations], spec.state_stats, spec.state_dim)
    return images, ids, mask, states


def committed_bins(observations: Sequence[Mapping], tokenizer: "ActionTokenizer", chunk: int,
                   max_steps: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The committed actions of B observations (``policy.base.COMMITTED``) as the model reads them:
    action bins ``[B, chunk * A]`` int64 (zeros after each robot's own) and their counts ``[B]``
    int64; None when no observation carries any. Refuses, in one line, more than ``max_steps``
    (the checkpoint's ``committed_steps``; 0 for a checkpoint not trained for them), a shape
    other than ``[n, A]`` and NaN or infinity, as the state's checks do."""
    from policy.base import COMMITTED

    given = [o.get(COMMITTED) for o in observations]
    if all(g is None for g in given):
        return None
    dim = tokenizer.dim
    bins = np.zeros((len(observations), chunk * dim), np.int64)
    counts = np.zeros(len(observations), np.int64)
    for i, g in enumerate(given):
        if g is None:
            continue
        try:
            actions = np.asarray(g, dtype=np.float64)
        except (TypeError, ValueError):
            raise PolicyError(f"observation {i}: {COMMITTED!r} is not an array of numbers") from None
        if actions.ndim != 2 or actions.shape[1] != dim:
            raise PolicyError(f"observation {i}: {COMMITTED!r} must be [n, {dim}] actions, got shape "
                              f"{list(actions.shape)}")
        if len(actions) > max_steps:
            raise PolicyError(f"observation {i}: {len(actions)} committed actions, but this checkpoint "
                              f"continues at most {max_steps} (its committed_steps; train one with "
                              "`embodied train --init CKPT --committed-steps N`)")
        if not np.all(np.isfinite(actions)):
            raise PolicyError(f"observation {i}: {COMMITTED!r} contains NaN or infinity: refusing to act on it")
        bins[i, :actions.size] = tokenizer.to_bins(actions).reshape(-1)
        counts[i] = len(actions)
    return bins, counts
