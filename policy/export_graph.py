"""The whole per-step computation of a parallel-decoding VLA as one torch module, ready to export.

``StepGraph(model)(images, state, text_ids, text_mask) -> actions`` does in one graph what
``policy.predict.Policy.predict_chunk`` does around the model:

- camera images, uint8 ``[B, C, S, S, 3]`` at the checkpoint's obs size -> float ``[B, C, 3, S, S]``
  in [0, 1] (``perception.image.to_tensor``: no resampling, the obs size is the model size);
- the raw state -> standardised with the checkpoint's statistics, clipped at 5 std
  (``policy.processor.normalize_state``);
- the prefix (``VLAModel.embed_prefix``) and the one forward pass of parallel decoding, without a
  KV cache (``use_cache=False``: nothing is decoded after it); a checkpoint trained for real-time
  chunking (``committed_steps``) also takes the committed actions' bins ``[B, 7K]`` and counts
  ``[B]`` (``VLAModel.action_inputs``; count 0 = none);
- the 7K action bins (or the l1 head's values) -> un-normalised actions ``[B, K, 7]`` float32 with
  the action tokenizer's q01/q99 (``ActionTokenizer.from_bins`` / ``unnormalize``), so an exported
  graph's output is ready to execute;
- with a token head, also the log-probabilities of every bin ``[B, K, 7, n_bins]`` (a second
  output, ``log_probs``: what the executor's ``guided`` blend reads, ``policy.base.ChunkDistribution``).

What stays outside: tokenising the instruction (a string op; the tokenizer is saved beside the
graph) and validating inputs (``policy.inputs``), both cheap and numpy-only.

A checkpoint conditioned on the pretrained text encoder (``text_encoder="minilm"``) takes its
instruction as token states ``[B, L, 384]`` instead of ids, and the encoder is a second graph,
``TextGraph`` (word-piece ids of one instruction -> its token states), run once per distinct
instruction by the backend, never per step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policy.modeling_vla import VLAModel


class StepGraph(nn.Module):
    """uint8 images, raw state, token ids and mask -> un-normalised actions ``[B, K, 7]`` (and,
    with a token head, the bins' log-probabilities ``[B, K, 7, n_bins]``)."""

    def __init__(self, model: VLAModel) -> None:
        super().__init__()
        self.model = model.eval()
        cfg = model.cfg
        self.chunk, self.action_dim = cfg.chunk, cfg.action_dim
        tok = model.action_tokenizer
        # Constants baked into the graph in float64: the de-tokenisation repeats
        # ActionTokenizer's numpy arithmetic op for op, so the exported graph's actions are the
        # torch path's to the bit (a 1e-9 difference in a commanded action is enough to change a
        # grasp in the simulator a few dozen steps later).
        self.register_buffer("low", torch.tensor(tok.low, dtype=torch.float64), persistent=False)
        self.register_buffer("span", torch.tensor(tok.span, dtype=torch.float64), persistent=False)
        const = np.asarray(tok.high - tok.low <= 1e-8)
        self.register_buffer("constant", torch.tensor(const), persistent=False)
        gripper = np.zeros(tok.dim, bool)
        if tok.gripper_dim is not None:
            gripper[tok.gripper_dim] = True
        self.register_buffer("gripper", torch.tensor(gripper), persistent=False)
        self.bin_width = float(tok.bin_width)
        self.n_bins = int(tok.n_bins)
        self.has_state = model.state_proj is not None
        stats = model.state_stats
        if self.has_state and stats is not None:
            self.register_buffer("state_mean", torch.tensor(stats["mean"], dtype=torch.float32),
                                 persistent=False)
            std = np.maximum(np.asarray(stats["std"], np.float32), 1e-3)
            self.register_buffer("state_std", torch.tensor(std), persistent=False)
        else:
            self.state_mean = self.state_std = None

    def forward(self, images: torch.Tensor, state: torch.Tensor | None, text: torch.Tensor,
                text_mask: torch.Tensor, committed_bins: torch.Tensor | None = None,
                committed_len: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        m = self.model
        x = images.to(torch.float32) / 255.0  # [B, C, S, S, 3] -> [B, C, 3, S, S]
        x = x.permute(0, 1, 4, 2, 3)
        if self.has_state:
            if self.state_mean is not None:
                state = torch.clamp((state - self.state_mean) / self.state_std, -5.0, 5.0)
        else:
            state = None
        prefix, mask = m.embed_prefix(x, text, text_mask, state)
        b, p = mask.shape
        n = m.cfg.num_action_tokens
        queries = m.action_inputs(b, prefix.dtype, committed_bins, committed_len)
        embeds = torch.cat([prefix, queries], dim=1)
        full_mask = torch.cat([mask, mask.new_ones(b, n)], dim=1)
        hidden = m._run_lm(embeds, full_mask).hidden_states[-1][:, p:p + n]
        if m.l1_head is not None:
            normed = torch.tanh(m.l1_head(hidden).squeeze(-1)).to(torch.float32)
            return (self._unnormalize(normed.reshape(b, self.chunk, self.action_dim)),)
        # ActionTokenizer.bin_centers: float64 arithmetic, float32 result
        logits = m._action_logits(hidden)
        bins = logits.argmax(-1)
        normed = (-1.0 + (bins.to(torch.float64) + 0.5) * self.bin_width).to(torch.float32)
        log_probs = torch.log_softmax(logits.to(torch.float32), -1)
        return (self._unnormalize(normed.reshape(b, self.chunk, self.action_dim)),
                log_probs.reshape(b, self.chunk, self.action_dim, self.n_bins))

    def _unnormalize(self, normed: torch.Tensor) -> torch.Tensor:
        """``ActionTokenizer.unnormalize`` in torch ops (float64, as numpy does it): clip, scale,
        constant dims, gripper by sign; float32 out."""
        x = torch.clamp(normed.to(torch.float64), -1.0, 1.0)
        out = (x + 1.0) / 2.0 * self.span + self.low
        out = torch.where(self.constant, self.low.expand_as(out), out)
        out = torch.where(self.gripper, (x > 0).to(torch.float64), out)
        return out.to(torch.float32)


class TextGraph(nn.Module):
    """The pretrained text encoder's per-token states: int64 word-piece ids ``[1, T]`` of one
    instruction ([CLS] ... [SEP], no padding) -> float32 ``[1, T, 384]``, what
    ``perception.text_encoder.TextEncoder.encode`` caches for that string."""

    def __init__(self, encoder_model: nn.Module) -> None:
        super().__init__()
        self.model = encoder_model.eval()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(input_ids)
        return self.model(input_ids=input_ids, attention_mask=ones,
                          token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
