"""HiLight-style VideoLM: frame encoder -> TokenMining -> MLP projector -> causal LM.

Each frame is encoded alone into patch tokens; TokenMining's learned queries cross-attend to that
one frame's patches and return ``tokens_per_frame`` tokens (so a frame's tokens never depend on
another frame); a 2-layer MLP maps them into the LM's embedding space. The prompt interleaves, per
frame, a time marker, the frame's tokens and optional text (MiniGPT4-video style), then the
question; the answer is decoded greedily with a KV cache.

Prompt layout (specials from :data:`video_qa.processor_videolm.SPECIALS`)::

    <bos> { <time> "1.3s" <frame>*K [<text> "event"] <sep> }*T  question <sep>  answer <eos>

Training packs several questions about the same frames into one sequence (as LLaVA trains on
multi-turn conversations per image): ``<bos> {frames} q1 <sep> a1 <eos> q2 <sep> a2 <eos> ...``,
where a block attention mask lets each turn see the frames and itself only, and every turn's
positions start right after the frames, so each turn is exactly the single-question prompt the
model answers at inference, and no question can read another's answer.

The loss covers the answer and ``<eos>`` only.

The LM (``perception.lm``): the tiny Llama trained here in full, or a pretrained base (``--lm
smollm2`` or ``--lm-path``) under LoRA with its own tokenizer, whose new prompt-special rows train
beside the adapters. A pretrained base's checkpoint is adapter-only: ``model.safetensors`` holds
every tensor but the base LM's frozen weights, and ``config.json`` names the base
(``perception.pretrained_lm.BaseId``), which loading rebuilds (from the cache), checks and wraps
again before the saved tensors go in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.atomic import atomic_dir
from perception.image import preprocess_images
from perception.errors import PerceptionError
from perception.lm import (LoRA, TinyLM, add_lora, base_weight_names, build_lm, cache_kwarg, cache_of,
                           lm_config_dict)
from perception.text import FILE_NAME as TOKENIZER_NAME, Tokenizer, load_tokenizer, truncate_utf8
from video_qa.configuration_videolm import TINY_LM_LAYERS, VideoLMConfig
from video_qa.errors import VideoQAError
from video_qa.labels import AUX_LABELS, CELL_CLASSES, SPATIAL_LABELS
from video_qa.modeling_pooling import MeanPooling, TokenMining
from video_qa.processor_videolm import QUESTION_SPECIAL, new_specials, tokenizer_for

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _build_vision(cfg: VideoLMConfig, vision_state: dict[str, Any] | None):
    from perception.encoders import VisionEncoder, build_vision_encoder, load_vision_encoder

    if vision_state is not None:
        return VisionEncoder.from_config_dict(vision_state)
    if cfg.vision_path:
        return load_vision_encoder(cfg.vision_path)
    return build_vision_encoder(cfg.vision_family, image_size=cfg.image_size,
                                patch_size=cfg.patch_size, hidden_size=cfg.vision_hidden,
                                num_layers=cfg.vision_layers, num_heads=cfg.vision_heads)


def _build_lm(cfg: VideoLMConfig, tokenizer: Tokenizer, lm_state: dict[str, Any] | None
              ) -> tuple[nn.Module, dict[str, Any]]:
    """(LM, the architecture to save), all through ``perception.lm``: a pretrained base under LoRA
    (new, from ``cfg``; or saved, ``lm_state["base"]``, rebuilt and checked), a tiny Llama from
    ``cfg`` (trained fully), or a saved full architecture (``lm_state["config"]``: the tiny LM, or
    a pretrained one saved whole before checkpoints became adapter-only)."""
    if lm_state is not None and "base" in lm_state:
        return _pretrained_lm(lm_state), lm_state
    if lm_state is not None:
        lm = build_lm(config=lm_state["config"])
        if lm_state["lora"]:  # that older layout: attention adapters, our vocabulary trained in full
            lm = add_lora(lm, LoRA(cfg.lora_rank, cfg.lora_alpha, target_modules=cfg.lora_target_modules,
                                   modules_to_save=("embed_tokens", "lm_head")))
        return lm, lm_state
    source = cfg.pretrained_lm
    if source:
        from perception.lm import adapter_arch

        own = new_specials(tokenizer)  # its own vocabulary: only our new rows train
        # a vocabulary of ours: its embeddings and output head learn in full
        lora = LoRA(cfg.lora_rank, cfg.lora_alpha, target_modules=cfg.lora_target_modules,
                    modules_to_save=() if own else ("embed_tokens", "lm_head"), trainable_tokens=tuple(own))
        try:
            arch = adapter_arch(source, cfg.lm_layers, lora, tokenizer.vocab_size)
        except PerceptionError as exc:
            raise VideoQAError(str(exc)) from None
        return _pretrained_lm(arch, check=False), arch
    lm = build_lm(tokenizer.vocab_size, tiny=TinyLM("llama", cfg.lm_hidden, cfg.lm_layers or TINY_LM_LAYERS,
                                                    cfg.lm_heads, cfg.lm_intermediate, cfg.max_positions))
    return lm, {"config": lm_config_dict(lm), "lora": False}


def _pretrained_lm(arch: dict[str, Any], check: bool = True) -> nn.Module:
    """The adapted base ``arch`` names (``perception.lm.build_adapted``: cut to its saved depth,
    grown to its vocabulary, wrapped with its LoRA; with ``check``, refused in one line unless the
    installed base is the one it names)."""
    from perception.lm import build_adapted

    try:
        return build_adapted(arch, check)
    except PerceptionError as exc:
        raise VideoQAError(str(exc)) from None


def balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE averaged over the positive cells and over the negative ones separately, then summed:
    a thing fills one or two of the 512 cells of 8 frames, and a plain mean would teach only
    "nothing is anywhere"."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pos = target > 0.5
    loss = bce[~pos].mean() if (~pos).any() else logits.sum() * 0
    return loss + (bce[pos].mean() if pos.any() else 0)


def turn_mask(turns: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` turn ids -> ``[B, 1, L, L]`` boolean attention mask: causal, and a token of
    turn k >= 1 sees the shared frames (turn 0) and its own turn only; padding (-1) is seen by
    nobody but itself (a row that sees nothing would turn the softmax into NaN)."""
    length = turns.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=turns.device).tril()
    q, k = turns[:, :, None], turns[:, None, :]
    allowed = causal & ((k == 0) | (k == q)) & (k >= 0)
    allowed |= torch.eye(length, dtype=torch.bool, device=turns.device)
    return allowed[:, None]


class VideoLM(nn.Module):
    """The whole model. ``forward`` gives the training loss; ``generate`` answers greedily."""

    def __init__(self, cfg: VideoLMConfig, tokenizer: Tokenizer | None = None,
                 _arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer or tokenizer_for(cfg)
        arch = _arch or {}
        self.vision = _build_vision(cfg, arch.get("vision"))
        self.lm, self._lm_arch = _build_lm(cfg, self.tokenizer, arch.get("lm"))
        dv = self.vision.out_dim
        dl = self.lm.config.hidden_size
        if cfg.pooling == "mining":
            self.pool: nn.Module = TokenMining(dv, cfg.tokens_per_frame, cfg.mining_heads,
                                               cfg.mining_iters)
        else:
            self.pool = MeanPooling(cfg.tokens_per_frame)
        self.projector = nn.Sequential(nn.Linear(dv, dl), nn.GELU(), nn.Linear(dl, dl))
        if cfg.grounding:
            from video_qa.modeling_grounding import QuestionGrounding

            heads = next(h for h in (4, 2, 1) if dl % h == 0)
            std = float(getattr(self.lm.config, "initializer_range", 0.02))
            self.grounding = QuestionGrounding(dl, dv, cfg.num_frames, heads, embedding_std=std,
                                               relate=cfg.grounding_relate, compare=cfg.grounding_compare)
        self.text_encoder_id: dict[str, str] | None = None
        if cfg.pretrained_text:
            from perception.text_encoder import DIM, encoder_id

            saved = arch.get("text_encoder")
            try:
                ident = encoder_id()  # the installed package, or a one-line error
                if saved is not None:
                    ident.check(saved, "this video-QA checkpoint")
            except PerceptionError as exc:
                raise VideoQAError(str(exc)) from None
            self.text_encoder_id = ident.to_dict()
            # The frozen encoder's token states -> LM space; its states are unnormalised BERT
            # outputs, so a LayerNorm first puts every question on the same scale.
            self.question_proj = nn.Sequential(nn.LayerNorm(DIM), nn.Linear(DIM, dl), nn.GELU(),
                                               nn.Linear(dl, dl))
        if cfg.aux_frame_weight > 0:
            self.aux_head = nn.Linear(dl, len(AUX_LABELS))
        if cfg.aux_spatial_weight > 0:
            self.spatial_head = nn.Linear(dl, len(SPATIAL_LABELS))
        if cfg.freeze_vision:
            self.vision.requires_grad_(False)
            self.vision.eval()

    def train(self, mode: bool = True) -> "VideoLM":
        """A frozen encoder stays in eval mode: its normalisation layers (BatchNorm in a ResNet)
        must use their learned statistics, as when its features were cached."""
        super().train(mode)
        if self.cfg.freeze_vision:
            self.vision.eval()
        return self

    # ------------------------------------------------------------------ visual tokens
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def preprocess(self, frames: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 ``[..., H, W, 3]`` (or a list of frames) -> float ``[..., 3, S, S]`` in [0, 1] at
        the encoder's size, on the model's device (``perception.image``, as every encoder)."""
        return preprocess_images(frames, self.vision.image_size, self.device)

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        """``[F, 3, S, S]`` -> patch features ``[F, N, D_v]`` (no graph when the encoder is frozen)."""
        if self.cfg.freeze_vision:
            with torch.no_grad():
                return self.vision(images)
        return self.vision(images)

    def frame_tokens(self, images: torch.Tensor | None = None,
                     patches: torch.Tensor | None = None) -> torch.Tensor:
        """``[F, 3, S, S]`` frames (or their cached patches) -> ``[F, K, D_lm]`` LM-space tokens,
        each frame on its own."""
        if patches is None:
            patches = self.patches(images)
        return self.projector(self.pool(patches))

    # ------------------------------------------------------------------ prompts
    def prefix_ids(self, times: Sequence[float], texts: Sequence[str] | None = None) -> list[int]:
        """``<bos>`` and the frame blocks: what every question about these frames shares."""
        tok, k = self.tokenizer, self.cfg.tokens_per_frame
        time_id, frame_id, text_id, sep_id = (tok.token_id(s)
                                              for s in ("<time>", "<frame>", "<text>", "<sep>"))
        ids = [tok.bos_id]
        for i, t in enumerate(times):
            ids += [time_id] + tok.encode(f"{float(t):.1f}s") + [frame_id] * k
            if texts is not None and texts[i]:
                text, _ = truncate_utf8(texts[i], self.cfg.max_frame_text_bytes)
                ids += [text_id] + tok.encode(text)
            ids.append(sep_id)
        return ids

    def _name_ends(self, question: str, ids: list[int], refs: Sequence[tuple[str, int]]
                   ) -> list[tuple[int, int]]:
        """(index in ``ids``, cell class) of the token that ends each named thing of ``refs``.
        The question's first tokens up to a name's end must encode as a prefix of the whole
        question (true at word boundaries for bytes and for BPE); a name cut off by truncation, or
        a class the cells do not have, is skipped."""
        out = []
        if self.cfg.pretrained_text:  # the encoder token whose span ends where the name ends
            q, _ = truncate_utf8(question, self.cfg.max_question_bytes)
            spans = self.text_encoder.token_spans(q)
            for thing, end in refs:
                at = [i for i, (a, b) in enumerate(spans) if b == end and b > a]
                if thing in CELL_CLASSES and at:
                    out.append((at[-1], CELL_CLASSES.index(thing)))
            return out
        for thing, end in refs:
            if thing not in CELL_CLASSES:
                continue
            head = self.tokenizer.encode(truncate_utf8(question[:end], self.cfg.max_question_bytes)[0])
            if head and len(head) < len(ids) and ids[:len(head)] == head:
                out.append((len(head) - 1, CELL_CLASSES.index(thing)))
        return out

    def question_ids(self, question: str) -> list[int]:
        q, _ = truncate_utf8(question, self.cfg.max_question_bytes)
        sep = self.tokenizer.token_id("<sep>")
        if self.cfg.pretrained_text:  # one slot per encoder token, filled by question_states
            return [self.tokenizer.token_id(QUESTION_SPECIAL)] * len(self.text_encoder.token_spans(q)) + [sep]
        return self.tokenizer.encode(q) + [sep]

    @property
    def text_encoder(self) -> Any:
        """The process-wide frozen ``perception.text_encoder.TextEncoder`` (never a submodule: a
        checkpoint names it instead of copying it)."""
        from perception.text_encoder import shared_text_encoder

        return shared_text_encoder()

    def question_states(self, question: str) -> torch.Tensor:
        """``[n, 384]`` encoder states of the (truncated) question, one per ``<q>`` slot; each
        distinct question is encoded once per process (the encoder's cache)."""
        q, _ = truncate_utf8(question, self.cfg.max_question_bytes)
        return self.text_encoder.encode([q]).states[0].float()

    def prompt_ids(self, times: Sequence[float], question: str,
                   texts: Sequence[str] | None = None) -> list[int]:
        return self.prefix_ids(times, texts) + self.question_ids(question)

    def _ground(self, emb: torch.Tensor, question: torch.Tensor | None, turns: torch.Tensor | None,
                question_pos: torch.Tensor | None, patches: torch.Tensor, want_scores: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        grounding = getattr(self, "grounding", None)
        if grounding is None:
            return emb, None
        if question is None or turns is None or question_pos is None:
            raise VideoQAError("a grounding model needs the question mask, turns and positions "
                               "(VideoLM.collate makes them)")
        if want_scores:
            return grounding(emb, question, turns, question_pos, patches.to(emb.dtype), return_scores=True)
        return grounding(emb, question, turns, question_pos, patches.to(emb.dtype)), None

    def _embed(self, ids: torch.Tensor, vis: torch.Tensor,
               question_states: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with every ``<frame>`` slot replaced by the next visual token, and
        every ``<q>`` slot by the next projected question state (pretrained text encoder)."""
        emb = self.lm.get_input_embeddings()(ids)
        mask = ids == self.tokenizer.token_id("<frame>")
        if int(mask.sum()) != vis.shape[0] * vis.shape[1]:
            raise VideoQAError("number of <frame> slots does not match the visual tokens")
        emb = emb.masked_scatter(mask.unsqueeze(-1), vis.reshape(-1, vis.shape[-1]).to(emb.dtype))
        if not self.cfg.pretrained_text:
            return emb
        slots = ids == self.tokenizer.token_id(QUESTION_SPECIAL)
        n = int(slots.sum())
        if question_states is None or question_states.shape[0] != n:
            raise VideoQAError(f"{n} question slots but "
                               f"{0 if question_states is None else question_states.shape[0]} question "
                               "states (VideoLM.collate makes them)")
        q = self.question_proj(question_states.to(emb.device, torch.float32)).to(emb.dtype)
        return emb.masked_scatter(slots.unsqueeze(-1), q)

    # ------------------------------------------------------------------ training
    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor,
                images: torch.Tensor | None = None, patches: torch.Tensor | None = None,
                frame_labels: torch.Tensor | None = None, frame_mask: torch.Tensor | None = None,
                **layout: torch.Tensor) -> torch.Tensor:
        """The training loss. ``images`` ``[B, T, 3, S, S]`` or cached ``patches``
        ``[B, T, N, D]``; ids/labels/mask ``[B, L]`` (labels are -100 off the answers);
        ``frame_labels``/``frame_mask`` ``[B, T, A]`` add the per-frame auxiliary loss when the
        model has its head; ``layout`` is the rest of what :meth:`collate` makes (positions,
        turns, question marks)."""
        ground_at, ground_target = layout.pop("ground_at", None), layout.pop("ground_target", None)
        ground_off = layout.pop("ground_off", None)
        emb, mask, vis, scores = self._inputs(input_ids, attention_mask, images, patches,
                                              want_scores=ground_at is not None, **layout)
        loss = torch.zeros((), device=emb.device)
        if scores is not None and self.cfg.grounding_weight > 0:
            picked = scores[ground_at[:, 0], ground_at[:, 1]]  # [M, T * N]
            loss = loss + self.cfg.grounding_weight * balanced_bce(picked, ground_target)
            if ground_off is not None and len(ground_off):  # the other question tokens: nothing
                off = scores[ground_off[:, 0], ground_off[:, 1]]
                loss = loss + self.cfg.grounding_weight * F.binary_cross_entropy_with_logits(
                    off, torch.zeros_like(off))
        if frame_labels is not None:
            per_frame = vis.mean(2)
            n = len(AUX_LABELS)  # facts first, then where things are (video_qa.labels.frame_labels)
            for head, weight, cols in ((getattr(self, "aux_head", None), self.cfg.aux_frame_weight,
                                        slice(0, n)),
                                       (getattr(self, "spatial_head", None),
                                        self.cfg.aux_spatial_weight, slice(n, None))):
                if head is None:
                    continue
                bce = F.binary_cross_entropy_with_logits(head(per_frame), frame_labels[..., cols],
                                                         reduction="none")
                m = frame_mask[..., cols]
                loss = loss + weight * (bce * m).sum() / m.sum().clamp(min=1.0)
        out = self.lm(inputs_embeds=emb, attention_mask=mask,
                      position_ids=layout.get("position_ids"), labels=labels)
        return out.loss + loss

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               images: torch.Tensor | None = None, patches: torch.Tensor | None = None,
               **layout: torch.Tensor) -> torch.Tensor:
        """``[B, L, vocab]`` next-token logits for a :meth:`collate` batch (labels ignored)."""
        layout = {k: v for k, v in layout.items()
                  if k not in ("labels", "frame_labels", "frame_mask", "ground_at", "ground_target",
                               "ground_off")}
        emb, mask, _, _ = self._inputs(input_ids, attention_mask, images, patches, **layout)
        return self.lm(inputs_embeds=emb, attention_mask=mask,
                       position_ids=layout.get("position_ids")).logits

    def _inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                images: torch.Tensor | None, patches: torch.Tensor | None,
                position_ids: torch.Tensor | None = None, turns: torch.Tensor | None = None,
                question: torch.Tensor | None = None, question_pos: torch.Tensor | None = None,
                question_turns: torch.Tensor | None = None, want_scores: bool = False,
                question_states: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(input embeddings, LM attention mask, visual tokens ``[B, T, K, D]``, the grounding's
        question-to-cell score logits ``[B, L, T*N]`` if wanted and present): frame tokens in
        their ``<frame>`` slots, questions grounded, and the block mask when several questions
        share a sequence (``turns``: 0 the frames, k >= 1 the k-th question, -1 padding)."""
        if patches is None:
            patches = self.patches(images.flatten(0, 1)).unflatten(0, images.shape[:2])
        b, t = patches.shape[:2]
        vis = self.frame_tokens(patches=patches.flatten(0, 1)).unflatten(0, (b, t))
        emb = self._embed(input_ids, vis.flatten(1, 2), question_states)
        emb, scores = self._ground(emb, question, turns if turns is not None else question_turns,
                                   question_pos, patches, want_scores)
        mask = attention_mask if turns is None else turn_mask(turns)
        return emb, mask, vis, scores

    def collate(self, examples: Sequence[dict[str, Any]], device: torch.device | None = None
                ) -> dict[str, torch.Tensor]:
        """Right-padded training tensors for ``examples`` (``video_qa.processor_videolm.collate``)."""
        from video_qa.processor_videolm import collate

        return collate(self, examples, device)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, frames: Sequence[np.ndarray] | np.ndarray | torch.Tensor | None,
                 times: Sequence[Sequence[float]], questions: Sequence[str],
                 texts: Sequence[Sequence[str] | None] | None = None,
                 max_new_tokens: int | None = None, patches: torch.Tensor | None = None) -> list[str]:
        """Greedy answers for a batch: ``frames`` uint8 ``[B, T, H, W, 3]`` or a list of
        ``[T, H, W, 3]`` clips of any size (or a preprocessed tensor), or instead the frozen
        encoder's cached ``patches`` ``[B, T, N, D]`` (``frames=None``).

        Prompts are left-padded so every row's next token sits in the last column; the KV cache
        makes each new token one short forward pass.
        """
        was_training = self.training
        self.eval()
        tok = self.tokenizer
        if patches is not None:
            patches = patches.to(self.device)
        else:
            images = frames if isinstance(frames, torch.Tensor) else \
                torch.stack([self.preprocess(f) for f in frames])  # clips may differ in size
            patches = self.patches(images.flatten(0, 1)).unflatten(0, images.shape[:2])
        b, t = patches.shape[:2]
        vis = self.frame_tokens(patches=patches.flatten(0, 1))
        vis = vis.reshape(b, t * self.cfg.tokens_per_frame, -1)
        texts = texts or [None] * b
        prompts = [self.prompt_ids(times[i], questions[i], texts[i]) for i in range(b)]
        width = max(len(p) for p in prompts)
        ids = torch.full((b, width), tok.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros((b, width), dtype=torch.long, device=self.device)
        question = torch.zeros((b, width), dtype=torch.bool, device=self.device)
        question_pos = torch.zeros((b, width), dtype=torch.long, device=self.device)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, device=self.device)
            mask[i, width - len(p):] = 1
            n_q = len(self.question_ids(questions[i]))
            question[i, width - n_q:] = True
            question_pos[i, width - n_q:] = torch.arange(n_q, device=self.device)
        turns = torch.where(question, 1, torch.where(mask.bool(), 0, -1))
        states = (torch.cat([self.question_states(q) for q in questions])
                  if self.cfg.pretrained_text else None)
        emb, _ = self._ground(self._embed(ids, vis, states), question, turns, question_pos, patches)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        out = self.lm(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=True)
        past = cache_of(out)
        nxt = out.logits[:, -1].argmax(-1)
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        generated: list[list[int]] = [[] for _ in range(b)]
        steps = max_new_tokens or self.cfg.max_answer_bytes + 1
        for _ in range(steps):
            done |= nxt == tok.eos_id
            for i in range(b):
                if not done[i]:
                    generated[i].append(int(nxt[i]))
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype, device=mask.device)], 1)
            pos = pos[:, -1:] + 1
            out = self.lm(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                          use_cache=True, **{cache_kwarg(): past})
            past = cache_of(out)
            nxt = out.logits[:, -1].argmax(-1)
        self.train(was_training)
        return [tok.decode(g).strip() for g in generated]

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        """config.json + model.safetensors + the tokenizer (``perception.text``'s files), built in a
        temporary directory that replaces ``directory`` whole once complete (removed on failure),
        so a crash never leaves a half-written checkpoint under the final name. With a pretrained
        base the weights file leaves the base's frozen weights out (:meth:`_base_keys`)."""
        from safetensors.torch import save_file, save_model

        meta = {"video_lm": self.cfg.to_dict(), "vision": self.vision.config_dict(),
                "lm": self._lm_arch}
        if self.text_encoder_id:  # named, not copied: checked against the installed one at load
            meta["text_encoder"] = self.text_encoder_id
        with atomic_dir(directory) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
            skip = self._base_keys()
            if skip:  # clones: a tied output head shares its trainable rows with the input embedding
                save_file({k: v.detach().clone().contiguous() for k, v in self.state_dict().items()
                           if k not in skip}, str(tmp / WEIGHTS_NAME))
            else:
                save_model(self, str(tmp / WEIGHTS_NAME))
            self.tokenizer.save(tmp)
        return Path(directory)

    def _base_keys(self) -> set[str]:
        """``state_dict`` keys an adapter-only checkpoint leaves out: the pretrained base's frozen
        weights, which loading rebuilds from the base itself (none for the tiny LM, and none for
        the older full layout)."""
        if "base" not in self._lm_arch:
            return set()
        return {f"lm.{k}" for k in base_weight_names(self.lm)}

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> "VideoLM":
        from safetensors.torch import load_file, load_model

        directory = Path(directory)
        if not directory.is_dir():
            raise VideoQAError(f"checkpoint directory {directory} does not exist")
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME, TOKENIZER_NAME)
                   if not (directory / n).is_file()]
        if missing:
            raise VideoQAError(f"checkpoint {directory} is missing {', '.join(missing)}")
        meta = json.loads((directory / CONFIG_NAME).read_text())
        cfg = VideoLMConfig.from_dict(meta["video_lm"])
        model = cls(cfg, load_tokenizer(directory), _arch={"vision": meta["vision"], "lm": meta["lm"],
                                                              "text_encoder": meta.get("text_encoder")})
        try:
            if model._base_keys():
                state = load_file(str(directory / WEIGHTS_NAME), device=map_location)
                absent, unexpected = model.load_state_dict(state, strict=False)
                absent = sorted(set(absent) - model._base_keys())
                if absent or unexpected:
                    raise RuntimeError("Error(s) in loading state_dict:\n"
                                       f"missing {absent[:3]}, unexpected {sorted(unexpected)[:3]}")
            else:
                load_model(model, str(directory / WEIGHTS_NAME), device=map_location)
        except RuntimeError as exc:  # the weights name other parameters than this code builds
            first = str(exc).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
            raise VideoQAError(f"checkpoint {directory} does not match this version of VideoLM "
                               f"({detail[:200]}); retrain it with `embodied train-qa`") from None
        model.eval()
        return model
