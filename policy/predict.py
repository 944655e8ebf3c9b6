"""``Policy``: a trained VLA checkpoint behind the one policy interface (``policy.base.BasePolicy``).

``predict_chunk(observations, instructions) -> [B, K, 7]`` is one model call (one forward pass in
parallel mode, a KV-cached greedy loop in autoregressive mode), stateless, so several robots can
share it. Playing the chunks one action per step (open loop with replanning, or temporal
ensembling) is ``policy.executor.ChunkExecutor``'s job::

    policy = Policy.from_pretrained("checkpoints/vla-default")
    executor = ChunkExecutor(policy)                 # or execution="ensemble"
    executor.reset()                                 # at every episode start
    action = executor.act([obs], [instruction])[0]   # [7], one per control step
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from perception.image import to_tensor
from policy.base import BasePolicy, Observation
from policy.errors import PolicyError
from policy.modeling_vla import VLAModel
from policy.processor import encode_instructions, normalize_state, observations_to_arrays


# A state further from the training mean than this many standard deviations is not a pose the robot
# can be in but a broken sensor or a unit mistake: millimetres for metres put the tool ~7,000 std
# away, degrees for radians a joint ~600 std away (shipped checkpoint). The std is floored at 0.1
# for this check (10 cm, 0.1 rad: states are in SI units), so every dimension accepts deviations
# of at least 10 units: any reachable pose passes, even along dimensions that barely moved in the
# data (a quaternion component, std 0.001; |q| <= 1), and a sane state is never refused.
# Normalisation itself still clips at 5 std, as in training.
STATE_RANGE_STDS = 100.0
STATE_RANGE_STD_FLOOR = 0.1


def check_states(states: Sequence[object], stats: dict | None, dim: int) -> np.ndarray:
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


def check_device(device: str | torch.device) -> torch.device:
    """The torch device named by the user, or a one-line PolicyError when this machine lacks it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PolicyError(f"device {str(device)!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise PolicyError(f"device {str(device)!r}: this machine has no CUDA GPU (use cpu)")
        if dev.index is not None and dev.index >= count:
            raise PolicyError(f"device {str(device)!r}: this machine has {count} CUDA GPU(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise PolicyError(f"device {str(device)!r}: MPS is not available on this machine (use cpu)")
    return dev


class Policy(BasePolicy):
    """A VLA checkpoint ready to act: validation, preprocessing, one batched model call."""

    def __init__(self, model: VLAModel, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 replan: int | None = None) -> None:
        check_device(device)
        replan = model.cfg.replan if replan is None else replan
        if not 0 <= replan <= model.cfg.chunk:
            raise PolicyError(f"replan must be 0 (the whole chunk) to {model.cfg.chunk}, got {replan}")
        self.model = model.eval().to(device=device, dtype=dtype or torch.float32)
        self.cfg = model.cfg
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        # Actions played of each chunk before predicting again (openpi's replan_steps; the
        # checkpoint's own setting unless given): fewer means more model calls but a quicker
        # reaction to what happened, which grasping needs. Published through describe(), so the
        # executor and the inference server read the same number.
        self.replan = replan or model.cfg.chunk

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> "Policy":
        check_device(kwargs.get("device", "cpu"))  # before a model is loaded for nothing
        return cls(VLAModel.from_pretrained(directory, merge_lora=True), **kwargs)

    def describe(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"chunk": int(cfg.chunk), "replan": int(self.replan), "cameras": list(cfg.camera_list),
                "image_size": int(cfg.obs_image_size), "use_state": self.model.state_proj is not None,
                "state_dim": int(cfg.state_dim) if self.model.state_proj is not None else None}

    @torch.no_grad()
    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        """One model call for B observations -> actions ``[B, K, 7]`` float32."""
        if len(observations) != len(instructions):
            raise PolicyError(f"{len(observations)} observations but {len(instructions)} instructions")
        cfg = self.cfg
        arrays = observations_to_arrays(observations, cfg.camera_list, cfg.obs_image_size,
                                        cfg.image_size)
        images = to_tensor(arrays).to(self.device, self.dtype)  # arrays are at model size
        ids, mask = encode_instructions(instructions, self.model.text_tokenizer, cfg.max_text_tokens)
        state = None
        if self.model.state_proj is not None:
            if any("state" not in o for o in observations):
                raise PolicyError("this checkpoint uses proprioception: observations need 'state'")
            states = check_states([o["state"] for o in observations], self.model.state_stats,
                                  cfg.state_dim)
            state = normalize_state(states, self.model.state_stats).to(self.device, self.dtype)
        prefix, pmask = self.model.embed_prefix(images, ids.to(self.device), mask.to(self.device),
                                                state)
        return self.model.decode(prefix, pmask)
