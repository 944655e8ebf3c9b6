"""``OnnxPolicy``: an exported policy (``embodied export``) behind the one policy interface.

The same ``predict_chunk(observations, instructions) -> [B, K, 7]`` contract, the same input checks
(``policy.inputs.prepare_inputs``, shared with the torch ``Policy``) and the same ``describe()``;
the model call is one ONNX Runtime session run of the exported graph, which does the image and
state preprocessing and the action de-tokenisation itself. No torch is imported: this is what runs
on an edge board with numpy, tokenizers and onnxruntime (TensorRT and CUDA execution providers are
used when the installed onnxruntime has them, the CPU otherwise)::

    policy = OnnxPolicy.from_export("exports/vla-default")       # or precision="int8"
    actions = policy.predict_chunk([obs], ["pick up the red cube"])

An export of a checkpoint conditioned on the pretrained text encoder (``text_encoder="minilm"``)
carries the encoder as a second graph: each distinct instruction is tokenised (``tokenizers``) and
run through it once, its token states kept in an exact-string LRU cache, so every later step of an
episode costs a lookup; ``text_forward_calls`` counts the encoder runs.

The fp32 graph gives the torch policy's actions to the bit (the same closed-loop episodes). The
int8 graph quantises activations per tensor over the whole batch, so a robot's actions depend
slightly on what else is in its batch (up to 0.04 normalised units between batch 1 and 5 on the
shipped checkpoint); fp32 does not.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policy.action_tokenizer import ActionTokenizer
from policy.base import BasePolicy, ChunkDistribution, Observation
from policy.errors import PolicyError
from policy.export import read_manifest, text_tokenizer
from policy.inputs import InputSpec, check_instructions, committed_bins, pad_token_states, prepare_inputs

# Preferred first; ONNX Runtime assigns each node to the first provider that can run it.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
TEXT_CACHE_SIZE = 4096  # distinct instructions kept (perception.text_encoder.CACHE_SIZE)


def select_providers(available: Sequence[str], requested: Sequence[str] | None = None) -> list[str]:
    """The execution providers to ask for: ``requested`` (each must be available) or every
    provider of ``PROVIDER_ORDER`` this onnxruntime build has, best first."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise PolicyError(f"onnxruntime here lacks {', '.join(missing)} (has: {', '.join(available)})")
        return list(requested)
    chosen = [p for p in PROVIDER_ORDER if p in available]
    return chosen or ["CPUExecutionProvider"]


class OnnxPolicy(BasePolicy):
    """An export directory run by ONNX Runtime: validation, tokenising, one session run."""

    def __init__(self, directory: str | Path, precision: str | None = None,
                 providers: Sequence[str] | None = None, threads: int | None = None,
                 replan: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise PolicyError("the onnx backend needs onnxruntime: pip install onnxruntime") from None
        from perception.text import load_tokenizer

        self.directory = Path(directory)
        self.manifest = manifest = read_manifest(self.directory)
        try:
            spec = manifest["policy"]
            graphs = manifest["graphs"]
            precision = precision or manifest["default_graph"]
            self.input_names = [i["name"] for i in manifest["inputs"]]
            self.output_names = [o["name"] for o in manifest["outputs"]]
            stats = json.loads((self.directory / "stats.json").read_text())
        except (KeyError, TypeError, OSError, json.JSONDecodeError) as exc:
            raise PolicyError(f"export {directory} is incomplete or corrupt: {exc!r}") from None
        if precision not in graphs:
            raise PolicyError(f"export {directory} has no {precision} graph (has: {', '.join(graphs)});"
                              " `embodied export --quantize int8` writes the int8 one")
        chunk = int(spec["chunk"])
        replan = int(spec["replan"]) if replan is None else replan
        if not 0 <= replan <= chunk:
            raise PolicyError(f"replan must be 0 (the whole chunk) to {chunk}, got {replan}")
        self.replan = replan or chunk
        self.precision = precision
        self.spec = spec
        self.committed_steps = int(spec.get("committed_steps") or 0)  # exports before it: none
        self.action_tokenizer = ActionTokenizer.from_dict(stats["action"])
        self.input_spec = InputSpec(cameras=tuple(spec["cameras"]), image_size=int(spec["image_size"]),
                                    max_text_tokens=int(spec["max_text_tokens"]),
                                    use_state=bool(spec["use_state"]),
                                    state_dim=int(spec["state_dim"] or 0),
                                    state_stats=stats.get("state"))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.providers = select_providers(ort.get_available_providers(), providers)
        self.session = ort.InferenceSession(str(self.directory / graphs[precision]), options,
                                            providers=self.providers)
        # The instruction: token ids of the checkpoint's tokenizer, or the pretrained encoder's
        # token states from the second graph, once per distinct string.
        self.tokenizer = None
        self.text_session = None
        self.text_forward_calls = 0
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        text = manifest.get("text_encoder")
        if text is None:
            self.tokenizer = load_tokenizer(self.directory / "tokenizer")
        else:
            try:
                self.text_tokenizer = text_tokenizer(self.directory / text["tokenizer"],
                                                     int(text["max_tokens"]))
                self.text_session = ort.InferenceSession(str(self.directory / text["graph"]),
                                                         options, providers=self.providers)
            except Exception as exc:  # noqa: BLE001 - onnxruntime and tokenizers raise their own types
                raise PolicyError(f"export {directory}: its text encoder cannot be loaded: "
                                  f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from None

    @classmethod
    def from_export(cls, directory: str | Path, **kwargs: Any) -> "OnnxPolicy":
        return cls(directory, **kwargs)

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return {"chunk": int(s["chunk"]), "replan": int(self.replan), "cameras": list(s["cameras"]),
                "image_size": int(s["image_size"]), "use_state": bool(s["use_state"]),
                "state_dim": None if s["state_dim"] is None else int(s["state_dim"]),
                "committed_steps": self.committed_steps,
                "distribution": "log_probs" in self.output_names}  # exports before revision 3: none

    def predict_chunk(self, observations: Sequence[Observation], instructions: Sequence[str]) -> np.ndarray:
        """One session run for B observations -> actions ``[B, K, 7]`` float32."""
        return self.session.run(["actions"], self._feed(observations, instructions))[0]

    def predict_chunk_distribution(self, observations: Sequence[Observation],
                                   instructions: Sequence[str]) -> ChunkDistribution:
        """The same session run, also reading the bins' log-probabilities (``log_probs``)."""
        if "log_probs" not in self.output_names:
            raise PolicyError(f"export {self.directory} has no log_probs output (an l1 head, or an "
                              "export older than it: run `embodied export` again)")
        actions, log_probs = self.session.run(["actions", "log_probs"],
                                              self._feed(observations, instructions))
        return ChunkDistribution(actions, log_probs, self.action_tokenizer.bin_values())

    def _feed(self, observations: Sequence[Observation], instructions: Sequence[str]) -> dict[str, np.ndarray]:
        """Checked inputs -> the step graph's feed."""
        images, ids, mask, states = prepare_inputs(observations, instructions, self.input_spec,
                                                   self.tokenizer)
        feed = {"images": np.ascontiguousarray(images), "text_mask": mask}
        if self.text_session is None:
            feed["text_ids"] = ids
        else:
            feed["text_states"], feed["text_mask"] = self.encode_text(instructions)
        if "state" in self.input_names:
            feed["state"] = states
        committed = committed_bins(observations, self.action_tokenizer, int(self.spec["chunk"]),
                                   self.committed_steps)
        if "committed_bins" in self.input_names:
            n = len(observations)
            feed["committed_bins"], feed["committed_len"] = committed or (
                np.zeros((n, int(self.spec["chunk"]) * self.action_tokenizer.dim), np.int64),
                np.zeros(n, np.int64))
        return feed

    def encode_text(self, instructions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded token states ``[B, L, 384]`` and mask of the instructions: the text graph
        runs once per distinct string (alone, as the torch policy encodes it), then a lookup."""
        texts = check_instructions(instructions)
        for text in dict.fromkeys(texts):
            if text in self._text_cache:
                self._text_cache.move_to_end(text)
                continue
            ids = np.asarray([self.text_tokenizer.encode(text).ids], dtype=np.int64)
            self._text_cache[text] = self.text_session.run(["states"], {"input_ids": ids})[0][0]
            self.text_forward_calls += 1
            while len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return pad_token_states([self._text_cache[t] for t in texts],
                                self.input_spec.max_text_tokens)
