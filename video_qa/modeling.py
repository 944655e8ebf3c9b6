"""HiLight-style VideoLM: frame encoder -> TokenMining -> MLP projector -> causal LM.

Each frame is encoded alone into patch tokens; TokenMining's learned queries cross-attend to that
one frame's patches and return ``tokens_per_frame`` tokens (so a frame's tokens never depend on
another frame); a 2-layer MLP maps them into the LM's embedding space. The prompt interleaves, per
frame, a time marker, the frame's tokens and optional text (MiniGPT4-video style), then the
question; the answer is decoded greedily with a KV cache.

Prompt layout (ids from :class:`~video_qa.tokenizer.ByteTokenizer`)::

    <bos> { <time> "1.3s" <frame>*K [<text> "event"] <sep> }*T  question <sep>  answer <eos>

Training packs several questions about the same frames into one sequence (as LLaVA trains on
multi-turn conversations per image): ``<bos> {frames} q1 <sep> a1 <eos> q2 <sep> a2 <eos> ...``,
where a block attention mask lets each turn see the frames and itself only, and every turn's
positions start right after the frames, so each turn is exactly the single-question prompt the
model answers at inference, and no question can read another's answer.

The loss covers the answer and ``<eos>`` only.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perception.lm_cache import cache_kwarg, cache_of
from video_qa.configuration import VideoLMConfig
from video_qa.errors import VideoQAError
from video_qa.tokenizer import BPETokenizer, ByteTokenizer, Tokenizer, load_tokenizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class TokenMining(nn.Module):
    """Learned queries cross-attending to ONE frame's patch tokens: ``[F, N, D] -> [F, K, D]``.

    Frames are the batch dimension of the attention, so a frame's tokens are a function of its own
    patches only; that is what lets long streams be encoded frame by frame and cached.

    ``iters`` = 0: one cross-attention, each query on its own (softmax over the patches). With
    ``iters`` >= 1 the queries compete for patches as in Slot Attention (softmax over the
    queries, then a weighted mean over the patches, refined ``iters`` times with a GRU): each
    token tends to take one object, keeping its identity and position together. Independent
    queries blend several objects into one token, and the LM can no longer tell which thing is
    where (measured with ground-truth facts as patches: yes/no 0.49 against 0.74 for one token
    per object; video_qa/README.md).
    """

    def __init__(self, dim: int, num_tokens: int, heads: int, iters: int = 0) -> None:
        super().__init__()
        self.iters = iters
        self.queries = nn.Parameter(torch.randn(num_tokens, dim) * dim ** -0.5)
        self.norm_kv = nn.LayerNorm(dim)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        if iters:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_k = nn.Linear(dim, dim, bias=False)
            self.to_v = nn.Linear(dim, dim, bias=False)
            self.gru = nn.GRUCell(dim, dim)
        else:
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(patches)
        if not self.iters:
            q = self.norm_q(self.queries).unsqueeze(0).expand(patches.shape[0], -1, -1)
            x = self.queries + self.attn(q, kv, kv, need_weights=False)[0]
            return x + self.mlp(self.norm_mlp(x))
        f, _, d = patches.shape
        k, v = self.to_k(kv), self.to_v(kv)
        slots = self.queries.unsqueeze(0).expand(f, -1, -1)
        for _ in range(self.iters):
            logits = self.to_q(self.norm_q(slots)) @ k.transpose(1, 2) * d ** -0.5  # [F, K, N]
            attn = logits.softmax(dim=1) + 1e-8  # queries compete for each patch
            attn = attn / attn.sum(dim=2, keepdim=True)  # then average the patches each one won
            updates = attn @ v
            slots = self.gru(updates.reshape(-1, d), slots.reshape(-1, d)).reshape(f, -1, d)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots


class MeanPooling(nn.Module):
    """Ablation baseline with the same budget: average the patch grid into ``K`` spatial cells."""

    def __init__(self, num_tokens: int) -> None:
        super().__init__()
        rows = max(d for d in range(1, int(math.isqrt(num_tokens)) + 1) if num_tokens % d == 0)
        self.grid_out = (rows, num_tokens // rows)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        f, n, d = patches.shape
        side = int(math.isqrt(n))
        grid = patches.transpose(1, 2).reshape(f, d, side, n // side)
        return F.adaptive_avg_pool2d(grid, self.grid_out).flatten(2).transpose(1, 2)


def _build_vision(cfg: VideoLMConfig, vision_state: dict[str, Any] | None):
    from perception.encoders import VisionEncoder, build_vision_encoder, load_vision_encoder

    if vision_state is not None:
        return VisionEncoder.from_config_dict(vision_state)
    if cfg.vision_path:
        return load_vision_encoder(cfg.vision_path)
    return build_vision_encoder(cfg.vision_family, image_size=cfg.image_size,
                                patch_size=cfg.patch_size, hidden_size=cfg.vision_hidden,
                                num_layers=cfg.vision_layers, num_heads=cfg.vision_heads)


def _build_lm(cfg: VideoLMConfig, vocab_size: int, lm_state: dict[str, Any] | None):
    """Tiny Llama from a config (trained fully), or a local pretrained LM wrapped with LoRA."""
    import transformers

    lora = False
    if lm_state is not None:  # rebuilding a saved model: architecture only, weights come after
        config = transformers.AutoConfig.for_model(**lm_state["config"])
        lm = transformers.AutoModelForCausalLM.from_config(config)
        lora = lm_state["lora"]
    elif cfg.lm_path:
        try:
            lm = transformers.AutoModelForCausalLM.from_pretrained(cfg.lm_path)
        except (OSError, ValueError) as exc:
            raise VideoQAError(f"cannot load language model from {cfg.lm_path}: {exc}") from exc
        lm.resize_token_embeddings(vocab_size)  # our byte vocabulary replaces the LM's own
        lora = True
    else:
        config = transformers.LlamaConfig(
            vocab_size=vocab_size, hidden_size=cfg.lm_hidden, intermediate_size=cfg.lm_intermediate,
            num_hidden_layers=cfg.lm_layers, num_attention_heads=cfg.lm_heads,
            num_key_value_heads=cfg.lm_heads, max_position_embeddings=cfg.max_positions,
            tie_word_embeddings=False)
        lm = transformers.LlamaForCausalLM(config)
    lm_config = {k: v for k, v in lm.config.to_dict().items() if k != "transformers_version"}
    if lora:
        from peft import LoraConfig, get_peft_model

        # New byte vocabulary: its embeddings and output head must train too, not only adapters.
        lm = get_peft_model(lm, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                           modules_to_save=["embed_tokens", "lm_head"]))
    return lm, {"config": lm_config, "lora": lora}


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


def default_tokenizer(cfg: VideoLMConfig) -> Tokenizer:
    """A new model's tokenizer: bytes, or BPE merges learned from the training templates."""
    if cfg.tokenizer == "byte":
        return ByteTokenizer()
    from video_qa.data import template_corpus

    return BPETokenizer.train(template_corpus(), cfg.bpe_vocab)


class VideoLM(nn.Module):
    """The whole model. ``forward`` gives the training loss; ``generate`` answers greedily."""

    def __init__(self, cfg: VideoLMConfig, tokenizer: Tokenizer | None = None,
                 _arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer or default_tokenizer(cfg)
        arch = _arch or {}
        self.vision = _build_vision(cfg, arch.get("vision"))
        self.lm, self._lm_arch = _build_lm(cfg, self.tokenizer.vocab_size, arch.get("lm"))
        dv = self.vision.out_dim
        dl = self.lm.get_input_embeddings().embedding_dim
        if cfg.pooling == "mining":
            self.pool: nn.Module = TokenMining(dv, cfg.tokens_per_frame, cfg.mining_heads,
                                               cfg.mining_iters)
        else:
            self.pool = MeanPooling(cfg.tokens_per_frame)
        self.projector = nn.Sequential(nn.Linear(dv, dl), nn.GELU(), nn.Linear(dl, dl))
        if cfg.grounding:
            from video_qa.grounding import QuestionGrounding

            heads = next(h for h in (4, 2, 1) if dl % h == 0)
            std = float(getattr(self.lm.config, "initializer_range", 0.02))
            self.grounding = QuestionGrounding(dl, dv, cfg.num_frames, heads, embedding_std=std,
                                               relate=cfg.grounding_relate, where=cfg.grounding_where,
                                               compare=cfg.grounding_compare)
        if cfg.aux_frame_weight > 0:
            from video_qa.data import AUX_LABELS

            self.aux_head = nn.Linear(dl, len(AUX_LABELS))
        if cfg.aux_spatial_weight > 0:
            from video_qa.data import SPATIAL_LABELS

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

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``[..., H, W, 3]`` -> float ``[..., 3, S, S]`` in [0, 1] at the encoder's size."""
        frames = np.asarray(frames)
        s = self.vision.image_size
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        if flat.shape[1:3] != (s, s):
            import cv2

            flat = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in flat])
        x = torch.from_numpy(np.ascontiguousarray(flat)).to(self.device).float().div_(255.0)
        return x.permute(0, 3, 1, 2).reshape(*lead, 3, s, s)

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
        ids = [tok.bos_id]
        for i, t in enumerate(times):
            ids += [tok.time_id] + tok.encode(f"{float(t):.1f}s") + [tok.frame_id] * k
            if texts is not None and texts[i]:
                text, _ = tok.truncate(texts[i], self.cfg.max_frame_text_bytes)
                ids += [tok.text_id] + tok.encode(text)
            ids.append(tok.sep_id)
        return ids

    def _name_ends(self, question: str, ids: list[int], refs: Sequence[tuple[str, int]]
                   ) -> list[tuple[int, int]]:
        """(index in ``ids``, cell class) of the token that ends each named thing of ``refs``.
        The question's first tokens up to a name's end must encode as a prefix of the whole
        question (true at word boundaries for bytes and for BPE); a name cut off by truncation, or
        a class the cells do not have, is skipped."""
        from video_qa.data import CELL_CLASSES

        out = []
        for thing, end in refs:
            if thing not in CELL_CLASSES:
                continue
            head = self.tokenizer.encode(self.tokenizer.truncate(question[:end],
                                                                 self.cfg.max_question_bytes)[0])
            if head and len(head) < len(ids) and ids[:len(head)] == head:
                out.append((len(head) - 1, CELL_CLASSES.index(thing)))
        return out

    def question_ids(self, question: str) -> list[int]:
        q, _ = self.tokenizer.truncate(question, self.cfg.max_question_bytes)
        return self.tokenizer.encode(q) + [self.tokenizer.sep_id]

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

    def _embed(self, ids: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """Token embeddings with every ``<frame>`` slot replaced by the next visual token."""
        emb = self.lm.get_input_embeddings()(ids)
        mask = ids == self.tokenizer.frame_id
        if int(mask.sum()) != vis.shape[0] * vis.shape[1]:
            raise VideoQAError("number of <frame> slots does not match the visual tokens")
        return emb.masked_scatter(mask.unsqueeze(-1), vis.reshape(-1, vis.shape[-1]).to(emb.dtype))

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
            from video_qa.data import AUX_LABELS

            per_frame = vis.mean(2)
            n = len(AUX_LABELS)  # facts first, then where things are (video_qa.data.frame_labels)
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
                question_turns: torch.Tensor | None = None, want_scores: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(input embeddings, LM attention mask, visual tokens ``[B, T, K, D]``, the grounding's
        question-to-cell score logits ``[B, L, T*N]`` if wanted and present): frame tokens in
        their ``<frame>`` slots, questions grounded, and the block mask when several questions
        share a sequence (``turns``: 0 the frames, k >= 1 the k-th question, -1 padding)."""
        if patches is None:
            patches = self.patches(images.flatten(0, 1)).unflatten(0, images.shape[:2])
        b, t = patches.shape[:2]
        vis = self.frame_tokens(patches=patches.flatten(0, 1)).unflatten(0, (b, t))
        emb = self._embed(input_ids, vis.flatten(1, 2))
        emb, scores = self._ground(emb, question, turns if turns is not None else question_turns,
                                   question_pos, patches, want_scores)
        mask = attention_mask if turns is None else turn_mask(turns)
        return emb, mask, vis, scores

    def collate(self, examples: Sequence[dict[str, Any]], device: torch.device | None = None
                ) -> dict[str, torch.Tensor]:
        """Examples with ``frames [T,H,W,3]`` (or cached ``patches [T,N,D]``), ``times`` and
        either ``question``/``answer`` or lists ``questions``/``answers`` (several turns about the
        same frames; ``texts`` optional) -> right-padded training tensors."""
        tok = self.tokenizer
        rows, labels, turns, positions, qmask, qpos = [], [], [], [], [], []
        ground_at: list[tuple[int, int]] = []  # (row, position) of a token that ends a name
        ground_target: list[np.ndarray] = []  # [T * N]: the cells where that thing is
        ground_off: list[tuple[int, int]] = []  # (row, position) of a question token naming nothing
        for row, ex in enumerate(examples):
            questions = ex["questions"] if "questions" in ex else [ex["question"]]
            answers = ex["answers"] if "answers" in ex else [ex["answer"]]
            refs = ex.get("refs", ())
            refs = refs if "questions" in ex else [refs]
            ids = self.prefix_ids(ex["times"], ex.get("texts"))
            n_prefix = len(ids)
            lab, turn, pos = [-100] * n_prefix, [0] * n_prefix, list(range(n_prefix))
            is_q, q_pos = [False] * n_prefix, [0] * n_prefix
            for k, (q, a) in enumerate(zip(questions, answers), start=1):
                ans, _ = tok.truncate(a, self.cfg.max_answer_bytes)
                qi, ai = self.question_ids(q), tok.encode(ans) + [tok.eos_id]
                if "cells" in ex and k - 1 < len(refs):
                    ends = self._name_ends(q, qi, refs[k - 1])
                    for at, cls in ends:
                        ground_at.append((row, len(ids) + at))
                        ground_target.append(np.asarray(ex["cells"])[:, :, cls].reshape(-1))
                    if self.cfg.grounding_compare:
                        named = {at for at, _ in ends}
                        ground_off += [(row, len(ids) + i) for i in range(len(qi)) if i not in named]
                ids += qi + ai
                lab += [-100] * len(qi) + ai
                turn += [k] * (len(qi) + len(ai))
                pos += range(n_prefix, n_prefix + len(qi) + len(ai))
                is_q += [True] * len(qi) + [False] * len(ai)
                q_pos += list(range(len(qi))) + [0] * len(ai)
            rows.append(ids)
            labels.append(lab)
            turns.append(turn)
            positions.append(pos)
            qmask.append(is_q)
            qpos.append(q_pos)
        width = max(len(r) for r in rows)
        ids_t = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
        lab_t = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        turn_t = torch.full((len(rows), width), -1, dtype=torch.long)
        pos_t = torch.zeros((len(rows), width), dtype=torch.long)
        q_t = torch.zeros((len(rows), width), dtype=torch.bool)
        qpos_t = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r)
            ids_t[i, :n] = torch.tensor(r)
            lab_t[i, :n] = torch.tensor(labels[i])
            mask[i, :n] = 1
            turn_t[i, :n] = torch.tensor(turns[i])
            pos_t[i, :n] = torch.tensor(positions[i])
            q_t[i, :n] = torch.tensor(qmask[i])
            qpos_t[i, :n] = torch.tensor(qpos[i])
        dev = device or self.device
        out = {"input_ids": ids_t.to(dev), "labels": lab_t.to(dev), "attention_mask": mask.to(dev),
               "position_ids": pos_t.to(dev), "question": q_t.to(dev), "question_pos": qpos_t.to(dev)}
        if any(len(ex.get("questions", ())) > 1 for ex in examples):
            out["turns"] = turn_t.to(dev)
        else:  # one question each: the plain causal mask; turns only tell the grounding apart
            out["question_turns"] = turn_t.to(dev)
        if ground_at and hasattr(self, "grounding"):
            out["ground_at"] = torch.tensor(ground_at, dtype=torch.long, device=dev)
            out["ground_target"] = torch.from_numpy(np.stack(ground_target).astype(np.float32)).to(dev)
            if ground_off:
                out["ground_off"] = torch.tensor(ground_off, dtype=torch.long, device=dev)
        if all("frame_labels" in ex for ex in examples):
            out["frame_labels"] = torch.stack([torch.as_tensor(ex["frame_labels"]) for ex in examples]).to(dev)
            out["frame_mask"] = torch.stack([torch.as_tensor(ex["frame_mask"]) for ex in examples]).to(dev)
        if all("patches" in ex for ex in examples):
            out["patches"] = torch.stack([torch.as_tensor(ex["patches"]) for ex in examples]).to(dev)
        else:
            out["images"] = torch.stack([self.preprocess(ex["frames"]) for ex in examples]).to(dev)
        return out

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
        emb, _ = self._ground(self._embed(ids, vis), question, turns, question_pos, patches)
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
        """config.json + model.safetensors + tokenizer.json, written to a temp dir then renamed,
        so a crash never leaves a half-written checkpoint under the final name."""
        from safetensors.torch import save_model

        final = Path(directory)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        meta = {"video_lm": self.cfg.to_dict(), "vision": self.vision.config_dict(),
                "lm": self._lm_arch}
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        save_model(self, str(tmp / WEIGHTS_NAME))
        self.tokenizer.save(tmp)
        if final.exists():
            old = final.with_name(final.name + f".old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
        return final

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> "VideoLM":
        from safetensors.torch import load_model

        directory = Path(directory)
        if not directory.is_dir():
            raise VideoQAError(f"checkpoint directory {directory} does not exist")
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME, "tokenizer.json")
                   if not (directory / n).is_file()]
        if missing:
            raise VideoQAError(f"checkpoint {directory} is missing {', '.join(missing)}")
        meta = json.loads((directory / CONFIG_NAME).read_text())
        cfg = VideoLMConfig.from_dict(meta["video_lm"])
        model = cls(cfg, load_tokenizer(directory), _arch={"vision": meta["vision"],
                                                              "lm": meta["lm"]})
        try:
            load_model(model, str(directory / WEIGHTS_NAME), device=map_location)
        except RuntimeError as exc:  # the weights name other parameters than this code builds
            first = str(exc).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
            raise VideoQAError(f"checkpoint {directory} does not match this version of VideoLM "
                               f"({detail[:200]}); retrain it with `embodied train-qa`") from None
        model.eval()
        return model
