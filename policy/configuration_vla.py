"""The policy's configuration: one flat dataclass, every default with the reason beside it.

Defaults target the issue's CPU budget: a 64 px image through a tiny BiT (ResNet-v2 with group
norm) whose stride-16 feature map gives 16 tokens a camera, a 3-layer 192-wide LM, and parallel
decoding of a chunk of actions in one forward pass. A convolutional tower because a tiny ViT trained
from scratch on a CPU did not learn to find the named object (see perception/encoders.py); group norm
rather than batch norm so a sample's features never depend on the rest of its batch (DDP ranks and
gradient accumulation then compute exactly what one process would).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from perception.lm import LM_FAMILIES
from policy.errors import PolicyError

DECODING_MODES = ("parallel", "autoregressive")
ACTION_HEADS = ("tokens", "l1")
# Where the instruction tokens come from: "none" = a BPE vocabulary learned from the training
# instructions (the shipped checkpoint); "minilm" = the frozen pretrained sentence encoder's
# per-token states (perception.text_encoder), projected into the LM, so words never seen in
# training still land near the ones that were.
TEXT_ENCODERS = ("none", "minilm")


@dataclass
class VLAConfig:
    # --- vision --------------------------------------------------------------------------------
    vision_family: str = field(default="bit", metadata={"help": "bit | resnet (convolutional) | siglip | dinov2 | vit; '+' fuses, e.g. siglip+dinov2 as OpenVLA"})
    vision_path: str = field(default="", metadata={"help": "local pretrained vision dir(s), '+'-joined to fuse; empty = tiny from scratch"})
    image_size: int = field(default=64, metadata={"help": "model input side; small so a CPU trains in minutes"})
    patch_size: int = field(default=16, metadata={"help": "patch side (ViTs) or stride (conv): 16 on 64 px -> 16 tokens per camera, a CPU trains this"})
    vision_hidden: int = field(default=256, metadata={"help": "width of the tiny vision tower (conv: last stage; BiT's bottlenecks are a quarter of it)"})
    vision_layers: int = field(default=1, metadata={"help": "depth of the tiny vision tower (conv: blocks per stage)"})
    cameras: str = field(default="agentview,wrist", metadata={"help": "the model's camera inputs, comma-separated: the dataset's camera names (e.g. top for observation.images.top; `embodied dataset info DIR` lists them), or other names fed through --camera-map; the wrist view helps grasping"})
    obs_image_size: int = field(default=64, metadata={"help": "side of the images the env/dataset delivers (validated at predict)"})
    # --- language model ------------------------------------------------------------------------
    lm_family: str = field(default="llama", metadata={"help": "llama | qwen2 (tiny from scratch)"})
    lm_path: str = field(default="", metadata={"help": "local pretrained causal LM dir (brings its tokenizer); empty = tiny"})
    lm_hidden: int = field(default=192, metadata={"help": "LM width; small enough for CPU training, checkpoint ~10 MB"})
    lm_layers: int = field(default=3, metadata={"help": "LM depth"})
    lm_heads: int = field(default=3, metadata={"help": "attention heads (64-dim each)"})
    text_vocab_size: int = field(default=384, metadata={"help": "BPE size for our instruction tokenizer; the corpus is small"})
    max_text_tokens: int = field(default=16, metadata={"help": "instructions are left-padded/truncated to this many tokens (their last ones)"})
    text_encoder: str = field(default="none", metadata={"help": "none: instruction tokens from a BPE vocabulary learned on the training instructions | minilm: the frozen pretrained MiniLM's per-token states (384-d, encoded once per distinct instruction), projected into the LM and attention-pooled for FiLM and the aux head, so paraphrases land near the trained phrasings; the checkpoint names the encoder (package, version, weight hash) instead of copying it", "choices": TEXT_ENCODERS})
    # --- actions -------------------------------------------------------------------------------
    n_bins: int = field(default=256, metadata={"help": "uniform bins per action dimension (OpenVLA)"})
    action_dim: int = field(default=7, metadata={"help": "filled from the dataset (ours: dx,dy,dz,droll,dpitch,dyaw,gripper)"})
    chunk: int = field(default=4, metadata={"help": "K future actions predicted per call"})
    replan: int = field(default=0, metadata={"help": "actions executed from each chunk before predicting again (0 = all K): the checkpoint's execution default, as a generation config is; fewer = more reactive"})
    decoding: str = field(default="parallel", metadata={"help": "parallel (one pass, OpenVLA-OFT) | autoregressive (token by token)"})
    action_head: str = field(default="tokens", metadata={"help": "tokens (256-way CE) | l1 (continuous regression, parallel only)"})
    use_state: bool = field(default=True, metadata={"help": "add one proprioception token (normalised state)"})
    state_dim: int = field(default=0, metadata={"help": "filled from the dataset"})
    aux_target_weight: float = field(default=0.0, metadata={"help": "weight of an auxiliary loss: predict the target object's position (world, and relative to the gripper) from the LM state at the last prefix token, supervised by the recorded ground truth; trains the grounding the action loss alone learns slowly (training only; 0 = off)"})
    film: bool = field(default=False, metadata={"help": "instruction FiLM in the vision tower (RT-1): each conv stage's channels are scaled and shifted by a projection of the instruction (the mean of its learned token embeddings; with --text-encoder minilm an attention pooling of the MiniLM token states, which keeps colour and side words apart), so the tower itself can pick out the named object; starts as the identity, so it can be added to a trained checkpoint (convolutional towers only)"})
    lora_rank: int = field(default=0, metadata={"help": "0 = no adapters; set by training with --lora"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator"})

    def __post_init__(self) -> None:
        if self.decoding not in DECODING_MODES:
            raise PolicyError(f"unknown decoding {self.decoding!r}; choose from {DECODING_MODES}")
        if self.text_encoder not in TEXT_ENCODERS:
            raise PolicyError(f"unknown text_encoder {self.text_encoder!r}; choose from {TEXT_ENCODERS}")
        if self.action_head not in ACTION_HEADS:
            raise PolicyError(f"unknown action_head {self.action_head!r}; choose from {ACTION_HEADS}")
        if self.action_head == "l1" and self.decoding != "parallel":
            raise PolicyError("the l1 action head needs parallel decoding")
        if not self.lm_path and self.lm_family not in LM_FAMILIES:
            raise PolicyError(f"unknown lm_family {self.lm_family!r}; choose from {tuple(LM_FAMILIES)}")
        if self.chunk < 1:
            raise PolicyError("chunk must be >= 1")
        if not 0 <= self.replan <= self.chunk:
            raise PolicyError(f"replan must be 0 (the whole chunk) to chunk={self.chunk}, got {self.replan}")
        if not self.camera_list:
            raise PolicyError("at least one camera is needed")

    @property
    def camera_list(self) -> list[str]:
        return [c.strip() for c in self.cameras.split(",") if c.strip()]

    @property
    def pretrained_text(self) -> bool:
        """True when instructions are the pretrained encoder's token states, not token ids."""
        return self.text_encoder != "none"

    @property
    def num_action_tokens(self) -> int:
        return self.chunk * self.action_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VLAConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
