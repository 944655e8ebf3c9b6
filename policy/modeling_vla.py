"""The VLA model: vision encoder -> 2-layer MLP projector -> causal LM -> action tokens.

Sequence layout (left padding keeps every row's action positions aligned at the end):

    [PAD..] [BOS instruction tokens] [patches cam 1] [patches cam 2] [state] [action positions x 7K]

Autoregressive mode feeds the previous action token at each action position (teacher forcing) and
reads the next one from the position before it, as OpenVLA. Parallel mode (OpenVLA-OFT) feeds a
learned placeholder embedding at every action position and reads all 7K tokens from one forward
pass; with ``action_head="l1"`` a linear head regresses the normalised value instead of a bin.

Action tokens are dedicated ids appended after the text vocabulary: id = offset + bin.
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
from perception.lm import LoRA, TinyLM, build_lm, cache_kwarg, cache_of, lm_config_dict
from perception.lm import add_lora as add_lora_adapters, merge_lora as merge_lora_adapters
from perception.text import PretrainedTokenizer, Tokenizer, load_tokenizer, train_bpe
from policy.action_tokenizer import ActionTokenizer
from policy.checkpoint_check import check_config, check_stats, check_weights, read_weight_shapes
from policy.configuration_vla import VLAConfig
from policy.errors import PolicyError

AUX_TARGET_DIM = 6
CHECKPOINT_FILES = ("config.json", "model.safetensors", "stats.json", "tokenizer")
# The instruction tokenizer's specials, ids 0-3. A character-level BPE (not byte-level): the
# instructions are a small closed corpus (the shipped checkpoint's vocabulary is 94 ids), and this
# is what the shipped checkpoint was trained with, so `embodied train` still reproduces it.
INSTRUCTION_SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")


def instruction_tokenizer(instructions: list[str], vocab_size: int) -> Tokenizer:
    """BPE fitted on the instructions, lower-cased first, so "Pick up the RED cube." and "pick up
    the red cube" agree; an unseen character becomes [UNK]."""
    return train_bpe(instructions, vocab_size, INSTRUCTION_SPECIALS, byte_level=False,
                     lowercase=True, unk="[UNK]")


class VLAModel(nn.Module):
    """The network plus what it needs to speak actions: tokenizers and statistics ride along."""

    def __init__(self, cfg: VLAConfig, vision: VisionEncoder, lm: nn.Module, text_tokenizer:
                 Tokenizer, action_tokenizer: ActionTokenizer,
                 state_stats: dict[str, list[float]] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = vision
        self.lm = lm
        self.text_tokenizer = text_tokenizer
        self.action_tokenizer = action_tokenizer
        self.state_stats = state_stats
        hidden = lm.config.hidden_size
        self.action_offset = text_tokenizer.vocab_size
        self.projector = nn.Sequential(nn.Linear(vision.out_dim, hidden), nn.GELU(),
                                       nn.Linear(hidden, hidden))
        self.camera_embed = nn.Parameter(torch.zeros(len(cfg.camera_list), 1, hidden))
        self.state_proj = nn.Linear(cfg.state_dim, hidden) if cfg.use_state and cfg.state_dim else None
        # One learned placeholder per action position: the queries parallel decoding reads from.
        self.action_queries = nn.Parameter(torch.randn(cfg.num_action_tokens, hidden) * 0.02)
        self.l1_head = nn.Linear(hidden, 1) if cfg.action_head == "l1" else None
        # Training-only probe: target position (world and gripper-relative, 6 numbers) read from the
        # state token, which has attended to every image patch and the instruction.
        self.aux_head = nn.Linear(hidden, AUX_TARGET_DIM) if cfg.aux_target_weight > 0 else None
        self.film: nn.ModuleList | None = None
        if cfg.film:
            self.add_film()

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
        gens = nn.ModuleList(nn.Linear(hidden, 2 * w) for w in widths)
        for g in gens:
            nn.init.zeros_(g.weight)
            nn.init.zeros_(g.bias)
        self.film = gens.to(device=self.projector[0].weight.device,
                            dtype=self.projector[0].weight.dtype)
        self.cfg.film = True

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: VLAConfig, action_stats: dict, instructions: list[str],
              state_stats: dict | None = None) -> "VLAModel":
        """A fresh model: tiny backbones from configs, or pretrained ones from ``*_path``."""
        if cfg.vision_path:
            vision = load_vision_encoder(cfg.vision_path)
            cfg.image_size = vision.image_size
            cfg.patch_size = vision.patch_size
        else:
            vision = build_vision_encoder(cfg.vision_family, cfg.image_size, cfg.patch_size,
                                          cfg.vision_hidden, cfg.vision_layers,
                                          num_heads=max(1, cfg.vision_hidden // 32))
        # Dedicated action tokens after the text vocabulary: the LM's table grows by n_bins.
        if cfg.lm_path:
            text_tok = PretrainedTokenizer.load(cfg.lm_path)
            lm = build_lm(text_tok.vocab_size + cfg.n_bins, pretrained=cfg.lm_path)
            cfg.lm_family = lm.config.model_type
        else:
            text_tok = instruction_tokenizer(instructions, cfg.text_vocab_size)
            lm = build_lm(text_tok.vocab_size + cfg.n_bins,
                          tiny=TinyLM(cfg.lm_family, cfg.lm_hidden, cfg.lm_layers, cfg.lm_heads))
        if state_stats is None:
            cfg.use_state = False
        return cls(cfg, vision, lm, text_tok, ActionTokenizer(action_stats, cfg.n_bins),
                   state_stats)

    # --- inputs ---------------------------------------------------------------------------------
    def embed_prefix(self, images: torch.Tensor, text_ids: torch.Tensor, text_mask: torch.Tensor,
                     state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` [B, C, 3, S, S] in [0,1]; ``text_ids``/``text_mask`` [B, L] left-padded."""
        b, n_cam = images.shape[:2]
        text = self.lm.get_input_embeddings()(text_ids)
        modulate = None
        if self.film is not None:
            weights = text_mask.to(text.dtype).unsqueeze(-1)
            cond = (text * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # mean over real tokens
            cond = cond.repeat_interleave(n_cam, dim=0)  # one row per (sample, camera) image
            film = self.film

            def modulate(i: int, x: torch.Tensor) -> torch.Tensor:
                scale, shift = film[i](cond).to(x.dtype).chunk(2, dim=-1)
                return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        feats = self.vision(images.flatten(0, 1), modulate)  # [B*C, N, Dv]
        patches = self.projector(feats).view(b, n_cam, feats.shape[1], -1) + self.camera_embed
        parts = [text, patches.flatten(1, 2)]
        masks = [text_mask, text_mask.new_ones(b, n_cam * feats.shape[1])]
        if self.state_proj is not None:
            parts.append(self.state_proj(state).unsqueeze(1))
            masks.append(text_mask.new_ones(b, 1))
        embeds = torch.cat(parts, dim=1)
        return embeds, torch.cat(masks, dim=1)

    def _run_lm(self, embeds: torch.Tensor, mask: torch.Tensor, past: Any = None,
                position_ids: torch.Tensor | None = None, use_cache: bool = False) -> Any:
        if position_ids is None:
            position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        # logits_to_keep=1: we read hidden states and apply our own action-only head, so the LM
        # need not project every position onto its whole vocabulary.
        return self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids,
                       use_cache=use_cache, output_hidden_states=True, logits_to_keep=1,
                       **{cache_kwarg(): past})

    def _action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the ``n_bins`` action tokens only, from final hidden states."""
        head = self.lm.get_output_embeddings()
        weight = head.weight[self.action_offset:self.action_offset + self.cfg.n_bins]
        bias = getattr(head, "bias", None)
        bias = bias[self.action_offset:self.action_offset + self.cfg.n_bins] if bias is not None else None
        return F.linear(hidden, weight, bias)

    # --- training -------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, text_ids: torch.Tensor, text_mask: torch.Tensor,
                state: torch.Tensor | None, target_bins: torch.Tensor,
                target_norm: torch.Tensor | None = None,
                aux_target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss and predictions for ``target_bins`` [B, 7K] (and normalised targets for l1).

        ``aux_target`` [B, 6] (see :func:`policy.data.target_features`) adds the auxiliary
        grounding loss, weighted by ``cfg.aux_target_weight``, when the model has its head.
        """
        prefix, mask = self.embed_prefix(images, text_ids, text_mask, state)
        b, p = mask.shape
        m = self.cfg.num_action_tokens
        if self.cfg.decoding == "parallel":
            action_in = self.action_queries.unsqueeze(0).expand(b, -1, -1).to(prefix.dtype)
        else:
            action_in = self.lm.get_input_embeddings()(target_bins + self.action_offset)
        embeds = torch.cat([prefix, action_in], dim=1)
        full_mask = torch.cat([mask, mask.new_ones(b, m)], dim=1)
        hidden = self._run_lm(embeds, full_mask).hidden_states[-1]
        if self.cfg.decoding == "parallel":
            h = hidden[:, p:p + m]
        else:
            h = hidden[:, p - 1:p + m - 1]  # position t predicts token t + 1
        out: dict[str, torch.Tensor] = {}
        if self.l1_head is not None:
            pred = torch.tanh(self.l1_head(h).squeeze(-1))
            out["loss"] = F.l1_loss(pred.float(), target_norm.float())
            bins = ((pred.detach() + 1) / (2 / self.cfg.n_bins)).floor().long()
            out["pred_bins"] = bins.clamp(0, self.cfg.n_bins - 1)
        else:
            logits = self._action_logits(h).float()
            out["loss"] = F.cross_entropy(logits.flatten(0, 1), target_bins.flatten())
            out["pred_bins"] = logits.argmax(-1)
        out["accuracy"] = (out["pred_bins"] == target_bins).float().mean()
        if self.aux_head is not None and aux_target is not None:
            aux = F.smooth_l1_loss(self.aux_head(hidden[:, p - 1]).float(), aux_target.float(),
                                   beta=0.1)
            out["aux_loss"] = aux.detach()
            out["loss"] = out["loss"] + self.cfg.aux_target_weight * aux
        return out

    # --- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_parallel(self, prefix: torch.Tensor, mask: torch.Tensor,
                        n_tokens: int | None = None) -> torch.Tensor:
        """All 7K action bins in one forward pass -> [B, 7K] (int64) or normalised floats (l1).

        ``n_tokens`` < 7K reads only the first placeholders (a shorter chunk from the same pass).
        """
        b, p = mask.shape
        m = n_tokens or self.cfg.num_action_tokens
        embeds = torch.cat([prefix, self.action_queries[:m].unsqueeze(0).expand(b, -1, -1)
                            .to(prefix.dtype)], dim=1)
        full_mask = torch.cat([mask, mask.new_ones(b, m)], dim=1)
        h = self._run_lm(embeds, full_mask).hidden_states[-1][:, p:p + m]
        if self.l1_head is not None:
            return torch.tanh(self.l1_head(h).squeeze(-1)).float()
        return self._action_logits(h).argmax(-1)

    @torch.no_grad()
    def decode_autoregressive(self, prefix: torch.Tensor, mask: torch.Tensor, n_tokens: int,
                              use_cache: bool = True) -> torch.Tensor:
        """Greedy token-by-token decoding restricted to action tokens; KV cache by default."""
        embed = self.lm.get_input_embeddings()
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self._run_lm(prefix, mask, position_ids=positions, use_cache=use_cache)
        bins = [self._action_logits(out.hidden_states[-1][:, -1]).argmax(-1)]
        past, embeds, cur_mask, cur_pos = cache_of(out), prefix, mask, positions
        for _ in range(n_tokens - 1):
            tok = embed(bins[-1] + self.action_offset).unsqueeze(1)
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

        lo, hi = self.action_offset, self.action_offset + self.cfg.n_bins

        class _OnlyActions(LogitsProcessor):
            def __call__(self, input_ids, scores):
                scores[:, :lo] = -float("inf")
                scores[:, hi:] = -float("inf")
                return scores

        ids = self.lm.generate(inputs_embeds=prefix, attention_mask=mask, max_new_tokens=n_tokens,
                               min_new_tokens=n_tokens, do_sample=False, num_beams=1,
                               logits_processor=LogitsProcessorList([_OnlyActions()]),
                               pad_token_id=self.text_tokenizer.pad_id)
        return (ids[:, -n_tokens:] - self.action_offset).clamp(0, self.cfg.n_bins - 1)

    def decode(self, prefix: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        """The configured decoding -> continuous actions [B, K, 7] (un-normalised, float32)."""
        m = self.cfg.num_action_tokens
        if self.cfg.decoding == "parallel":
            out = self.decode_parallel(prefix, mask)
        else:
            out = self.decode_autoregressive(prefix, mask, m)
        shape = (out.shape[0], self.cfg.chunk, self.cfg.action_dim)
        if out.is_floating_point():  # l1 head: normalised values
            return self.action_tokenizer.unnormalize(out.cpu().numpy().reshape(shape))
        return self.action_tokenizer.from_bins(out.cpu().numpy().reshape(shape))

    # --- LoRA -----------------------------------------------------------------------------------
    def add_lora(self, rank: int = 32, alpha: int | None = None) -> None:
        """Wrap the LM's linear layers with LoRA adapters and freeze everything else."""
        alpha = alpha or rank
        self.cfg.lora_rank, self.cfg.lora_alpha = rank, alpha
        self.lm = add_lora_adapters(self.lm, LoRA(rank, alpha, target_modules="all-linear"))
        for name, p in self.named_parameters():
            p.requires_grad = "lora_" in name

    def merge_lora(self) -> None:
        """Fold adapters into the base weights for inference speed (irreversible)."""
        if self.cfg.lora_rank:
            self.lm = merge_lora_adapters(self.lm)
            self.cfg.lora_rank = 0

    # --- checkpoints ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict[str, Any] | None = None,
                        write_extra: Callable[[Path], None] | None = None) -> Path:
        """Write weights, config, tokenizer and statistics to a temp dir, then rename into place
        (``common.atomic.atomic_dir``).

        ``extra`` adds keys to config.json; ``write_extra(tmp_dir)`` adds files (optimizer state)
        before the rename, so they are part of the same all-or-nothing commit.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            config = {"vla": self.cfg.to_dict(), "vision": self.vision.config_dict(),
                      "lm": lm_config_dict(self.lm), "action_offset": self.action_offset,
                      "format": "embodied-vla/1", **(extra or {})}
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
            stats = {"action": self.action_tokenizer.to_dict(), "state": self.state_stats}
            (tmp / "stats.json").write_text(json.dumps(stats, indent=2))
            self.text_tokenizer.save(tmp / "tokenizer")
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(_untie(state), str(tmp / "model.safetensors"))
            if write_extra is not None:
                write_extra(tmp)
        return directory

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
        text_tok = load_tokenizer(directory / "tokenizer")
        weights_path = directory / "model.safetensors"
        shapes = read_weight_shapes(weights_path)
        with torch.device("meta"):
            skeleton = cls._assemble(dataclasses.replace(cfg), config, stats, text_tok, directory)
        state = skeleton.state_dict()
        check_weights(state, shapes, weights_path, {k for k in state if _is_tied(skeleton, k)})
        del skeleton, state
        model = cls._assemble(cfg, config, stats, text_tok, directory)
        try:
            weights = load_file(str(weights_path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types
            raise PolicyError(f"cannot read {weights_path}: {exc}") from exc
        result = model.load_state_dict(weights, strict=False)
        bad = [k for k in result.missing_keys if not _is_tied(model, k)]
        if bad or result.unexpected_keys:
            raise PolicyError(f"checkpoint {directory} does not match its config: missing "
                              f"{bad[:3]}, unexpected {result.unexpected_keys[:3]}")
        if merge_lora:
            model.merge_lora()
        return model.eval()

    @classmethod
    def _assemble(cls, cfg: VLAConfig, config: dict, stats: dict, text_tok: Tokenizer,
                  directory: Path) -> "VLAModel":
        """The architecture of a checked config (on the current default device), adapters added."""
        where = directory / "config.json"
        try:
            vision = VisionEncoder.from_config_dict(config["vision"])
        except Exception as exc:  # noqa: BLE001 - any failure here means an unusable config
            raise PolicyError(f"{where}: field 'vision' cannot be built: {_first_line(exc)}") from None
        try:
            lm = build_lm(config=config["lm"])
        except Exception as exc:  # noqa: BLE001 - e.g. an unknown model_type
            raise PolicyError(f"{where}: field 'lm' cannot be built: {_first_line(exc)}") from None
        model = cls(cfg, vision, lm, text_tok, ActionTokenizer.from_dict(stats["action"]),
                    stats.get("state"))
        if cfg.lora_rank:
            model.add_lora(cfg.lora_rank, cfg.lora_alpha)
        return model


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
