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

from policy.base import BasePolicy, Observation
from policy.errors import PolicyError
from policy.modeling_vla import VLAModel
from policy.processor import (encode_instructions, images_to_tensor, normalize_state,
                              observations_to_arrays)


class Policy(BasePolicy):
    """A VLA checkpoint ready to act: validation, preprocessing, one batched model call."""

    def __init__(self, model: VLAModel, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 replan: int | None = None) -> None:
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
        return cls(VLAModel.from_pretrained(directory, merge_lora=True), **kwargs)

    def describe(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"chunk": int(cfg.chunk), "replan": int(self.replan), "cameras": list(cfg.camera_list),
                "image_size": int(cfg.obs_image_size), "use_state": self.model.state_proj is not None}

    @torch.no_grad()
    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        """One model call for B observations -> actions ``[B, K, 7]`` float32."""
        if len(observations) != len(instructions):
            raise PolicyError(f"{len(observations)} observations but {len(instructions)} instructions")
        cfg = self.cfg
        arrays = observations_to_arrays(observations, cfg.camera_list, cfg.obs_image_size,
                                        cfg.image_size)
        images = images_to_tensor(arrays).to(self.device, self.dtype)
        ids, mask = encode_instructions(instructions, self.model.text_tokenizer, cfg.max_text_tokens)
        state = None
        if self.model.state_proj is not None:
            if any("state" not in o for o in observations):
                raise PolicyError("this checkpoint uses proprioception: observations need 'state'")
            state = normalize_state(np.stack([o["state"] for o in observations]),
                                    self.model.state_stats).to(self.device, self.dtype)
        prefix, pmask = self.model.embed_prefix(images, ids.to(self.device), mask.to(self.device),
                                                state)
        return self.model.decode(prefix, pmask)
