"""One place that turns "which backend, which checkpoint" into a ``BasePolicy``.

``embodied eval``, ``embodied serve`` and the ROS policy node take ``--backend torch|onnx`` (and
``--quantize int8`` for onnx). For onnx, ``checkpoint`` may be an export directory (``embodied
export``) or a checkpoint, which is exported once into the cache (``policy.export.cached_export``).
"""

from __future__ import annotations

from pathlib import Path

from policy.base import BasePolicy
from policy.errors import PolicyError

BACKENDS = ("torch", "onnx")


def load_policy(checkpoint: str | Path, backend: str = "torch", quantize: str = "none",
                device: str = "cpu", replan: int | None = None,
                threads: int | None = None) -> BasePolicy:
    """The policy at ``checkpoint`` on ``backend`` (``threads``: ONNX Runtime intra-op threads)."""
    if backend not in BACKENDS:
        raise PolicyError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if quantize not in ("none", "int8"):
        raise PolicyError(f"quantize must be none or int8, got {quantize!r}")
    if backend == "torch":
        if quantize != "none":
            raise PolicyError("--quantize int8 needs --backend onnx (int8 is ONNX Runtime's quantization)")
        from policy.predict import Policy

        return Policy.from_pretrained(checkpoint, device=device, replan=replan)
    from policy.export import cached_export, is_export_dir
    from policy.onnx_policy import OnnxPolicy

    if device != "cpu":
        raise PolicyError("--device is torch's; the onnx backend picks ONNX Runtime's execution "
                          "providers itself (TensorRT, CUDA, then CPU)")
    directory = Path(checkpoint) if is_export_dir(checkpoint) else cached_export(checkpoint, quantize)
    return OnnxPolicy(directory, precision="int8" if quantize == "int8" else "fp32",
                      replan=replan, threads=threads)
