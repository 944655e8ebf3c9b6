"""``Policy``: a trained VLA checkpoint behind the one policy interface (``policy.base.BasePolicy``).

``predict_chunk(observations, instructions) -> [B, K, A]`` (A = 7 in our action convention, the
dataset's action size otherwise) is one model call (one forward pass in parallel mode, a KV-cached
greedy loop in autoregressive mode), stateless, so several robots can share it. Playing the chunks one action per step (open loop with replanning, or temporal
ensembling) is ``policy.executor.ChunkExecutor``'s job::

    policy = Policy.from_pretrained("checkpoints/vla-default")
    executor = ChunkExecutor(policy)                 # or execution="ensemble"
    executor.reset()                                 # at every episode start
    action = executor.act([obs], [instruction])[0]   # [7], one per control step

A checkpoint conditioned on the pretrained text encoder (``text_encoder="minilm"``) is checked
against the installed encoder at load (``policy.checkpoint_check.check_text_encoder``); its
instructions are encoded once per distinct string per process (the encoder's cache), so after an
episode's first step the instruction costs a lookup, not a forward pass.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from perception.image import resize_images, to_tensor
from policy.base import BasePolicy, ChunkDistribution, Observation
from policy.errors import PolicyError
from policy.features import conform_observations, square_size
# check_states and the STATE_RANGE_* limits live in policy.inputs (numpy only, shared with the
# ONNX backend); re-exported here, where callers have always found them.
from policy.inputs import (STATE_RANGE_STD_FLOOR, STATE_RANGE_STDS, InputSpec,  # noqa: F401
                           check_states, committed_bins, prepare_inputs)
from policy.modeling_vla import VLAModel
from policy.processor import normalize_state


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
        features = self.model.dataset_features
        # None: cameras of other shapes (a foreign dataset's), taken as recorded (camera_shapes)
        size = int(cfg.obs_image_size) if not features or square_size(features) == cfg.obs_image_size \
            else None
        out = {"chunk": int(cfg.chunk), "replan": int(self.replan), "cameras": list(cfg.camera_list),
               "image_size": size, "use_state": self.model.state_proj is not None,
               "state_dim": int(cfg.state_dim) if self.model.state_proj is not None else None,
               "committed_steps": int(cfg.committed_steps),
               "distribution": cfg.decoding == "parallel" and self.model.l1_head is None}
        if features:
            out["camera_shapes"] = {c: list(f["shape"]) for c, f in features["cameras"].items()}
            out["action_dim"] = int(cfg.action_dim)
        return out

    @torch.no_grad()
    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        """One model call for B observations -> actions ``[B, K, A]`` float32.

        A checkpoint that recorded its training dataset's features checks the observations against
        them first (``policy.features.conform_observations``: each camera at its recorded shape,
        under the model's input name or the dataset camera's, and the state's length), then
        resizes every camera to the model's input size as training did."""
        prefix, pmask, committed = self._prefix(observations, instructions)
        return self.model.decode(prefix, pmask, *committed)

    @torch.no_grad()
    def predict_chunk_distribution(self, observations: Sequence[Observation],
                                   instructions: Sequence[str]) -> ChunkDistribution:
        """``predict_chunk`` and the bins' log-probabilities it took the argmax of (one pass)."""
        if not self.describe()["distribution"]:
            return super().predict_chunk_distribution(observations, instructions)
        cfg, tok = self.cfg, self.model.action_tokenizer
        prefix, pmask, committed = self._prefix(observations, instructions)
        logits = self.model.parallel_logits(prefix, pmask, *committed).float()
        shape = (logits.shape[0], cfg.chunk, cfg.action_dim)
        actions = tok.from_bins(logits.argmax(-1).cpu().numpy().reshape(shape))
        log_probs = torch.log_softmax(logits, -1).cpu().numpy().reshape(*shape, -1)
        return ChunkDistribution(actions, log_probs.astype(np.float32), tok.bin_values())

    def _prefix(self, observations: Sequence[Observation], instructions: Sequence[str]
                ) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """Checked inputs -> the model's prefix, its mask and the committed actions' (bins,
        counts), () when none were given."""
        cfg = self.cfg
        pretrained = cfg.pretrained_text  # the encoder reads the strings; no ids
        spec = self.input_spec()
        committed = committed_bins(observations, self.model.action_tokenizer, cfg.chunk,
                                   cfg.committed_steps)
        if self.model.dataset_features:
            observations = conform_observations(self.model.dataset_features, observations,
                                                cfg.image_size)
            spec = dataclasses.replace(spec, image_size=int(cfg.image_size))
        images, ids, mask, states = prepare_inputs(observations, instructions, spec,
                                                   None if pretrained else self.model.text_tokenizer)
        if pretrained:
            text, text_mask = self.model.encode_text(instructions)
            text = text.to(self.device, self.dtype)
        else:
            text, text_mask = torch.from_numpy(ids).to(self.device), torch.from_numpy(mask)
        images = to_tensor(resize_images(images, cfg.image_size)).to(self.device, self.dtype)
        state = None
        if states is not None:
            state = normalize_state(states, self.model.state_stats).to(self.device, self.dtype)
        prefix, pmask = self.model.embed_prefix(images, text, text_mask.to(self.device), state)
        if committed is None:
            return prefix, pmask, ()
        return prefix, pmask, tuple(torch.from_numpy(x).to(self.device) for x in committed)

    def input_spec(self) -> InputSpec:
        """What ``policy.inputs.prepare_inputs`` checks for this checkpoint (the ONNX export
        writes the same fields into its manifest)."""
        cfg = self.cfg
        return InputSpec(cameras=tuple(cfg.camera_list), image_size=int(cfg.obs_image_size),
                         max_text_tokens=int(cfg.max_text_tokens),
                         use_state=self.model.state_proj is not None, state_dim=int(cfg.state_dim),
                         state_stats=self.model.state_stats)
