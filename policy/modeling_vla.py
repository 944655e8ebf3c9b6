"""The VLA model: vision encoder -> 2-layer MLP projector -> causal LM -> action tokens.

Sequence layout (left padding keeps every row's action positions aligned at the end):

    [PAD..] [BOS instruction tokens] [patches cam 1] [patches cam 2] [state] [action positions x 7K]

Autoregressive mode feeds the previous action token at each action position (teacher forcing) and
reads the next one from the position before it, as OpenVLA. Parallel mode (OpenVLA-OFT) feeds a
learned placeholder embedding at every action position and reads all 7K tokens from one forward
pass; with ``action_head="l1"`` a linear head regresses the normalised value instead of a bin.

Action tokens are dedicated ids appended after the text vocabulary: id = offset + bin.

With ``text_encoder="minilm"`` the instruction tokens are not ids of a learned vocabulary but the
frozen pretrained encoder's per-token states (``perception.text_encoder``: 384-d, one row per
word piece, [CLS] and [SEP] included), projected into the LM by a 2-layer MLP (as the image
patches are). FiLM and the auxiliary grounding head read an attention pooling of the same states:
a few learned queries each pick the words they need (colour, shape, side), which a mean would blur
("pick up the red cube" and "... blue cube" have a pooled cosine of 0.83). The LM's vocabulary is
then only the action bins (offset 0), and the checkpoint names the encoder (package, version,
weight hash) instead of copying it; ``save_pretrained(bundle_text_encoder=True)`` copies it.

With ``lm="smollm2"`` the LM is a pretrained base (``perception.pretrained_lm``: SmolLM2-135M,
576 wide, dequantized and cached once, optionally cut to its first ``lm_layers`` layers) under
LoRA; the projectors, FiLM and heads are sized to its width and train in full beside the adapters.
Its instructions are the MiniLM token states, projected (the policy's text side is MiniLM). Its
vocabulary stays as it is: the action bins get an output head of their own (``action_out``, and
``action_embed`` for autoregressive inputs), and the LM runs without its 49k-word output layer.
The checkpoint is adapter-only: every tensor but the base's frozen weights, plus the base's record
(``perception.lm.adapter_arch``: package, version, weights sha256, depth, LoRA), which
loading checks against the installed base and rebuilds from the cache.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from common.atomic import atomic_dir
from perception.encoders import VisionEncoder, build_vision_encoder, load_vision_encoder
from perception.errors import PerceptionError
from perception.lm import LoRA, TinyLM, build_lm, cache_kwarg, cache_of, lm_config_dict
from perception.lm import add_lora as add_lora_adapters, merge_lora as merge_lora_adapters
from perception.text import PretrainedTokenizer, Tokenizer, load_tokenizer, train_bpe
from perception.text_encoder import DIM as TEXT_STATE_DIM
from policy.action_tokenizer import GRIPPER_DIM, ActionTokenizer
from policy.checkpoint_check import (TEXT_ENCODER_DIR, check_config, check_dataset_features,
                                     check_stats, check_text_encoder, check_weights,
                                     read_weight_shapes)
from policy.configuration_vla import PRETRAINED_LORA_RANK, VLAConfig
from policy.errors import PolicyError

AUX_TARGET_DIM = 6
CHECKPOINT_FILES = ("config.json", "model.safetensors", "stats.json")  # + tokenizer/ unless minilm
# Learned queries of the attention pooling over the pretrained token states: one each, roughly,
# for what an instruction names (verb, colour, shape, side/receptacle).
TEXT_POOL_QUERIES = 4
# The instruction tokenizer's specials, ids 0-3. A character-level BPE (not byte-level): the
# instructions are a small closed corpus (the shipped checkpoint's vocabulary is 94 ids), and this
# is what the shipped checkpoint was trained with, so `embodied train` still reproduces it.
INSTRUCTION_SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")


class AttentionPool(nn.Module):
    """Token states ``[B, T, D]`` and mask -> ``[B, out]``: ``queries`` learned softmax weightings
    over the real tokens, concatenated and projected. Why not the mean: it blurs the one word that
    tells two instructions apart; a query can put its weight on that word."""

    def __init__(self, dim: int, out: int, queries: int = TEXT_POOL_QUERIES) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, queries)
        self.proj = nn.Linear(queries * dim, out)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm(states)
        logits = self.score(x).float()  # [B, T, Q]
        logits = logits.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(logits.dtype).min)
        weights = logits.softmax(dim=1).to(x.dtype)
        pooled = torch.einsum("btq,btd->bqd", weights, x).flatten(1)
        return self.proj(pooled)


def instruction_tokenizer(instructions: list[str], vocab_size: int) -> Tokenizer:
    """BPE fitted on the instructions, lower-cased first, so "Pick up the RED cube." and "pick up
    the red cube" agree; an unseen character becomes [UNK]."""
    return train_bpe(instructions, vocab_size, INSTRUCTION_SPECIALS, byte_level=False,
                     lowercase=True, unk="[UNK]")


class VLAModel(nn.Module):
    """The network plus what it needs to speak actions: tokenizers and statistics ride along."""

    def __init__(self, cfg: VLAConfig, vision: VisionEncoder, lm: nn.Module, text_tokenizer:
                 Tokenizer | None, action_tokenizer: ActionTokenizer,
                 state_stats: dict[str, list[float]] | None = None,
                 text_encoder_id: dict[str, str] | None = None,
                 text_encoder_dir: Path | None = None,
                 lm_arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = vision
        self.lm = lm
        self.text_tokenizer = text_tokenizer  # None with a pretrained text encoder and a tiny LM
        self.action_tokenizer = action_tokenizer
        self.state_stats = state_stats
        # The pretrained text encoder, by reference: its id (saved in config.json) and, for a
        # checkpoint that bundles it, the folder to load it from (None: the installed package).
        self.text_encoder_id = text_encoder_id
        self.text_encoder_dir = text_encoder_dir
        # The dataset features it was trained on (``policy.features``: cameras and their shapes,
        # state and action sizes and names, fps, the train/held-out split); None for checkpoints
        # from before they were recorded.
        self.dataset_features: dict[str, Any] | None = None
        if cfg.pretrained_text and not text_encoder_id:
            raise PolicyError("a model conditioned on a pretrained text encoder needs its id")
        # A pretrained base under LoRA: its record (perception.pretrained_lm.adapter_arch), saved
        # in config.json instead of its weights.
        if cfg.pretrained_lm and not lm_arch:
            raise PolicyError("a model on a pretrained LM needs its base's record")
        self.lm_arch = lm_arch
        if cfg.committed_steps >= cfg.chunk:
            raise PolicyError(f"committed_steps must be below the chunk ({cfg.chunk}): a chunk needs a "
                              f"fresh action after the committed ones, got {cfg.committed_steps}")
        hidden = lm.config.hidden_size
        self.action_offset = text_tokenizer.vocab_size if text_tokenizer is not None else 0
        self.projector = nn.Sequential(nn.Linear(vision.out_dim, hidden), nn.GELU(),
                                       nn.Linear(hidden, hidden))
        self.camera_embed = nn.Parameter(torch.zeros(len(cfg.camera_list), 1, hidden))
        self.state_proj = nn.Linear(cfg.state_dim, hidden) if cfg.use_state and cfg.state_dim else None
        # One learned placeholder per action position: the queries parallel decoding reads from.
        self.action_queries = nn.Parameter(torch.randn(cfg.num_action_tokens, hidden) * 0.02)
        self.l1_head = nn.Linear(hidden, 1) if cfg.action_head == "l1" else None
        # Training-only probe: target position (world and gripper-relative, 6 numbers) read from the
        # state token, which has attended to every image patch and the instruction.
        # With pretrained text it also reads the pooled instruction (concatenated): the grounding
        # it is trained for is "where is the object these words name".
        aux_in = 2 * hidden if cfg.pretrained_text else hidden
        self.aux_head = nn.Linear(aux_in, AUX_TARGET_DIM) if cfg.aux_target_weight > 0 else None
        self.film: nn.ModuleList | None = None
        # Pretrained text: token states -> LM width (2-layer MLP, as the image patches), and the
        # attention pooling FiLM and the aux head read (only built when one of them is there).
        self.text_proj: nn.Sequential | None = None
        self.text_pool: AttentionPool | None = None
        if cfg.pretrained_text:
            self.text_proj = nn.Sequential(nn.LayerNorm(TEXT_STATE_DIM),
                                           nn.Linear(TEXT_STATE_DIM, hidden), nn.GELU(),
                                           nn.Linear(hidden, hidden))
            if cfg.aux_target_weight > 0:
                self.text_pool = AttentionPool(TEXT_STATE_DIM, hidden)
        # A pretrained base's vocabulary is its own: the action bins get their own output head
        # (and input embeddings when decoded token by token) instead of rows appended to it.
        self.action_out = nn.Linear(hidden, cfg.n_bins) \
            if cfg.pretrained_lm and cfg.action_head == "tokens" else None
        self.action_embed = nn.Embedding(cfg.n_bins, hidden) \
            if cfg.pretrained_lm and cfg.decoding == "autoregressive" else None
        if cfg.film:
            self.add_film()

    def resize_chunk(self, chunk: int) -> None:
        """Predict ``chunk`` actions per call instead of ``cfg.chunk`` (``embodied train --init CKPT
        --rechunk K``), keeping what the checkpoint learnt.

        The LM is causal, so the action placeholders read the prefix and the placeholders before
        them only: placeholders appended after the last one leave the first K actions exactly as
        they were (a longer chunk starts as the same policy), and cutting placeholders off the end
        leaves the remaining ones unchanged. The new positions start as copies of the last
        action's placeholders (the closest thing the checkpoint knows: "keep going") and are what
        fine-tuning has to learn. ``replan`` is kept (capped at the new length). Why: a chunk
        longer than the model's latency is what asynchronous execution needs to blend chunks
        (``policy.executor``), and training one from scratch costs far more than extending one.
        """
        if chunk < 1:
            raise PolicyError(f"chunk must be >= 1, got {chunk}")
        if self.cfg.decoding != "parallel":
            raise PolicyError("only a parallel-decoding policy has placeholders to resize; "
                              f"this one decodes {self.cfg.decoding}")
        old, dim = self.cfg.chunk, self.cfg.action_dim
        queries = self.action_queries.detach().view(old, dim, -1)
        if chunk > old:
            queries = torch.cat([queries, queries[-1:].expand(chunk - old, -1, -1)], dim=0)
        queries = queries[:chunk].reshape(chunk * dim, -1).clone()
        self.action_queries = nn.Parameter(queries, requires_grad=self.action_queries.requires_grad)
        self.cfg.chunk = chunk
        self.cfg.replan = min(self.cfg.replan, chunk)
        self.cfg.committed_steps = min(self.cfg.committed_steps, chunk - 1)

    def add_film(self) -> None:
        """Instruction FiLM generators, one per conv stage, initialised to the identity.

        Zero weights and biases give scale 1 and shift 0, so a trained checkpoint predicts exactly
        what it did before and fine-tuning learns how far to use the instruction inside the
        tower. Why: a policy that fuses text with vision only in the LM sees each 16-pixel cell
        summarised before it knows which colour it is looking for (the shipped one's PickUp
        failures were all a distractor taken for the target).
        """
        widths = self.vision.stage_widths
        if not widths:
            raise PolicyError("film needs a single convolutional vision tower (bit or resnet)")
        hidden = self.lm.config.hidden_size
        where = dict(device=self.projector[0].weight.device, dtype=self.projector[0].weight.dtype)
        gens = nn.ModuleList(nn.Linear(hidden, 2 * w) for w in widths)
        for g in gens:
            nn.init.zeros_(g.weight)
            nn.init.zeros_(g.bias)
        self.film = gens.to(**where)
        if self.cfg.pretrained_text and self.text_pool is None:
            self.text_pool = AttentionPool(TEXT_STATE_DIM, hidden).to(**where)
        self.cfg.film = True

    # --- the pretrained text encoder ------------------------------------------------------------
    @property
    def text_encoder(self) -> Any:
        """The frozen ``perception.text_encoder.TextEncoder`` this model reads (process-wide: the
        installed package's shared instance, or the checkpoint's bundled copy); never a submodule,
        so its 22.7 M parameters are neither saved nor trained with the policy."""
        from perception.text_encoder import shared_text_encoder, text_encoder_from

        if not self.cfg.pretrained_text:
            raise PolicyError("this policy reads learned token ids; it has no pretrained text encoder")
        if self.text_encoder_dir is not None:
            return text_encoder_from(self.text_encoder_dir)
        return shared_text_encoder()

    def encode_text(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Instructions -> what ``embed_prefix`` reads: left-padded token ids ``[B, L]`` (int64)
        or, with a pretrained text encoder, its token states ``[B, L, 384]`` (float32; each
        distinct string encoded once per process), and the mask ``[B, L]``."""
        from policy.processor import encode_instruction_states, encode_instructions

        if self.cfg.pretrained_text:
            return encode_instruction_states(texts, self.text_encoder, self.cfg.max_text_tokens)
        return encode_instructions(texts, self.text_tokenizer, self.cfg.max_text_tokens)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: VLAConfig, action_stats: dict, instructions: list[str],
              state_stats: dict | None = None, gripper_dim: int | None = GRIPPER_DIM) -> "VLAModel":
        """A fresh model: tiny backbones from configs, or pretrained ones from ``*_path``.
        ``gripper_dim``: the binary gripper of our action convention, None for continuous actions."""
        if cfg.vision_path:
            vision = load_vision_encoder(cfg.vision_path)
            cfg.image_size = vision.image_size
            cfg.patch_size = vision.patch_size
        else:
            vision = build_vision_encoder(cfg.vision_family, cfg.image_size, cfg.patch_size,
                                          cfg.vision_hidden, cfg.vision_layers,
                                          num_heads=max(1, cfg.vision_hidden // 32))
        # Dedicated action tokens after the text vocabulary: the LM's table grows by n_bins.
        text_encoder_id = None
        if cfg.pretrained_text:
            from perception.text_encoder import encoder_id

            text_encoder_id = encoder_id().to_dict()  # the installed package, or a one-line error
        lm_arch = None
        if cfg.pretrained_lm:  # instructions arrive as MiniLM states; the base under LoRA
            text_tok = None
            lm, lm_arch = _pretrained_lm(cfg)
        elif cfg.lm_path:
            text_tok = PretrainedTokenizer.load(cfg.lm_path)
            lm = build_lm(text_tok.vocab_size + cfg.n_bins, pretrained=cfg.lm_path)
            cfg.lm_family = lm.config.model_type
        elif cfg.pretrained_text:  # instructions arrive as encoder states: only action tokens
            text_tok = None
            lm = build_lm(cfg.n_bins,
                          tiny=TinyLM(cfg.lm_family, cfg.lm_hidden, cfg.lm_layers, cfg.lm_heads))
        else:
            text_tok = instruction_tokenizer(instructions, cfg.text_vocab_size)
            lm = build_lm(text_tok.vocab_size + cfg.n_bins,
                          tiny=TinyLM(cfg.lm_family, cfg.lm_hidden, cfg.lm_layers, cfg.lm_heads))
        if state_stats is None:
            cfg.use_state = False
        model = cls(cfg, vision, lm, text_tok, ActionTokenizer(action_stats, cfg.n_bins, gripper_dim),
                    state_stats, text_encoder_id, lm_arch=lm_arch)
        model.set_trainable()
        return model

    # --- inputs ---------------------------------------------------------------------------------
    def embed_prefix(self, images: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                     state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` [B, C, 3, S, S] in [0,1]; ``text`` [B, L] token ids, or ``[B, L, 384]``
        pretrained token states (``text_encoder="minilm"``; see ``encode_text``), and
        ``text_mask`` [B, L], left-padded."""
        return self._prefix(images, text, text_mask, state)[:2]

    def _text_condition(self, tokens: torch.Tensor, text: torch.Tensor,
                        text_mask: torch.Tensor) -> torch.Tensor:
        """One vector per instruction for FiLM and the aux head: the attention pooling of the
        pretrained states, or the mean of the learned token embeddings (the shipped behaviour)."""
        if self.text_pool is not None:
            return self.text_pool(text.to(tokens.dtype), text_mask)
        weights = text_mask.to(tokens.dtype).unsqueeze(-1)
        return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # mean over real tokens

    def _prefix(self, images: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                state: torch.Tensor | None, want_cond: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``embed_prefix`` plus the instruction's condition vector (None unless FiLM reads it or
        ``want_cond``: the aux head's, in training)."""
        b, n_cam = images.shape[:2]
        if self.text_proj is not None:
            tokens = self.text_proj(text.to(self.projector[0].weight.dtype))
        else:
            tokens = self.lm.get_input_embeddings()(text)
        needs_cond = self.film is not None or want_cond
        text_cond = self._text_condition(tokens, text, text_mask) if needs_cond else None
        modulate = None
        if self.film is not None:
            cond = text_cond.repeat_interleave(n_cam, dim=0)  # one row per (sample, camera) image
            film = self.film

            def modulate(i: int, x: torch.Tensor) -> torch.Tensor:
                scale, shift = film[i](cond).to(x.dtype).chunk(2, dim=-1)
                return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        feats = self.vision(images.flatten(0, 1), modulate)  # [B*C, N, Dv]
        patches = self.projector(feats).view(b, n_cam, feats.shape[1], -1) + self.camera_embed
        parts = [tokens, patches.flatten(1, 2)]
        masks = [text_mask, text_mask.new_ones(b, n_cam * feats.shape[1])]
        if self.state_proj is not None:
            parts.append(self.state_proj(state).unsqueeze(1))
            masks.append(text_mask.new_ones(b, 1))
        embeds = torch.cat(parts, dim=1)
        return embeds, torch.cat(masks, dim=1), text_cond

    def _run_lm(self, embeds: torch.Tensor, mask: torch.Tensor, past: Any = None,
                position_ids: torch.Tensor | None = None, use_cache: bool = False) -> Any:
        if position_ids is None:
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if self.cfg.pretrained_lm:
            # The decoder alone: the base's 49k-word output layer is never read (the action bins
            # have their own head), so it is not computed, nor exported.
            base = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
            return base.get_decoder()(inputs_embeds=embeds, attention_mask=mask,
                                      position_ids=position_ids, use_cache=use_cache,
                                      output_hidden_states=True, **{cache_kwarg(): past})
        # logits_to_keep=1: we read hidden states and apply our own action-only head, so the LM
        # need not project every position onto its whole vocabulary.
        return self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids,
                       use_cache=use_cache, output_hidden_states=True, logits_to_keep=1,
                       **{cache_kwarg(): past})

    def _action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the ``n_bins`` action tokens only, from final hidden states."""
        if self.action_out is not None:
            return self.action_out(hidden)
        head = self.lm.get_output_embeddings()
        weight = head.weight[self.action_offset:self.action_offset + self.cfg.n_bins]
        bias = getattr(head, "bias", None)
        bias = bias[self.action_offset:self.action_offset + self.cfg.n_bins] if bias is not None else None
        return F.linear(hidden, weight, bias)

    def _embed_actions(self, bins: torch.Tensor) -> torch.Tensor:
        """Input embeddings of action bins (autoregressive decoding's previous tokens)."""
        if self.action_embed is not None:
            return self.action_embed(bins)
        return self.lm.get_input_embeddings()(bins + self.action_offset)

    def action_inputs(self, b: int, dtype: torch.dtype, committed_bins: torch.Tensor | None = None,
                      committed_len: torch.Tensor | None = None) -> torch.Tensor:
        """The LM inputs of parallel decoding's 7K action positions ``[B, 7K, H]``: the learned
        placeholders, plus, at the first ``committed_len[b]`` actions of row b, the embedding of
        the action already committed there (``committed_bins`` [B, 7K], read where committed).

        Real-time chunking for a parallel decoder: the robot keeps playing while the model
        thinks, so the first actions of the new chunk are decided before it is predicted. Given
        them, the model predicts the rest as their continuation (the LM is causal: later
        positions read the earlier ones), so the new chunk joins what was played without a jump,
        by construction rather than by blending afterwards. Trained with random prefix lengths
        (``committed_steps``); with none committed the inputs are the placeholders alone.
        """
        queries = self.action_queries.unsqueeze(0).expand(b, -1, -1).to(dtype)
        if committed_len is None or committed_bins is None:
            return queries
        m = queries.shape[1]
        positions = torch.arange(m, device=queries.device).unsqueeze(0)
        known = (positions < committed_len.to(queries.device).unsqueeze(1) * self.cfg.action_dim)
        given = self._embed_actions(committed_bins.clamp(0, self.cfg.n_bins - 1)).to(dtype)
        return queries + given * known.unsqueeze(-1).to(dtype)

    # --- training -------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                state: torch.Tensor | None, target_bins: torch.Tensor,
                target_norm: torch.Tensor | None = None,
                aux_target: torch.Tensor | None = None,
                committed_len: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss and predictions for ``target_bins`` [B, 7K] (and normalised targets for l1).

        ``committed_len`` [B] (parallel decoding): the first that many actions of each target are
        given as committed (``action_inputs``) and left out of the loss and accuracy.

        ``text`` is what ``embed_prefix`` reads (ids, or pretrained token states).
        ``aux_target`` [B, 6] (see :func:`policy.data.target_features`) adds the auxiliary
        grounding loss, weighted by ``cfg.aux_target_weight``, when the model has its head.
        """
        aux_reads_text = (self.aux_head is not None and aux_target is not None
                          and self.cfg.pretrained_text)
        prefix, mask, text_cond = self._prefix(images, text, text_mask, state, aux_reads_text)
        b, p = mask.shape
        m = self.cfg.num_action_tokens
        if self.cfg.decoding == "parallel":
            action_in = self.action_inputs(b, prefix.dtype, target_bins, committed_len)
        else:
            action_in = self._embed_actions(target_bins)
        embeds = torch.cat([prefix, action_in], dim=1)
        full_mask = torch.cat([mask, mask.new_ones(b, m)], dim=1)
        hidden = self._run_lm(embeds, full_mask).hidden_states[-1]
        if self.cfg.decoding == "parallel":
            h = hidden[:, p:p + m]
        else:
            h = hidden[:, p - 1:p + m - 1]  # position t predicts token t + 1
        out: dict[str, torch.Tensor] = {}
        fresh = torch.ones_like(target_bins, dtype=torch.float32)  # positions the loss counts
        if committed_len is not None and self.cfg.decoding == "parallel":
            positions = torch.arange(m, device=target_bins.device).unsqueeze(0)
            fresh = (positions >= committed_len.to(target_bins.device).unsqueeze(1)
                     * self.cfg.action_dim).float()
        weight = fresh / fresh.sum().clamp(min=1.0)
        if self.l1_head is not None:
            pred = torch.tanh(self.l1_head(h).squeeze(-1))
            out["loss"] = (F.l1_loss(pred.float(), target_norm.float(), reduction="none") * weight).sum()
            bins = ((pred.detach() + 1) / (2 / self.cfg.n_bins)).floor().long()
            out["pred_bins"] = bins.clamp(0, self.cfg.n_bins - 1)
        else:
            logits = self._action_logits(h).float()
            ce = F.cross_entropy(logits.flatten(0, 1), target_bins.flatten(), reduction="none")
            out["loss"] = (ce.view_as(weight) * weight).sum()
            out["pred_bins"] = logits.argmax(-1)
        out["accuracy"] = ((out["pred_bins"] == target_bins).float() * weight).sum()
        if self.aux_head is not None and aux_target is not None:
            probe = hidden[:, p - 1]
            if self.cfg.pretrained_text:
                probe = torch.cat([probe, text_cond.to(probe.dtype)], dim=-1)
            aux = F.smooth_l1_loss(self.aux_head(probe).float(), aux_target.float(), beta=0.1)
            out["aux_loss"] = aux.detach()
            out["loss"] = out["loss"] + self.cfg.aux_target_weight * aux
        return out

    # --- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_parallel(self, prefix: torch.Tensor, mask: torch.Tensor,
                        n_tokens: int | None = None, committed_bins: torch.Tensor | None = None,
                        committed_len: torch.Tensor | None = None) -> torch.Tensor:
        """All 7K action bins in one forward pass -> [B, 7K] (int64) or normalised floats (l1).

        ``n_tokens`` < 7K reads only the first placeholders (a shorter chunk from the same pass).
        ``committed_bins`` / ``committed_len``: actions already committed (``action_inputs``).
        """
        h = self._parallel_hidden(prefix, mask, n_tokens, committed_bins, committed_len)
        if self.l1_head is not None:
            return torch.tanh(self.l1_head(h).squeeze(-1)).float()
        return self._action_logits(h).argmax(-1)

    @torch.no_grad()
    def parallel_logits(self, prefix: torch.Tensor, mask: torch.Tensor,
                        committed_bins: torch.Tensor | None = None,
                        committed_len: torch.Tensor | None = None) -> torch.Tensor:
        """The parallel decoder's logits over the bins, ``[B, 7K, n_bins]`` (the distribution
        ``decode_parallel`` takes the argmax of); a token head only."""
        if self.l1_head is not None or self.cfg.decoding != "parallel":
            raise PolicyError("only a parallel-decoding checkpoint with a token head has a distribution "
                              "over its action bins")
        return self._action_logits(self._parallel_hidden(prefix, mask, None, committed_bins, committed_len))

    def _parallel_hidden(self, prefix: torch.Tensor, mask: torch.Tensor, n_tokens: int | None,
                         committed_bins: torch.Tensor | None, committed_len: torch.Tensor | None
                         ) -> torch.Tensor:
        """Final hidden states at the action placeholders: the one forward pass of parallel decoding."""
        b, p = mask.shape
        m = n_tokens or self.cfg.num_action_tokens
        action_in = self.action_inputs(b, prefix.dtype, committed_bins, committed_len)[:, :m]
        embeds = torch.cat([prefix, action_in], dim=1)
        full_mask = torch.cat([mask, mask.new_ones(b, m)], dim=1)
        return self._run_lm(embeds, full_mask).hidden_states[-1][:, p:p + m]

    @torch.no_grad()
    def decode_autoregressive(self, prefix: torch.Tensor, mask: torch.Tensor, n_tokens: int,
                              use_cache: bool = True) -> torch.Tensor:
        """Greedy token-by-token decoding restricted to action tokens; KV cache by default."""
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self._run_lm(prefix, mask, position_ids=positions, use_cache=use_cache)
        bins = [self._action_logits(out.hidden_states[-1][:, -1]).argmax(-1)]
        past, embeds, cur_mask, cur_pos = cache_of(out), prefix, mask, positions
        for _ in range(n_tokens - 1):
            tok = self._embed_actions(bins[-1]).unsqueeze(1)
            cur_mask = torch.cat([cur_mask, cur_mask.new_ones(cur_mask.shape[0], 1)], dim=1)
            cur_pos = torch.cat([cur_pos, cur_pos[:, -1:] + 1], dim=1)
            if use_cache:
                out = self._run_lm(tok, cur_mask, past=past, position_ids=cur_pos[:, -1:],
                                   use_cache=True)
                past = cache_of(out)
            else:  # recompute the whole sequence: the baseline a KV cache removes
                embeds = torch.cat([embeds, tok], dim=1)
                out = self._run_lm(embeds, cur_mask, position_ids=cur_pos)
            bins.append(self._action_logits(out.hidden_states[-1][:, -1]).argmax(-1))
        return torch.stack(bins, dim=1)

    @torch.no_grad()
    def decode_hf_generate(self, prefix: torch.Tensor, mask: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Plain `transformers` ``generate`` (greedy), kept to action tokens: the bench baseline."""
        from transformers import LogitsProcessor, LogitsProcessorList

        if self.cfg.pretrained_lm:
            raise PolicyError(f"transformers generate cannot decode a --lm {self.cfg.lm} policy: its "
                              "action bins have their own head, outside the base's vocabulary")
        lo, hi = self.action_offset, self.action_offset + self.cfg.n_bins

        class _OnlyActions(LogitsProcessor):
            def __call__(self, input_ids, scores):
                scores[:, :lo] = -float("inf")
                scores[:, hi:] = -float("inf")
                return scores

        ids = self.lm.generate(inputs_embeds=prefix, attention_mask=mask, max_new_tokens=n_tokens,
                               min_new_tokens=n_tokens, do_sample=False, num_beams=1,
                               logits_processor=LogitsProcessorList([_OnlyActions()]),
                               pad_token_id=self.text_tokenizer.pad_id if self.text_tokenizer else 0)
        return (ids[:, -n_tokens:] - self.action_offset).clamp(0, self.cfg.n_bins - 1)

    def decode(self, prefix: torch.Tensor, mask: torch.Tensor, committed_bins: torch.Tensor | None = None,
               committed_len: torch.Tensor | None = None) -> np.ndarray:
        """The configured decoding -> continuous actions [B, K, 7] (un-normalised, float32)."""
        m = self.cfg.num_action_tokens
        if self.cfg.decoding == "parallel":
            out = self.decode_parallel(prefix, mask, committed_bins=committed_bins,
                                       committed_len=committed_len)
        else:
            out = self.decode_autoregressive(prefix, mask, m)
        shape = (out.shape[0], self.cfg.chunk, self.cfg.action_dim)
        if out.is_floating_point():  # l1 head: normalised values
            return self.action_tokenizer.unnormalize(out.cpu().numpy().reshape(shape))
        return self.action_tokenizer.from_bins(out.cpu().numpy().reshape(shape))

    # --- LoRA -----------------------------------------------------------------------------------
    def add_lora(self, rank: int = 32, alpha: int | None = None) -> None:
        """Wrap the LM's ``cfg.lora_targets`` (all linear layers by default) with LoRA adapters
        and freeze everything else (``--lora``: fine-tune a trained policy's LM only)."""
        if self.cfg.pretrained_lm:
            raise PolicyError(f"a --lm {self.cfg.lm} policy has its adapters already")
        alpha = alpha or rank
        self.cfg.lora_rank, self.cfg.lora_alpha = rank, alpha
        self.lm = add_lora_adapters(self.lm, LoRA(rank, alpha, target_modules=self.cfg.lora_target_modules))
        self.set_trainable()

    def set_trainable(self) -> None:
        """Which parameters train: on a pretrained base everything but its frozen weights (the
        adapters and all our own modules); under ``--lora`` the adapters only; else everything."""
        base = self._base_keys()
        for name, p in self.named_parameters():
            if self.cfg.pretrained_lm:
                p.requires_grad = name not in base
            else:
                p.requires_grad = "lora_" in name if self.cfg.lora_rank else True

    def _base_keys(self) -> set[str]:
        """``state_dict`` keys an adapter-only checkpoint leaves out: the pretrained base's own
        weights (loading rebuilds them from the base); none for the tiny LM or ``lm_path``."""
        if not self.cfg.pretrained_lm:
            return set()
        return {f"lm.{k}" for k in self.lm.state_dict() if "lora_" not in k}

    def merge_lora(self) -> None:
        """Fold adapters into the base weights for inference speed (irreversible). A pretrained
        base's policy then runs as before but can no longer be saved adapter-only."""
        if self.cfg.lora_rank and hasattr(self.lm, "merge_and_unload"):
            self.lm = merge_lora_adapters(self.lm)
            if not self.cfg.pretrained_lm:
                self.cfg.lora_rank = 0

    # --- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict[str, Any] | None = None,
                        write_extra: Callable[[Path], None] | None = None,
                        bundle_text_encoder: bool = False) -> Path:
        """Write weights, config, tokenizer and statistics to a temp dir, then rename into place
        (``common.atomic.atomic_dir``).

        ``extra`` adds keys to config.json; ``write_extra(tmp_dir)`` adds files (optimizer state)
        before the rename, so they are part of the same all-or-nothing commit. A pretrained text
        encoder is referenced by its id in config.json; ``bundle_text_encoder`` also copies its
        files into ``text_encoder/`` (91 MB), for a directory that loads without the package.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        skip = self._base_keys()
        if self.cfg.pretrained_lm and not hasattr(self.lm, "get_base_model"):
            raise PolicyError(f"this --lm {self.cfg.lm} policy's adapters are merged into its base "
                              "(Policy.from_pretrained merges them for speed), so it cannot be saved "
                              "adapter-only; save a VLAModel.from_pretrained(dir) instead")
        with atomic_dir(directory) as tmp:
            config = {"vla": self.cfg.to_dict(), "vision": self.vision.config_dict(),
                      "lm": lm_config_dict(self.lm), "action_offset": self.action_offset,
                      "format": "embodied-vla/1", **(extra or {})}
            if self.cfg.pretrained_text:
                config["text_encoder"] = dict(self.text_encoder_id)
            if self.cfg.pretrained_lm:
                config["pretrained_lm"] = self.lm_arch
            if self.dataset_features:
                config["dataset"] = self.dataset_features
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
            stats = {"action": self.action_tokenizer.to_dict(), "state": self.state_stats}
            (tmp / "stats.json").write_text(json.dumps(stats, indent=2))
            if self.text_tokenizer is not None:
                self.text_tokenizer.save(tmp / "tokenizer")
            if bundle_text_encoder:
                self.bundle_text_encoder(tmp)
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()
                     if k not in skip}
            save_file(_untie(state), str(tmp / "model.safetensors"))
            if write_extra is not None:
                write_extra(tmp)
        return directory

    def bundle_text_encoder(self, directory: str | Path) -> None:
        """Copy this model's pretrained text encoder into ``directory/text_encoder``."""
        from perception.text_encoder import bundle

        if not self.cfg.pretrained_text:
            raise PolicyError("--bundle-text-encoder: this policy has no pretrained text encoder "
                              "(train with --text-encoder minilm)")
        bundle(Path(directory) / TEXT_ENCODER_DIR, source=self.text_encoder_dir)

    @classmethod
    def from_pretrained(cls, directory: str | Path, merge_lora: bool = False) -> "VLAModel":
        """Rebuild the architecture from config.json and load the safetensors weights."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not directory.is_dir():
            raise PolicyError(f"checkpoint directory {directory} does not exist")
        missing = [f for f in CHECKPOINT_FILES if not (directory / f).exists()]
        if missing:
            raise PolicyError(f"checkpoint {directory} is missing {', '.join(missing)}")
        try:
            config = json.loads((directory / "config.json").read_text())
            stats = json.loads((directory / "stats.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"checkpoint {directory} has a corrupt config/stats: {exc}") from exc
        # Untrusted files: every field, statistic and size is checked, and the architecture is
        # matched against the weights' header on the meta device, before anything is allocated.
        cfg = check_config(config, directory)
        check_stats(stats, cfg, directory)
        features = check_dataset_features(config, cfg, directory)
        # A pretrained text encoder is checked against the installed one (or the bundled copy)
        # now, before any weights are read: a mismatch is one line naming both.
        encoder_dir = check_text_encoder(config, directory) if cfg.pretrained_text else None
        if cfg.pretrained_lm:  # the same for the pretrained base: the installed one, or one line
            _check_lm_base(config, cfg, directory)
        text_tok = None
        if (directory / "tokenizer").exists():
            text_tok = load_tokenizer(directory / "tokenizer")
        elif not cfg.pretrained_text or cfg.lm_path:
            raise PolicyError(f"checkpoint {directory} is missing tokenizer")
        weights_path = directory / "model.safetensors"
        shapes = read_weight_shapes(weights_path)
        with torch.device("meta"):
            skeleton = cls._assemble(dataclasses.replace(cfg), config, stats, text_tok, directory,
                                     encoder_dir, skeleton=True)
        state = skeleton.state_dict()
        base_keys = skeleton._base_keys()  # an adapter-only checkpoint has none of them
        check_weights(state, shapes, weights_path,
                      {k for k in state if _is_tied(skeleton, k)} | base_keys)
        del skeleton, state
        model = cls._assemble(cfg, config, stats, text_tok, directory, encoder_dir)
        try:
            weights = load_file(str(weights_path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types
            raise PolicyError(f"cannot read {weights_path}: {exc}") from exc
        result = model.load_state_dict(weights, strict=False)
        bad = [k for k in result.missing_keys if not _is_tied(model, k) and k not in base_keys]
        if bad or result.unexpected_keys:
            raise PolicyError(f"checkpoint {directory} does not match its config: missing "
                              f"{bad[:3]}, unexpected {result.unexpected_keys[:3]}")
        model.dataset_features = features
        if merge_lora:
            model.merge_lora()
        return model.eval()

    @classmethod
    def _assemble(cls, cfg: VLAConfig, config: dict, stats: dict, text_tok: Tokenizer | None,
                  directory: Path, encoder_dir: Path | None = None,
                  skeleton: bool = False) -> "VLAModel":
        """The architecture of a checked config (on the current default device), adapters added.
        A pretrained base is rebuilt from its cache, or, for the ``skeleton`` the weights' header
        is checked against (on the meta device), from its saved architecture: same names, shapes."""
        where = directory / "config.json"
        try:
            vision = VisionEncoder.from_config_dict(config["vision"])
        except Exception as exc:  # noqa: BLE001 - any failure here means an unusable config
            raise PolicyError(f"{where}: field 'vision' cannot be built: {_first_line(exc)}") from None
        arch = config.get("pretrained_lm") if cfg.pretrained_lm else None
        try:
            if arch is not None and not skeleton:
                from perception.lm import build_adapted

                lm = build_adapted(arch, check=False)  # checked already (_check_lm_base)
            elif arch is not None:
                from perception.lm import arch_lora

                lm = build_lm(config=config["lm"], lora=arch_lora(arch))
            else:
                lm = build_lm(config=config["lm"])
        except PerceptionError as exc:
            raise PolicyError(f"{where}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. an unknown model_type
            raise PolicyError(f"{where}: field 'lm' cannot be built: {_first_line(exc)}") from None
        model = cls(cfg, vision, lm, text_tok, ActionTokenizer.from_dict(stats["action"]),
                    stats.get("state"), config.get("text_encoder"), encoder_dir, lm_arch=arch)
        if cfg.lora_rank and not cfg.pretrained_lm:
            model.add_lora(cfg.lora_rank, cfg.lora_alpha)
        model.set_trainable()
        return model


def _pretrained_lm(cfg: VLAConfig) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh pretrained base under LoRA (``perception.pretrained_lm``: found, checked, cut to
    ``cfg.lm_layers`` when set) and its record; ``cfg`` gets the sizes it ended up with."""
    from perception.lm import adapter_arch, build_adapted

    rank = cfg.lora_rank or PRETRAINED_LORA_RANK
    lora = LoRA(rank, cfg.lora_alpha, target_modules=cfg.lora_target_modules)
    try:
        arch = adapter_arch(cfg.pretrained_lm, cfg.lm_layers or None, lora)
        lm = build_adapted(arch, check=False)
    except PerceptionError as exc:
        raise PolicyError(str(exc)) from None
    except ValueError as exc:  # peft: a target module the base does not have
        raise PolicyError(f"--lora-targets {cfg.lora_targets}: {_first_line(exc)}") from None
    base = lm.config
    cfg.lora_rank = rank
    cfg.lm_family, cfg.lm_hidden = base.model_type, base.hidden_size
    cfg.lm_layers, cfg.lm_heads = base.num_hidden_layers, base.num_attention_heads
    return lm, arch


def _check_lm_base(config: dict, cfg: VLAConfig, directory: Path) -> None:
    """The checkpoint's pretrained base against the installed one: a one-line PolicyError naming
    both (or the pip line) unless they are the same weights."""
    from perception.pretrained_lm import base_id

    where = directory / "config.json"
    arch = config.get("pretrained_lm")
    saved = arch.get("base") if isinstance(arch, dict) else None
    if not isinstance(saved, dict) or saved.get("name") != cfg.pretrained_lm:
        raise PolicyError(f"{where}: field 'pretrained_lm' must name its base {cfg.pretrained_lm!r} "
                          f"(package, version, sha256), got {arch!r}"[:300])
    try:
        base_id(cfg.pretrained_lm).check(saved, f"checkpoint {directory}")
    except PerceptionError as exc:
        raise PolicyError(str(exc)) from None


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line (transformers lists every model type it knows)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line[:limit]}{'...' if len(line) > limit else ''}"


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage; clone tensors that alias an earlier one."""
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.data_ptr()
        out[k] = v.clone() if ptr in seen and v.numel() else v
        seen.add(ptr)
    return out


def _is_tied(model: nn.Module, key: str) -> bool:
    return key.endswith("lm_head.weight") and getattr(model.lm.config, "tie_word_embeddings", False)
