"""One causal-LM builder: a tiny one from a config, a pretrained one from a local directory, or a
saved architecture rebuilt for its weights; LoRA adapters through ``peft``. Shared by the policy
and video QA, so both get their language model the same way.

- Tiny (:class:`TinyLM`): a Llama-family ``transformers`` model (Llama or Qwen2) trained here from
  scratch; small enough for CPU training. Untied input/output embeddings: the policy reads its
  action logits from the output rows of its own action tokens, which must not be the inputs'.
- Pretrained (``pretrained=dir`` or a name of ``perception.pretrained_lm.BASES``, e.g.
  ``"smollm2"``, dequantized and cached once there): ``AutoModelForCausalLM.from_pretrained`` on a
  local directory (no downloads), optionally cut to its first ``layers`` decoder layers (CI and
  quick runs), its embedding table grown to the caller's vocabulary (its own tokenizer plus prompt
  specials, action tokens after the text vocabulary, or a tokenizer of our own). New rows start
  at the mean of the old ones (deterministic, so the base rebuilds identically from its source
  and an adapter-only checkpoint needs none of its weights).
- Saved (``config=``): the dict :func:`lm_config_dict` returned, rebuilt with fresh weights that
  the caller then loads from its checkpoint.
- A pretrained base under LoRA, as an adapter-only checkpoint records it (:func:`adapter_arch`:
  the base's id, depth, vocabulary and LoRA) and rebuilt from that record (:func:`build_adapted`,
  checked against the installed base).

Decoding with a KV cache (:func:`cache_kwarg`, :func:`cache_of`): ``transformers`` 5.x renamed
``past_key_values`` to ``cache`` (in the call and in the output); the old name still works there
but warns on every first call and is due to be removed, while 4.x knows only the old one. The
policy and the video-QA model both decode with a KV cache, so both ask here instead of hard-coding
either spelling: a dependency upgrade must not silently break or slow decoding.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from perception.errors import PerceptionError

if TYPE_CHECKING:
    from torch import nn

LM_FAMILIES = {"llama": "LlamaConfig", "qwen2": "Qwen2Config"}  # tiny families -> config class


@dataclass(frozen=True)
class TinyLM:
    """A tiny causal LM's shape."""

    family: str = "llama"  # llama | qwen2
    hidden: int = 192
    layers: int = 3
    heads: int = 3  # as many key/value heads: no grouped-query attention at this size
    intermediate: int | None = None  # MLP width; None = 4 x hidden
    max_positions: int = 1024  # longer than any prompt here (policy ~60, video QA ~250 tokens)


@dataclass(frozen=True)
class LoRA:
    """LoRA adapters (``peft``): ``rank`` 0 means none."""

    rank: int
    alpha: int | None = None  # scaling numerator; None = rank (scaling 1)
    target_modules: str | tuple[str, ...] = "all-linear"  # or e.g. ("q_proj", "k_proj", "v_proj", "o_proj")
    modules_to_save: tuple[str, ...] = ()  # trained in full beside the adapters, e.g. a new vocabulary's
    # ("embed_tokens", "lm_head")
    dropout: float = 0.0
    # Rows of the input embedding trained beside the adapters (peft's trainable tokens; a tied
    # output head shares them): a few new specials added to a pretrained vocabulary, without
    # training (or saving) the whole table as modules_to_save would.
    trainable_tokens: tuple[int, ...] = ()


def build_lm(vocab_size: int | None = None, *, tiny: TinyLM | None = None,
             pretrained: str | Path | None = None, config: Mapping[str, Any] | None = None,
             lora: LoRA | None = None, layers: int | None = None) -> nn.Module:
    """A causal LM from exactly one of ``tiny`` (needs ``vocab_size``), ``pretrained`` (a local
    directory or a named base; grown to ``vocab_size`` when given, cut to its first ``layers``
    decoder layers when given, as ``layers[:N]`` would) or ``config`` (a saved architecture), with ``lora`` adapters added
    when given (then only the adapters, ``lora.modules_to_save`` and ``lora.trainable_tokens``
    train)."""
    if sum(x is not None for x in (tiny, pretrained, config)) != 1:
        raise ValueError("build_lm needs exactly one of tiny=, pretrained= or config=")
    import transformers

    if tiny is not None:
        if vocab_size is None:
            raise ValueError("a tiny LM needs vocab_size")
        lm = transformers.AutoModelForCausalLM.from_config(tiny_lm_config(tiny, vocab_size))
    elif config is not None:
        d = {k: v for k, v in config.items() if k != "transformers_version"}
        if "model_type" not in d:
            raise PerceptionError("a saved LM config needs its model_type")
        lm = transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(d.pop("model_type"), **d))
    else:
        lm = _load_pretrained(pretrained, layers)
        if vocab_size is not None and vocab_size != lm.get_input_embeddings().num_embeddings:
            grow_vocab(lm, vocab_size)
    return add_lora(lm, lora) if lora is not None and lora.rank else lm


def _load_pretrained(pretrained: str | Path, layers: int | None) -> nn.Module:
    import transformers

    from perception.pretrained_lm import resolve_lm

    directory = str(resolve_lm(pretrained))
    kwargs: dict[str, Any] = {"local_files_only": True}
    try:
        if layers is not None:  # a shallower config: the deeper layers' weights are never read
            if layers < 1:
                raise PerceptionError(f"layers must be >= 1, got {layers}")
            cfg = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
            cfg.num_hidden_layers = min(layers, cfg.num_hidden_layers)  # like layers[:N]
            if getattr(cfg, "layer_types", None):
                cfg.layer_types = list(cfg.layer_types)[:layers]
            kwargs["config"] = cfg
        return _quietly(transformers.AutoModelForCausalLM.from_pretrained, directory, **kwargs)
    except (OSError, ValueError) as exc:
        raise PerceptionError(f"cannot load the language model from {pretrained}: {exc}") from exc


def _quietly(load: Any, *args: Any, **kwargs: Any) -> Any:
    """``load`` with ``transformers``' loading report and progress bar silenced: a truncated model
    leaves the deeper layers' weights unused on purpose, and the report would call that a problem."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        return load(*args, **kwargs)
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def grow_vocab(lm: nn.Module, vocab_size: int) -> None:
    """Resize ``lm``'s embedding table (and an untied output head) to ``vocab_size``; new rows are
    the mean of the old ones. Why not ``transformers``' default: it draws them at random, so the
    same base would come back different at every load."""
    import torch

    old = lm.get_input_embeddings().num_embeddings
    lm.resize_token_embeddings(vocab_size, mean_resizing=False)
    if vocab_size <= old:
        return
    with torch.no_grad():
        for table in {id(t): t for t in (lm.get_input_embeddings(), lm.get_output_embeddings())
                      if t is not None}.values():
            weight = table.weight
            weight[old:] = weight[:old].mean(0, keepdim=True)
            bias = getattr(table, "bias", None)
            if bias is not None:
                bias[old:] = bias[:old].mean()


def tiny_lm_config(tiny: TinyLM, vocab_size: int) -> Any:
    """The ``transformers`` config of a tiny LM."""
    import transformers

    if tiny.family not in LM_FAMILIES:
        raise PerceptionError(f"unknown LM family {tiny.family!r}; available: {', '.join(LM_FAMILIES)}")
    cls = getattr(transformers, LM_FAMILIES[tiny.family])
    return cls(vocab_size=vocab_size, hidden_size=tiny.hidden,
               intermediate_size=tiny.intermediate or 4 * tiny.hidden,
               num_hidden_layers=tiny.layers, num_attention_heads=tiny.heads,
               num_key_value_heads=tiny.heads, max_position_embeddings=tiny.max_positions,
               tie_word_embeddings=False, attention_dropout=0.0)


def add_lora(lm: nn.Module, lora: LoRA) -> nn.Module:
    """``lm`` wrapped with LoRA adapters; its base weights are frozen."""
    from peft import LoraConfig, get_peft_model

    target = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    return get_peft_model(lm, LoraConfig(r=lora.rank, lora_alpha=lora.alpha or lora.rank,
                                         target_modules=target, lora_dropout=lora.dropout,
                                         modules_to_save=list(lora.modules_to_save) or None,
                                         trainable_token_indices=list(lora.trainable_tokens) or None))


def base_weight_names(lm: nn.Module) -> set[str]:
    """``state_dict`` keys of ``lm`` that are its frozen base weights under LoRA (every key of a
    model without adapters is trained): what an adapter-only checkpoint leaves out, because
    rebuilding the base from its source gives them back."""
    if not hasattr(lm, "get_base_model"):
        return set()
    trained = {n for n, p in lm.named_parameters() if p.requires_grad}
    return {k for k in lm.state_dict() if k not in trained}


# --- a base under LoRA, as a checkpoint records it -----------------------------------------------
# One record and one builder for every model that fine-tunes a pretrained base with adapters (the
# policy's ``--lm smollm2``, video QA's): the checkpoint keeps this dict instead of the base's
# weights, and loading rebuilds the same module from it (the base from its cache, checked).
def adapter_arch(name_or_dir: str | Path, layers: int | None, lora: LoRA,
                 vocab_size: int | None = None, ident: Any = None) -> dict[str, Any]:
    """What a checkpoint saves about its LM: the base's ``perception.pretrained_lm.BaseId``, the
    depth it was cut to (None = all), the vocabulary it was grown to (None = its own) and its
    :class:`LoRA`."""
    from perception.pretrained_lm import base_id

    ident = ident or base_id(name_or_dir)
    targets = lora.target_modules
    return {"base": ident.to_dict(), "layers": layers, "vocab_size": vocab_size,
            "lora": {"rank": lora.rank, "alpha": lora.alpha,
                     "targets": targets if isinstance(targets, str) else list(targets),
                     "trainable_tokens": list(lora.trainable_tokens),
                     "modules_to_save": list(lora.modules_to_save)}}


def arch_lora(arch: dict[str, Any]) -> LoRA:
    """The :class:`LoRA` an :func:`adapter_arch` record names (one-line error if incomplete)."""
    try:
        lora = arch["lora"]
        targets = lora["targets"] if isinstance(lora["targets"], str) else tuple(lora["targets"])
        return LoRA(int(lora["rank"]), lora["alpha"], target_modules=targets,
                    modules_to_save=tuple(lora.get("modules_to_save", ())),
                    trainable_tokens=tuple(lora.get("trainable_tokens", ())))
    except (KeyError, TypeError, ValueError) as exc:
        raise PerceptionError(f"the checkpoint's base LM entry is incomplete ({exc}); retrain it") from None


def build_adapted(arch: dict[str, Any], check: bool = True, what: str = "this checkpoint") -> nn.Module:
    """The base an :func:`adapter_arch` record names (its cache entry or directory), cut to its
    saved depth, grown to its vocabulary and wrapped with its LoRA; with ``check``, refused in one
    line (:class:`PerceptionError`) unless the installed base is the one it names."""
    from perception.pretrained_lm import base_id

    lora = arch_lora(arch)
    try:
        saved, layers, vocab = arch["base"], arch["layers"], arch.get("vocab_size")
        name = saved["name"]
    except (KeyError, TypeError) as exc:
        raise PerceptionError(f"the checkpoint's base LM entry is incomplete ({exc}); retrain it") from None
    if check:
        base_id(name).check(saved, what)
    return build_lm(vocab, pretrained=name, layers=layers, lora=lora)


def merge_lora(lm: nn.Module) -> nn.Module:
    """Adapters folded into the base weights (faster inference; irreversible); a model without
    adapters is returned as it is."""
    return lm.merge_and_unload() if hasattr(lm, "merge_and_unload") else lm


def lm_config_dict(lm: nn.Module) -> dict[str, Any]:
    """The architecture to save beside the weights (``build_lm(config=...)`` rebuilds it); the
    base model's under any adapters."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return {k: v for k, v in base.config.to_dict().items() if k != "transformers_version"}


@lru_cache(maxsize=1)
def cache_kwarg() -> str:
    """``"cache"`` on releases whose causal LMs take it, else ``"past_key_values"``."""
    from transformers import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters \
        else "past_key_values"


def cache_of(output: Any) -> Any:
    """The KV cache a forward pass returned, without touching a deprecated attribute."""
    name = cache_kwarg()
    return output[name] if name in output.keys() else getattr(output, name, None)
