"""VideoLM configuration: one typed dataclass, a reason beside every default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from video_qa.errors import VideoQAError

POOLINGS = ("mining", "mean")


@dataclass
class VideoLMConfig:
    # --- frame encoder (perception.encoders) ---
    vision_family: str = field(default="siglip", metadata={"help": "no CLS token to drop: every output token is a patch"})
    vision_path: str | None = field(default=None, metadata={"help": "local pretrained backbone dir(s); None = tiny, trained here"})
    image_size: int = field(default=64, metadata={"help": "billiards balls are ~2 px at 64 px wide; smaller loses them"})
    patch_size: int = field(default=8, metadata={"help": "8x8 = 64 patches per frame: TokenMining's keys"})
    # Frozen random default = the patch embedding only, at full patch width (8*8*3 = 192): a random
    # linear map keeps a 1-2 px ball's colour, which random transformer layers blurred (measured:
    # 0.575 vs 0.529 non-descriptive accuracy). With a pretrained or trained encoder use layers.
    vision_hidden: int = 192
    vision_layers: int = 0
    vision_heads: int = 4
    # Frozen by default: with no pretrained weights to download and a shared 2-core CPU, training
    # the ViT is the slowest part; a frozen (random or pretrained) encoder's patch tokens can be
    # computed once per clip and cached, and TokenMining + projector + LM learn on top of them.
    freeze_vision: bool = True
    # --- frame tokens ---
    pooling: str = field(default="mining", metadata={"help": "\"mining\" (TokenMining, learned queries) or \"mean\" (ablation baseline)"})
    tokens_per_frame: int = field(default=4, metadata={"help": "HiLight keeps a few tokens per frame; <= 32 by contract"})
    mining_heads: int = 4
    num_frames: int = field(default=8, metadata={"help": "frames per question; the sampler picks them from the clip"})
    # Weight of the per-frame auxiliary loss (video_qa.data.frame_labels) on each frame's tokens;
    # training only, 0 = off. The head is kept in the checkpoint so a saved model reloads as is.
    aux_frame_weight: float = field(default=0.0, metadata={"help": "weight of the per-frame visual-facts loss (training only; 0 = off)"})
    aux_spatial_weight: float = field(default=0.0, metadata={"help": "weight of a per-frame where-things-are loss (each tabletop object's image column, coarse; training only; 0 = off)"})
    # --- language model ---
    lm_path: str | None = field(default=None, metadata={"help": "local pretrained causal LM dir; None = tiny Llama, trained here"})
    lm_hidden: int = field(default=128, metadata={"help": "tiny default: a 2-core CPU trains it in ~10 minutes"})
    lm_layers: int = 2
    lm_heads: int = 4
    lm_intermediate: int = 256
    max_positions: int = field(default=1024, metadata={"help": "prompt (frames + text + question) + answer, in tokens"})
    lora_rank: int = field(default=8, metadata={"help": "used when lm_path is set (pretrained LMs are LoRA-tuned, tiny ones fully)"})
    lora_alpha: int = 16
    # --- text limits ---
    max_question_bytes: int = field(default=256, metadata={"help": "longer questions are truncated with a warning"})
    max_frame_text_bytes: int = field(default=48, metadata={"help": "optional per-frame text (events/subtitles)"})
    max_answer_bytes: int = field(default=32, metadata={"help": "answers are short: a colour, a count, a time, a short phrase"})

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise VideoQAError(f"unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}")
        if not 1 <= self.tokens_per_frame <= 32:
            raise VideoQAError(f"tokens_per_frame must be in 1..32, got {self.tokens_per_frame}")
        if self.num_frames < 1:
            raise VideoQAError(f"num_frames must be >= 1, got {self.num_frames}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VideoLMConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
