"""The KV-cache argument of a ``transformers`` causal LM, under whichever name the installed release uses.

transformers 5.x renamed ``past_key_values`` to ``cache`` (in the call and in the output); the old
name still works there but warns on every first call and is due to be removed, while 4.x knows only
the old one. The policy and the video-QA model both decode with a KV cache, so both ask here instead
of hard-coding either spelling: a dependency upgrade must not silently break or slow decoding.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any


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
