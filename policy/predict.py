"""``Policy.predict(obs, instruction) -> action``: the inference face of a trained VLA.

A call predicts a chunk of K actions (one forward pass in parallel mode, a KV-cached greedy loop in
autoregressive mode). How the chunk is executed is the policy's choice:

- ``open_loop``: play the K actions (or the first ``replan`` of them) one per step, predict again
  when they run out (K times fewer model calls);
- ``ensemble``: predict every step and average all chunks that cover the current step, newer ones
  weighted less (ACT's temporal ensembling, ``w_i = exp(-m * i)``), which smooths the motion.

Several robots: ``predict_batch`` takes lists and keeps one chunk queue per index; ``reset(i)``
when episode ``i`` restarts.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from policy.errors import PolicyError
from policy.modeling_vla import VLAModel
from policy.processor import (encode_instructions, images_to_tensor, normalize_state,
                              observations_to_arrays)

EXECUTIONS = ("open_loop", "ensemble")


class Policy:
    """A VLA checkpoint ready to act: validation, preprocessing, chunk queues."""

    def __init__(self, model: VLAModel, execution: str = "open_loop", ensemble_decay: float = 0.1,
                 device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                 replan: int | None = None) -> None:
        if execution not in EXECUTIONS:
            raise PolicyError(f"unknown execution {execution!r}; choose from {EXECUTIONS}")
        replan = model.cfg.replan if replan is None else replan
        if not 0 <= replan <= model.cfg.chunk:
            raise PolicyError(f"replan must be 0 (the whole chunk) to {model.cfg.chunk}, got {replan}")
        self.model = model.eval().to(device=device, dtype=dtype or torch.float32)
        self.cfg = model.cfg
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.execution = execution
        self.decay = ensemble_decay
        # open_loop plays this many actions of each chunk before predicting again (openpi's
        # replan_steps; the checkpoint's own setting unless given): fewer means more model calls
        # but a quicker reaction to what happened, which grasping needs.
        self.replan = replan or model.cfg.chunk
        self._queues: dict[int, deque] = {}
        self._history: dict[int, list[tuple[int, np.ndarray]]] = {}
        self._steps: dict[int, int] = {}

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> "Policy":
        return cls(VLAModel.from_pretrained(directory, merge_lora=True), **kwargs)

    def reset(self, index: int | None = None) -> None:
        """Forget queued actions (all robots, or robot ``index``): call at every episode start."""
        for store in (self._queues, self._history, self._steps):
            if index is None:
                store.clear()
            else:
                store.pop(index, None)

    # --- one model call -------------------------------------------------------------------------
    @torch.no_grad()
    def predict_chunk_batch(self, observations: Sequence[Mapping],
                            instructions: Sequence[str]) -> np.ndarray:
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

    def predict_chunk(self, obs: Mapping, instruction: str) -> np.ndarray:
        """K future actions ``[K, 7]`` for one observation."""
        return self.predict_chunk_batch([obs], [instruction])[0]

    # --- one env step ---------------------------------------------------------------------------
    def predict(self, obs: Mapping, instruction: str) -> np.ndarray:
        """The action ``[7]`` to execute now for a single robot."""
        return self.predict_batch([obs], [instruction])[0]

    def predict_batch(self, observations: Sequence[Mapping], instructions: Sequence[str],
                      indices: Sequence[int] | None = None) -> np.ndarray:
        """Actions ``[B, 7]`` for B robots; ``indices`` name their queues (default 0..B-1)."""
        indices = list(range(len(observations))) if indices is None else list(indices)
        need = [j for j, i in enumerate(indices)
                if self.execution == "ensemble" or not self._queues.get(i)]
        if need:
            chunks = self.predict_chunk_batch([observations[j] for j in need],
                                              [instructions[j] for j in need])
            for j, chunk in zip(need, chunks):
                i = indices[j]
                step = self._steps.get(i, 0)
                self._queues[i] = deque(chunk[:self.replan])
                self._history.setdefault(i, []).append((step, chunk))
        actions = []
        for i in indices:
            step = self._steps.get(i, 0)
            if self.execution == "ensemble":
                actions.append(self._ensemble(i, step))
            else:
                actions.append(self._queues[i].popleft())
            self._steps[i] = step + 1
        return np.stack(actions).astype(np.float32)

    def _ensemble(self, i: int, step: int) -> np.ndarray:
        """Weighted mean of every stored chunk's prediction for ``step`` (oldest weighs most)."""
        k = self.cfg.chunk
        live = [(s, c) for s, c in self._history[i] if step - s < k]
        self._history[i] = live
        preds = np.stack([c[step - s] for s, c in live])
        weights = np.exp(-self.decay * np.arange(len(preds)))
        action = (preds * weights[:, None]).sum(0) / weights.sum()
        action[-1] = float(preds[-1, -1] > 0.5)  # the gripper follows the newest chunk: no blends
        return action
