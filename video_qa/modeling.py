"""HiLight-style VideoLM: frame encoder -> TokenMining -> MLP projector -> causal LM.

Each frame is encoded alone into patch tokens; TokenMining's learned queries cross-attend to that
one frame's patches and return ``tokens_per_frame`` tokens (so a frame's tokens never depend on
another frame); a 2-layer MLP maps them into the LM's embedding space. The prompt interleaves, per
frame, a time marker, the frame's tokens and optional text (MiniGPT4-video style), then the
question; the answer is decoded greedily with a KV cache.

Prompt layout (ids from :class:`~video_qa.tokenizer.ByteTokenizer`)::

    <bos> { <time> "1.3s" <frame>*K [<text> "event"] <sep> }*T  question <sep>  answer <eos>

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
from video_qa.tokenizer import ByteTokenizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class TokenMining(nn.Module):
    """Learned queries cross-attending to ONE frame's patch tokens: ``[F, N, D] -> [F, K, D]``.

    Frames are the batch dimension of the attention, so a frame's tokens are a function of its own
    patches only; that is what lets long streams be encoded frame by frame and cached.
    """

    def __init__(self, dim: int, num_tokens: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_tokens, dim) * dim ** -0.5)
        self.norm_kv = nn.LayerNorm(dim)
        self.norm_q = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(patches)
        q = self.norm_q(self.queries).unsqueeze(0).expand(patches.shape[0], -1, -1)
        x = self.queries + self.attn(q, kv, kv, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


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


class VideoLM(nn.Module):
    """The whole model. ``forward`` gives the training loss; ``generate`` answers greedily."""

    def __init__(self, cfg: VideoLMConfig, tokenizer: ByteTokenizer | None = None,
                 _arch: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer or ByteTokenizer()
        arch = _arch or {}
        self.vision = _build_vision(cfg, arch.get("vision"))
        self.lm, self._lm_arch = _build_lm(cfg, self.tokenizer.vocab_size, arch.get("lm"))
        dv = self.vision.out_dim
        dl = self.lm.get_input_embeddings().embedding_dim
        if cfg.pooling == "mining":
            self.pool: nn.Module = TokenMining(dv, cfg.tokens_per_frame, cfg.mining_heads)
        else:
            self.pool = MeanPooling(cfg.tokens_per_frame)
        self.projector = nn.Sequential(nn.Linear(dv, dl), nn.GELU(), nn.Linear(dl, dl))
        if cfg.aux_frame_weight > 0:
            from video_qa.data import AUX_LABELS

            self.aux_head = nn.Linear(dl, len(AUX_LABELS))
        if cfg.aux_spatial_weight > 0:
            from video_qa.data import SPATIAL_LABELS

            self.spatial_head = nn.Linear(dl, len(SPATIAL_LABELS))
        if cfg.freeze_vision:
            self.vision.requires_grad_(False)

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
    def prompt_ids(self, times: Sequence[float], question: str,
                   texts: Sequence[str] | None = None) -> list[int]:
        tok, k = self.tokenizer, self.cfg.tokens_per_frame
        ids = [tok.bos_id]
        for i, t in enumerate(times):
            ids += [tok.time_id] + tok.encode(f"{float(t):.1f}s") + [tok.frame_id] * k
            if texts is not None and texts[i]:
                text, _ = tok.truncate(texts[i], self.cfg.max_frame_text_bytes)
                ids += [tok.text_id] + tok.encode(text)
            ids.append(tok.sep_id)
        q, _ = tok.truncate(question, self.cfg.max_question_bytes)
        return ids + tok.encode(q) + [tok.sep_id]

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
                frame_labels: torch.Tensor | None = None, frame_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``images`` ``[B, T, 3, S, S]`` or cached ``patches`` ``[B, T, N, D]``; ids/labels/mask
        ``[B, L]`` (labels are -100 off the answer); ``frame_labels``/``frame_mask`` ``[B, T, A]``
        add the per-frame auxiliary loss when the model has its head."""
        x = images if patches is None else patches
        b, t = x.shape[:2]
        vis = (self.frame_tokens(images=images.flatten(0, 1)) if patches is None else
               self.frame_tokens(patches=patches.flatten(0, 1)))
        loss = torch.zeros((), device=vis.device)
        if frame_labels is not None:
            from video_qa.data import AUX_LABELS

            per_frame = vis.reshape(b, t, self.cfg.tokens_per_frame, -1).mean(2)
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
        vis = vis.reshape(b, t * self.cfg.tokens_per_frame, -1)
        emb = self._embed(input_ids, vis)
        out = self.lm(inputs_embeds=emb, attention_mask=attention_mask, labels=labels)
        return out.loss + loss

    def collate(self, examples: Sequence[dict[str, Any]], device: torch.device | None = None
                ) -> dict[str, torch.Tensor]:
        """Examples with ``frames [T,H,W,3]`` (or cached ``patches [T,N,D]``), ``times``,
        ``question``, ``answer`` (``texts`` optional) -> right-padded training tensors."""
        tok = self.tokenizer
        rows, labels = [], []
        for ex in examples:
            prompt = self.prompt_ids(ex["times"], ex["question"], ex.get("texts"))
            ans, _ = tok.truncate(ex["answer"], self.cfg.max_answer_bytes)
            answer = tok.encode(ans) + [tok.eos_id]
            rows.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
        lab = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r, l) in enumerate(zip(rows, labels)):
            ids[i, :len(r)] = torch.tensor(r)
            lab[i, :len(l)] = torch.tensor(l)
            mask[i, :len(r)] = 1
        dev = device or self.device
        out = {"input_ids": ids.to(dev), "labels": lab.to(dev), "attention_mask": mask.to(dev)}
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
    def generate(self, frames: Sequence[np.ndarray] | np.ndarray | torch.Tensor, times: Sequence[Sequence[float]],
                 questions: Sequence[str], texts: Sequence[Sequence[str] | None] | None = None,
                 max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers for a batch: ``frames`` uint8 ``[B, T, H, W, 3]`` or a list of
        ``[T, H, W, 3]`` clips of any size (or a preprocessed tensor).

        Prompts are left-padded so every row's next token sits in the last column; the KV cache
        makes each new token one short forward pass.
        """
        was_training = self.training
        self.eval()
        tok = self.tokenizer
        images = frames if isinstance(frames, torch.Tensor) else \
            torch.stack([self.preprocess(f) for f in frames])  # clips may differ in size
        b, t = images.shape[:2]
        vis = self.frame_tokens(images=images.flatten(0, 1)).reshape(b, t * self.cfg.tokens_per_frame, -1)
        texts = texts or [None] * b
        prompts = [self.prompt_ids(times[i], questions[i], texts[i]) for i in range(b)]
        width = max(len(p) for p in prompts)
        ids = torch.full((b, width), tok.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros((b, width), dtype=torch.long, device=self.device)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, device=self.device)
            mask[i, width - len(p):] = 1
        emb = self._embed(ids, vis)
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
        model = cls(cfg, ByteTokenizer.load(directory), _arch={"vision": meta["vision"],
                                                              "lm": meta["lm"]})
        load_model(model, str(directory / WEIGHTS_NAME), device=map_location)
        model.eval()
        return model
