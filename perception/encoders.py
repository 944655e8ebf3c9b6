"""Vision backbones that turn images into patch features, shared by the policy and video QA.

A backbone is a `transformers` vision model built from its config (tiny ones trained here from
scratch) or loaded from a local directory holding a pretrained one. Families: SigLIP (no CLS token),
DINOv2 and ViT (a CLS token first, dropped here so every family returns only patch tokens), and two
convolutional ones, ResNet and BiT (ResNet-v2 with group norm and weight standardisation), whose last
feature map becomes one token per cell, with a learned position embedding added (convolutions alone
say little about where a cell is). "patch size" for them is the feature map's stride.

Why convolutions: trained from scratch on a few thousand simulator scenes, a tiny ViT did not learn
to find a 3-pixel object named by colour (its position error stayed at the predict-the-mean level,
6-10 cm, after 750 steps), while a tiny ResNet with the same token count and LM reached 0.8 cm in
1,500 steps (a probe on first frames of Reach/PickUp scenes; see checkpoints/README.md). Locality
and translation equivariance are the prior a ViT has to learn from data we do not have on a CPU.
OpenVLA fuses SigLIP and DINOv2 by concatenating their features per patch; ``VisionEncoder`` takes
any number of backbones with the same patch grid and does exactly that.

Input: float images in [0, 1], ``[B, 3, H, W]`` at ``encoder.image_size``; each backbone applies its
own mean/std (SigLIP uses 0.5/0.5, DINOv2/ViT the ImageNet statistics). Output: ``[B, N, out_dim]``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from perception.errors import PerceptionError

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class _Family:
    config_cls: str  # transformers class names, imported lazily
    model_cls: str
    n_prefix: int  # tokens before the patches (CLS) to drop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    conv: bool = False  # returns a [B, C, h, w] feature map instead of tokens


FAMILIES: dict[str, _Family] = {
    "siglip": _Family("SiglipVisionConfig", "SiglipVisionModel", 0, (0.5,) * 3, (0.5,) * 3),
    "dinov2": _Family("Dinov2Config", "Dinov2Model", 1, _IMAGENET_MEAN, _IMAGENET_STD),
    "vit": _Family("ViTConfig", "ViTModel", 1, _IMAGENET_MEAN, _IMAGENET_STD),
    "resnet": _Family("ResNetConfig", "ResNetModel", 0, _IMAGENET_MEAN, _IMAGENET_STD, conv=True),
    "bit": _Family("BitConfig", "BitModel", 0, _IMAGENET_MEAN, _IMAGENET_STD, conv=True),
}
# model_type in a pretrained config.json -> our family name (a full SigLIP checkpoint keeps its
# vision tower under "vision_config").
_MODEL_TYPES = {"siglip_vision_model": "siglip", "siglip": "siglip", "dinov2": "dinov2", "vit": "vit",
                "resnet": "resnet", "bit": "bit"}
# (stage index, that stage's output [B, C, h, w]) -> the features the next stage sees
StageHook = Callable[[int, torch.Tensor], torch.Tensor]

_CONV_DEFAULT_SIZE = 224  # a pretrained ResNet/BiT config names no input size; ImageNet's


def _family(name: str) -> _Family:
    if name not in FAMILIES:
        raise PerceptionError(f"unknown vision family {name!r}; available: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _hf_class(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def _instantiate(family: str, config: Any) -> nn.Module:
    cls = _hf_class(_family(family).model_cls)
    if family == "vit":
        return cls(config, add_pooling_layer=False)  # the pooler is unused and would never train
    return cls(config)


def conv_stride(config: Any) -> int:
    """Output stride of a ResNet/BiT config: a /4 stem, then /2 per stage after the first."""
    first = 2 if getattr(config, "downsample_in_first_stage", False) else 1
    return 4 * first * 2 ** (len(config.hidden_sizes) - 1)


class Backbone(nn.Module):
    """One transformers vision model plus its normalisation; returns patch tokens only."""

    def __init__(self, family: str, model: nn.Module) -> None:
        super().__init__()
        spec = _family(family)
        self.family = family
        self.model = model
        self.n_prefix = spec.n_prefix
        self.conv = spec.conv
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        if self.conv:
            config = model.config
            if not hasattr(config, "image_size"):  # pretrained: ImageNet's input size
                config.image_size = _CONV_DEFAULT_SIZE
            config.patch_size = conv_stride(config)
            was_training = model.training
            with torch.no_grad():  # the real grid (padding and pooling round it); eval: no BN update
                probe = model.eval()(pixel_values=torch.zeros(1, 3, config.image_size, config.image_size))
            model.train(was_training)
            self.num_patches = probe.last_hidden_state.shape[-2] * probe.last_hidden_state.shape[-1]
            self.out_dim = int(config.hidden_sizes[-1])
            self.pos_embed = nn.Parameter(torch.randn(self.num_patches, self.out_dim) * 0.02)
        else:
            self.out_dim = int(model.config.hidden_size)

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def stage_widths(self) -> list[int]:
        """Channels after each conv stage: what a per-stage modulation (FiLM) must match."""
        return [int(w) for w in self.config.hidden_sizes] if self.conv else []

    def forward(self, images: torch.Tensor, modulate: StageHook | None = None) -> torch.Tensor:
        """``modulate(i, features) -> features`` rewrites conv stage ``i``'s output in flight.

        It goes in through forward hooks that live for this call only, so the transformers
        model's own forward (which differs between versions) stays in charge, and copies of the
        module (``copy.deepcopy``) carry no hook that points back at another model.
        """
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        handles = []
        if modulate is not None:
            if not self.conv:
                raise PerceptionError(f"per-stage modulation needs a convolutional backbone, "
                                      f"not {self.family}")
            for i, stage in enumerate(self.model.encoder.stages):
                handles.append(stage.register_forward_hook(
                    lambda _m, _in, out, i=i: modulate(i, out)))
        try:
            hidden = self.model(pixel_values=x).last_hidden_state
        finally:
            for h in handles:
                h.remove()
        if self.conv:  # [B, C, h, w] -> [B, h*w, C], cells in row-major order
            return hidden.flatten(2).transpose(1, 2) + self.pos_embed.to(hidden.dtype)
        return hidden[:, self.n_prefix:]


class VisionEncoder(nn.Module):
    """One or more backbones over the same patch grid, features concatenated per patch."""

    def __init__(self, backbones: Sequence[Backbone]) -> None:
        super().__init__()
        if not backbones:
            raise PerceptionError("a vision encoder needs at least one backbone")
        grids = {(b.config.image_size, b.config.patch_size) for b in backbones}
        if len(grids) != 1:
            raise PerceptionError(f"fused backbones must share image and patch size, got {grids}")
        self.backbones = nn.ModuleList(backbones)
        self.image_size, self.patch_size = grids.pop()
        counts = {getattr(b, "num_patches", (self.image_size // self.patch_size) ** 2) for b in backbones}
        if len(counts) != 1:
            raise PerceptionError(f"fused backbones must give the same number of tokens, got {counts}")
        self.num_patches = counts.pop()
        self.out_dim = sum(b.out_dim for b in backbones)

    @property
    def stage_widths(self) -> list[int]:
        """Conv stage widths of the single backbone a modulation can address ([] otherwise)."""
        return self.backbones[0].stage_widths if len(self.backbones) == 1 else []

    def forward(self, images: torch.Tensor, modulate: StageHook | None = None) -> torch.Tensor:
        """``images``: float ``[B, 3, S, S]`` in [0, 1] -> patch features ``[B, N, out_dim]``.

        ``modulate`` (see :meth:`Backbone.forward`) needs exactly one convolutional backbone."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise PerceptionError(f"vision encoder expects {self.image_size}x{self.image_size} "
                                  f"images, got {tuple(images.shape[-2:])}")
        if modulate is not None and not self.stage_widths:
            raise PerceptionError("per-stage modulation needs exactly one convolutional backbone")
        feats = [b(images, modulate) for b in self.backbones]
        return feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)

    def config_dict(self) -> dict[str, Any]:
        """Enough to rebuild the architecture (weights travel separately, e.g. in safetensors)."""
        return {"backbones": [{"family": b.family, "config": b.config.to_dict()}
                              for b in self.backbones]}

    @classmethod
    def from_config_dict(cls, d: dict[str, Any]) -> "VisionEncoder":
        backbones = []
        for entry in d["backbones"]:
            config_cls = _hf_class(_family(entry["family"]).config_cls)
            config = config_cls.from_dict({k: v for k, v in entry["config"].items()
                                           if k not in ("model_type", "transformers_version")})
            backbones.append(Backbone(entry["family"], _instantiate(entry["family"], config)))
        return cls(backbones)


def tiny_config(family: str, image_size: int = 64, patch_size: int = 8, hidden_size: int = 128,
                num_layers: int = 2, num_heads: int = 4) -> Any:
    """A small config of ``family`` that trains from scratch on a CPU in minutes.

    Convolutional families: ``patch_size`` is the stride (4, 8, 16, ...: one stage per factor of
    two after the /4 stem), ``hidden_size`` the last stage's width (halved per earlier stage) and
    ``num_layers`` the blocks per stage; ``num_heads`` does not apply.
    """
    spec = _family(family)
    config_cls = _hf_class(spec.config_cls)
    if spec.conv:
        stages = int(round(math.log2(max(patch_size, 4) / 4))) + 1
        if 4 * 2 ** (stages - 1) != patch_size:
            raise PerceptionError(f"a {family} stride (patch size) must be 4, 8, 16, ...; got {patch_size}")
        widths = [max(8, hidden_size // 2 ** (stages - 1 - i)) for i in range(stages)]
        common = dict(num_channels=3, embedding_size=widths[0], hidden_sizes=widths,
                      depths=[num_layers] * stages, image_size=image_size)
        if family == "resnet":
            return config_cls(layer_type="basic", downsample_in_first_stage=False, **common)
        # BiT's bottleneck layers are a quarter as wide; group norm needs groups that divide them.
        groups = next(g for g in (8, 4, 2, 1) if all((w // 4) % g == 0 and w % g == 0 for w in widths))
        return config_cls(layer_type="preactivation", num_groups=groups, **common)
    extra = {"vision_use_head": False} if family == "siglip" else {}  # pooling head: unused here
    return config_cls(hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads,
                      image_size=image_size, patch_size=patch_size, num_channels=3, **extra)


def build_vision_encoder(family: str = "siglip", image_size: int = 64, patch_size: int = 8,
                         hidden_size: int = 128, num_layers: int = 2,
                         num_heads: int = 4) -> VisionEncoder:
    """A randomly initialised encoder; ``family`` may fuse several with '+', e.g. 'siglip+dinov2'."""
    backbones = []
    for name in family.split("+"):
        config = tiny_config(name, image_size, patch_size, hidden_size, num_layers, num_heads)
        backbones.append(Backbone(name, _instantiate(name, config)))
    return VisionEncoder(backbones)


def load_backbone(path: str | Path) -> Backbone:
    """A pretrained backbone from a local directory (``config.json`` + weights)."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise PerceptionError(f"no config.json in vision backbone directory {path}")
    model_type = json.loads(config_file.read_text()).get("model_type")
    family = _MODEL_TYPES.get(model_type)
    if family is None:
        raise PerceptionError(f"{path}: vision model_type {model_type!r} is not supported; "
                              f"supported: {', '.join(sorted(_MODEL_TYPES))}")
    cls = _hf_class(_family(family).model_cls)
    # Drop poolers we never use (they would also leave DDP with parameters that get no gradient).
    kwargs = {"add_pooling_layer": False} if family == "vit" else {}
    if family == "siglip":
        kwargs["vision_use_head"] = False
    try:
        model = cls.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as exc:
        raise PerceptionError(f"cannot load vision backbone from {path}: {exc}") from exc
    return Backbone(family, model)


def _embedded_encoder(path: Path) -> VisionEncoder | None:
    """The vision tower inside one of our checkpoints (a policy's ``save_pretrained`` directory,
    whose config.json carries a ``"vision"`` entry and whose weights hold ``vision.*``), so
    another model can start from the encoder a policy trained here; None for other directories.

    Read from the files rather than through ``policy``, which ``perception`` must not import.
    """
    config_file = path / "config.json"
    if not config_file.is_file():
        return None
    try:
        spec = json.loads(config_file.read_text()).get("vision")
    except json.JSONDecodeError as exc:
        raise PerceptionError(f"{config_file} is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict) or "backbones" not in spec:
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    encoder = VisionEncoder.from_config_dict(spec)
    try:
        weights = load_file(str(path / "model.safetensors"))
    except (OSError, SafetensorError) as exc:
        raise PerceptionError(f"cannot read the vision weights in {path}: {exc}") from exc
    state = {k[len("vision."):]: v for k, v in weights.items() if k.startswith("vision.")}
    result = encoder.load_state_dict(state, strict=False)
    if result.missing_keys or not state:
        raise PerceptionError(f"{path} holds no complete vision tower (missing "
                              f"{result.missing_keys[:3] or 'every vision.* weight'})")
    return encoder


def load_vision_encoder(paths: str | Path | Sequence[str | Path]) -> VisionEncoder:
    """Pretrained encoder from one directory, or several fused ('a+b' or a list of paths).

    A single directory may also be one of our own checkpoints (a trained policy): its tower,
    learned cell positions included, is taken as it is."""
    if isinstance(paths, (str, Path)):
        paths = [p for p in str(paths).split("+") if p]
    if len(paths) == 1:
        embedded = _embedded_encoder(Path(paths[0]))
        if embedded is not None:
            return embedded
    return VisionEncoder([load_backbone(p) for p in paths])
