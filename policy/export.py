"""`embodied export`: a policy checkpoint -> an ONNX graph of the whole per-step computation.

An export directory holds::

    manifest.json     inputs/outputs (names, shapes, dtypes), opset, graphs, the source
                      checkpoint and its sha256, the policy's describe() and input checks
    model.onnx        fp32: uint8 images, raw state, token ids/mask -> un-normalised actions
    model_int8.onnx   with --quantize int8: ONNX Runtime dynamic quantization of MatMul/Gemm
    tokenizer/        the instruction tokenizer (``perception.text`` format)
    stats.json        the checkpoint's action and state statistics (the range check needs them)

A checkpoint conditioned on the pretrained text encoder (``text_encoder="minilm"``) reads token
states instead of ids (input ``text_states`` ``[batch, L, 384]``), and its export adds::

    text_encoder.onnx  MiniLM: word-piece ids [1, T] -> token states [1, T, 384] (fp32), which
                       the backend runs once per distinct instruction and caches
    text_encoder/      its tokenizer files and encoder_id.json (package, version, weights sha256)

so the directory runs without the encoder's package. ``--format checkpoint`` instead writes a copy
of the torch checkpoint with the encoder's files bundled in ``text_encoder/`` (self-contained).

The graph is ``policy.export_graph.StepGraph`` traced by torch's TorchScript-based exporter
(``dynamo=False``): it handles the transformers Llama with ``use_cache=False`` and needs no
onnxscript; the batch axis is dynamic. Every export is checked before it is committed: ONNX
Runtime runs it on a batch of two and its actions must equal the torch model's (fp32), or the
export fails. The directory is written to a temporary sibling and renamed
(``common.atomic.atomic_dir``).

What cannot be exported is refused with one line (``PolicyError``): autoregressive decoding (a
token-by-token ``generate`` loop: not one graph), and observations at a size other than the
model's (the resampling, OpenCV's area filter, is not in the graph).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_dir
from policy.errors import PolicyError

FORMAT = "embodied-vla-onnx/1"
FORMATS = ("onnx", "checkpoint")
# Bumped whenever the exported graph changes for the same checkpoint: cached exports of an older
# revision (or made by other torch/onnx versions) are made again.
REVISION = 3
MANIFEST = "manifest.json"
GRAPHS = {"fp32": "model.onnx", "int8": "model_int8.onnx"}
TEXT_GRAPH = "text_encoder.onnx"
TEXT_DIR = "text_encoder"
TEXT_STATE_DIM = 384  # perception.text_encoder.DIM (MiniLM), without importing torch here
# How far the exported text graph's token states may be from torch's (they are O(1) numbers).
TEXT_PARITY_TOL = 1e-4
QUANTIZE = ("none", "int8")
DEFAULT_OPSET = 18
# How far ONNX Runtime's fp32 actions may be from torch's at export time, in normalised units
# (the tests hold 100 observations to 1e-4).
PARITY_TOL = 1e-4
# Where `embodied eval --backend onnx` keeps the exports it makes on the fly.
CACHE_ENV = "EMBODIED_EXPORT_CACHE"


@dataclass
class ExportConfig:
    checkpoint: str = field(default="checkpoints/vla-default", metadata={"help": "policy checkpoint directory"})
    out: str = field(default="", metadata={"help": "export directory to write (replaced whole if it is an earlier export)", "required": True})
    format: str = field(default="onnx", metadata={"help": "onnx: the per-step graph (plus, for a --text-encoder minilm checkpoint, the encoder as a second graph run once per instruction); checkpoint: a copy of the torch checkpoint with its pretrained text encoder bundled (loads without the encoder's package)", "choices": FORMATS})
    quantize: str = field(default="none", metadata={"help": "also write an int8 graph (ONNX Runtime dynamic quantization of MatMul/Gemm)", "choices": QUANTIZE})
    opset: int = field(default=DEFAULT_OPSET, metadata={"help": "ONNX opset"})


def checkpoint_sha256(directory: str | Path) -> str:
    """sha256 over a checkpoint's files (relative path and content, in sorted order): the identity
    an export records and its cache is keyed by."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel.startswith(".") or rel.endswith((".png", ".mp4")) or rel == "eval.json":
            continue  # results and plots beside the weights are not the model
        digest.update(rel.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_exportable(cfg: Any) -> None:
    """Refuse, with one line, a checkpoint whose per-step computation is not one graph."""
    if cfg.decoding != "parallel":
        raise PolicyError(f"cannot export decoding={cfg.decoding!r}: autoregressive decoding is a "
                          "token-by-token generate loop, not one graph; export a parallel-decoding "
                          "checkpoint (train with --decoding parallel)")
    if cfg.obs_image_size != cfg.image_size:
        raise PolicyError(f"cannot export: observations are {cfg.obs_image_size} px but the model "
                          f"reads {cfg.image_size} px, and the resampling is not in the graph; "
                          "use a checkpoint whose obs_image_size equals its image_size")


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise PolicyError("exporting needs the onnx and onnxruntime packages: "
                          "pip install onnx onnxruntime") from None


def is_export_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of an export directory, or a one-line PolicyError."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise PolicyError(f"{directory} is not a policy export (no {MANIFEST}); "
                          "make one with `embodied export --checkpoint DIR --out DIR`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path} is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PolicyError(f"{path}: format {manifest.get('format') if isinstance(manifest, dict) else None!r}"
                          f" is not {FORMAT!r}")
    return manifest


EXAMPLE_INSTRUCTIONS = ["pick up the red cube", "put the green cylinder in the bowl on the left"]


def text_input_name(cfg: Any) -> str:
    """The step graph's instruction input: token ids, or pretrained token states."""
    return "text_states" if cfg.pretrained_text else "text_ids"


def _example_inputs(model: Any) -> dict[str, np.ndarray]:
    """A batch of two for tracing and the parity check: random images, the mean state, a short
    (left-padded) and a long instruction."""
    cfg = model.cfg
    rng = np.random.default_rng(0)
    s = cfg.obs_image_size
    feed = {"images": rng.integers(0, 256, (2, len(cfg.camera_list), s, s, 3), dtype=np.uint8)}
    if model.state_proj is not None:
        mean = np.asarray((model.state_stats or {}).get("mean", [0.0] * cfg.state_dim), np.float32)
        feed["state"] = np.stack([mean, mean + 0.1]).astype(np.float32)
    text, mask = model.encode_text(EXAMPLE_INSTRUCTIONS)
    feed[text_input_name(cfg)], feed["text_mask"] = text.numpy(), mask.numpy()
    if cfg.committed_steps:  # one robot with none committed, one with all it may be given
        feed["committed_bins"] = rng.integers(0, cfg.n_bins, (2, cfg.num_action_tokens), dtype=np.int64)
        feed["committed_len"] = np.array([0, cfg.committed_steps], np.int64)
    return feed


def step_inputs(text: str) -> tuple[str, ...]:
    """The step graph's inputs in order (those a checkpoint lacks are left out of the feed)."""
    return ("images", "state", text, "text_mask", "committed_bins", "committed_len")


def _normalised_error(model: Any, a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| in the action tokenizer's normalised units ([-1, 1] per dimension)."""
    tok = model.action_tokenizer
    return float(np.max(np.abs(tok.normalize(a).astype(np.float64) - tok.normalize(b))))


def _trace_onnx(model: Any, path: Path, feed: dict[str, np.ndarray], opset: int) -> None:
    import torch

    from policy.export_graph import StepGraph

    graph = StepGraph(model)
    names = list(feed)
    text = text_input_name(model.cfg)
    args = tuple(torch.from_numpy(feed[n]) for n in step_inputs(text) if n in feed)

    class _Positional(torch.nn.Module):  # the graph's inputs in the manifest's order, no None
        def __init__(self) -> None:
            super().__init__()
            self.graph = graph

        def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            named = dict(zip(names, xs))
            return self.graph(named["images"], named.get("state"), named[text],
                              named["text_mask"], named.get("committed_bins"), named.get("committed_len"))

    outputs = output_names(model.cfg)

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes that are fixed here
        torch.onnx.export(_Positional().eval(), args, str(path), input_names=names,
                          output_names=outputs, opset_version=opset, dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in [*names, *outputs]})


def output_names(cfg: Any) -> list[str]:
    """The step graph's outputs: the actions, and with a token head the bins' log-probabilities."""
    return ["actions"] if cfg.action_head == "l1" else ["actions", "log_probs"]


def _quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic (weight int8, activations quantised on the fly) quantization of MatMul and Gemm:
    no calibration data, the LM's and projector's matrices are where the time goes."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "run pre-processing"
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"])


def _session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _io_spec(model: Any, names: list[str]) -> tuple[list[dict], list[dict]]:
    cfg = model.cfg
    s, c = int(cfg.obs_image_size), len(cfg.camera_list)
    shapes = {"images": (["batch", c, s, s, 3], "uint8"),
              "state": (["batch", int(cfg.state_dim)], "float32"),
              "text_ids": (["batch", int(cfg.max_text_tokens)], "int64"),
              "text_states": (["batch", int(cfg.max_text_tokens), TEXT_STATE_DIM], "float32"),
              "text_mask": (["batch", int(cfg.max_text_tokens)], "int64"),
              "committed_bins": (["batch", int(cfg.num_action_tokens)], "int64"),
              "committed_len": (["batch"], "int64")}
    inputs = [{"name": n, "shape": shapes[n][0], "dtype": shapes[n][1]} for n in names]
    outputs = [{"name": "actions", "shape": ["batch", int(cfg.chunk), int(cfg.action_dim)],
                "dtype": "float32"}]
    if "log_probs" in output_names(cfg):
        outputs.append({"name": "log_probs", "dtype": "float32",
                        "shape": ["batch", int(cfg.chunk), int(cfg.action_dim), int(cfg.n_bins)]})
    return inputs, outputs


def export_model(model: Any, out: str | Path, quantize: str = "none", opset: int = DEFAULT_OPSET,
                 source: dict[str, Any] | None = None) -> Path:
    """Export a loaded ``VLAModel`` (LoRA merged) into ``out``; returns ``out``.

    ``source`` (checkpoint path and sha256) goes into the manifest.
    """
    import torch

    _require_onnx()
    check_exportable(model.cfg)
    if quantize not in QUANTIZE:
        raise PolicyError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_export_dir(out))):
        raise PolicyError(f"{out} exists and is not a policy export; refusing to replace it")
    model = model.eval().to(dtype=torch.float32)
    feed = _example_inputs(model)
    from policy.export_graph import StepGraph

    with torch.no_grad():
        expected = StepGraph(model)(*(torch.from_numpy(feed[n]) if n in feed else None
                                      for n in step_inputs(text_input_name(model.cfg))))[0].numpy()
    inputs, outputs = _io_spec(model, list(feed))
    with atomic_dir(out) as tmp:
        _trace_onnx(model, tmp / GRAPHS["fp32"], feed, opset)
        import onnx

        onnx.checker.check_model(str(tmp / GRAPHS["fp32"]))
        graphs = {"fp32": GRAPHS["fp32"]}
        if quantize == "int8":
            _quantize_int8(tmp / GRAPHS["fp32"], tmp / GRAPHS["int8"])
            graphs["int8"] = GRAPHS["int8"]
        check = {}
        for precision, name in graphs.items():
            got = _session(tmp / name).run(["actions"], feed)[0]
            check[precision] = _normalised_error(model, got, expected)
        if check["fp32"] > PARITY_TOL:
            raise RuntimeError(f"the exported graph disagrees with torch by {check['fp32']:.3g} "
                               f"(normalised units) on the export-time check")
        text_encoder = None
        export_check: dict[str, Any] = {"batch": 2, "max_abs_error_normalised": check}
        if model.cfg.pretrained_text:  # the second graph, checked against torch's token states
            text_encoder, export_check["text_states_max_abs_error"] = _export_text_graph(model, tmp,
                                                                                         opset)
        if model.text_tokenizer is not None:
            model.text_tokenizer.save(tmp / "tokenizer")
        stats = {"action": model.action_tokenizer.to_dict(), "state": model.state_stats}
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2))
        cfg = model.cfg
        manifest = {
            "format": FORMAT, "revision": REVISION, "opset": opset, "graphs": graphs,
            "default_graph": "int8" if quantize == "int8" else "fp32",
            "inputs": inputs, "outputs": outputs,
            "source": source or {},
            "policy": {"chunk": int(cfg.chunk), "replan": int(cfg.replan or cfg.chunk),
                       "cameras": list(cfg.camera_list), "image_size": int(cfg.obs_image_size),
                       "use_state": model.state_proj is not None,
                       "state_dim": int(cfg.state_dim) if model.state_proj is not None else None,
                       "max_text_tokens": int(cfg.max_text_tokens),
                       "committed_steps": int(cfg.committed_steps)},
            "export_check": export_check,
            "versions": _versions(),
        }
        if text_encoder is not None:
            manifest["text_encoder"] = text_encoder
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def _export_text_graph(model: Any, tmp: Path, opset: int) -> tuple[dict[str, Any], float]:
    """The model's pretrained text encoder as ``text_encoder.onnx`` (ids of one instruction ->
    token states, dynamic length) with its tokenizer files beside it; returns the manifest entry
    and the largest difference from torch's states on the example instructions."""
    import torch

    from perception.text_encoder import TOKENIZER_FILES, bundle
    from policy.export_graph import TextGraph

    encoder = model.text_encoder
    ident = bundle(tmp / TEXT_DIR, TOKENIZER_FILES, source=model.text_encoder_dir)
    tokenizer = text_tokenizer(tmp / TEXT_DIR / "tokenizer.json", encoder.max_tokens)
    ids = {t: np.asarray([tokenizer.encode(t).ids], np.int64) for t in EXAMPLE_INSTRUCTIONS}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings: the length is a dynamic axis
            torch.onnx.export(TextGraph(encoder.model).eval(),
                              (torch.from_numpy(ids[EXAMPLE_INSTRUCTIONS[1]]),),
                              str(tmp / TEXT_GRAPH), input_names=["input_ids"],
                              output_names=["states"], opset_version=opset, dynamo=False,
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "states": {0: "batch", 1: "tokens"}})
    finally:
        # The exporter restores the mode of the module it was given, and its children with it: the
        # shared encoder must never be left in training mode (dropout) by an export.
        encoder.freeze()
    import onnx

    onnx.checker.check_model(str(tmp / TEXT_GRAPH))
    session = _session(tmp / TEXT_GRAPH)
    error = 0.0
    for text, x in ids.items():
        got = session.run(["states"], {"input_ids": x})[0][0]
        want = encoder.encode_fresh([text]).states[0].float().numpy()  # not the cache
        if got.shape != want.shape:
            raise RuntimeError(f"the exported text encoder gives {got.shape[0]} tokens for {text!r}, "
                               f"torch {want.shape[0]}: the tokenizers disagree")
        error = max(error, float(np.max(np.abs(got - want))))
    if error > TEXT_PARITY_TOL:
        raise RuntimeError(f"the exported text encoder disagrees with torch by {error:.3g}")
    entry = {"graph": TEXT_GRAPH, "tokenizer": f"{TEXT_DIR}/tokenizer.json",
             "max_tokens": int(encoder.max_tokens), "dim": int(encoder.dim), "id": ident.to_dict()}
    return entry, error


def text_tokenizer(path: str | Path, max_tokens: int) -> Any:
    """The pretrained encoder's tokenizer as the ``tokenizers`` library reads it (what the ONNX
    backend uses): [CLS] ... [SEP], truncated at ``max_tokens`` as ``TextEncoder`` does, no
    padding (each instruction is encoded alone)."""
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(int(max_tokens))
    return tok


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def export_checkpoint(checkpoint: str | Path, out: str | Path, fmt: str = "onnx",
                      quantize: str = "none", opset: int = DEFAULT_OPSET) -> Path:
    """`embodied export`: load (LoRA merged), refuse what cannot be exported, write ``out``."""
    from policy.configuration_vla import VLAConfig
    from policy.modeling_vla import VLAModel

    if fmt not in FORMATS:
        raise PolicyError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    checkpoint = Path(checkpoint)
    if fmt == "checkpoint":
        return bundle_checkpoint(checkpoint, out)
    _require_onnx()
    if is_export_dir(checkpoint):
        raise PolicyError(f"{checkpoint} is already an export; give the checkpoint it came from")
    try:  # refuse before loading weights for nothing; a broken config is from_pretrained's to report
        cfg = VLAConfig.from_dict(json.loads((checkpoint / "config.json").read_text())["vla"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        cfg = None
    if cfg is not None:
        check_exportable(cfg)
    if Path(out).resolve() == checkpoint.resolve():
        raise PolicyError("--out must differ from --checkpoint")
    model = VLAModel.from_pretrained(checkpoint, merge_lora=True)
    source = {"checkpoint": str(checkpoint), "sha256": checkpoint_sha256(checkpoint)}
    return export_model(model, out, quantize=quantize, opset=opset, source=source)


def bundle_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """`embodied export --format checkpoint`: ``out`` = the checkpoint's files plus its pretrained
    text encoder in ``text_encoder/`` (loads where the encoder's package is not installed),
    written atomically."""
    import shutil

    from policy.modeling_vla import VLAModel

    checkpoint, out = Path(checkpoint), Path(out)
    if out.resolve() == checkpoint.resolve():
        raise PolicyError("--out must differ from --checkpoint")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PolicyError(f"{out} exists and is not empty; refusing to replace it")
    model = VLAModel.from_pretrained(checkpoint)  # checked: its encoder is the one installed or bundled
    if not model.cfg.pretrained_text:
        raise PolicyError(f"{checkpoint} has no pretrained text encoder to bundle (it reads learned "
                          "token ids; it is self-contained already)")
    with atomic_dir(out) as tmp:
        for path in checkpoint.iterdir():
            if path.name in ("text_encoder", "optimizer.pt"):
                continue
            copy = shutil.copytree if path.is_dir() else shutil.copyfile
            copy(path, tmp / path.name)
        model.bundle_text_encoder(tmp)
    return out


def cached_export(checkpoint: str | Path, quantize: str = "none") -> Path:
    """An export of ``checkpoint`` in the cache (``$EMBODIED_EXPORT_CACHE``, else
    ``~/.cache/embodied/exports``), keyed by the checkpoint's sha256: made once, reused after."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise PolicyError(f"checkpoint directory {checkpoint} does not exist")
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "embodied" / "exports")
    digest = checkpoint_sha256(checkpoint)
    out = root / f"{checkpoint.resolve().name}-{digest[:16]}"
    if is_export_dir(out):
        try:
            manifest = read_manifest(out)
            if (manifest["source"].get("sha256") == digest and manifest.get("revision") == REVISION
                    and manifest.get("versions") == _versions()
                    and (quantize == "none" or "int8" in manifest["graphs"])):
                return out
        except (PolicyError, KeyError, TypeError):
            pass  # a stale or broken cache entry is simply made again
    return export_checkpoint(checkpoint, out, quantize=quantize)
