"""Text -> token ids, behind one interface, saved in one format. Shared by the policy, video QA and
the CLIP-style frame-text encoder (and, later, the pretrained sentence encoder of issue 23, which
will use :class:`PretrainedTokenizer`).

Interface (:class:`Tokenizer`): ``encode(text) -> ids`` (text ids only: user text never yields a
special token, so a literal "<sep>" stays text), ``decode(ids) -> text`` (specials and unknown ids
dropped), ``pad_id`` / ``bos_id`` / ``eos_id`` (``None`` when the vocabulary has none),
``token_id(special)``, ``vocab_size`` (every id, specials included: the embedding table's size),
``save(directory)``; :func:`load_tokenizer` reads any of them back.

Two implementations:

- :class:`TrainedTokenizer`, for the tiny models trained here: a ``tokenizers.Tokenizer`` learned
  from a corpus (:func:`train_bpe`: byte-level BPE, or character-level BPE with an unknown token),
  plain UTF-8 bytes (:func:`byte_tokenizer`), or whole words (:func:`word_tokenizer`, the CLIP
  encoder's bag of words). Specials are configurable; they live in the ``tokenizers`` vocabulary as
  special tokens, and the meta file says which is padding, BOS and EOS.
- :class:`PretrainedTokenizer`: a pretrained LM's own tokenizer (``transformers.AutoTokenizer``)
  loaded from its local directory; ``add_specials`` appends a model's prompt specials after its
  vocabulary (``perception.pretrained_lm`` finds the directory of a named base).

Format: a directory holding ``tokenizer.json`` (the ``tokenizers`` library's own serialisation,
which ``tokenizers``, ``transformers`` and the Rust/JS bindings all read) and ``tokenizer_meta.json``
(which implementation, and the roles of the specials); a pretrained tokenizer adds the files its
``save_pretrained`` writes. Why this one: it is the standard file of the library that does the work
here, so nothing of ours is needed to read the vocabulary and merges, and the meta file is five
lines. :func:`load_tokenizer` also reads the two layouts saved before it, with the same ids: the
policy's ``tokenizer/`` (``tokenizer.json`` alone, or a pretrained tokenizer's files) and video QA's
``tokenizer.json`` (``{"type": "bpe" | "byte", "specials": [...], "bpe": {...}}``, specials after
the text vocabulary).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterable, Sequence

from perception.errors import PerceptionError

FILE_NAME = "tokenizer.json"
META_NAME = "tokenizer_meta.json"
FORMAT = "embodied-tokenizer/1"
WORD_SPECIALS = ("[PAD]", "[UNK]")  # the word tokenizer's: padding 0 (masked out), unknown 1


class Tokenizer(ABC):
    """What every model here needs from a tokenizer."""

    kind: str  # "bpe" | "byte" | "word" (trained here) or "hf" (a pretrained LM's)
    pad_id: int
    bos_id: int | None
    eos_id: int | None
    vocab_size: int

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` alone: no BOS/EOS added, and specials written in the text stay text."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; specials and ids outside the vocabulary are dropped."""

    @abstractmethod
    def token_id(self, token: str) -> int:
        """The id of the special token ``token`` (e.g. ``"<frame>"``); PerceptionError if absent."""

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_meta.json`` (and, for a pretrained tokenizer,
        its own files) into ``directory``; returns it."""


class TrainedTokenizer(Tokenizer):
    """A ``tokenizers.Tokenizer`` whose specials are special tokens of its vocabulary."""

    def __init__(self, backend: Any, kind: str, pad: str, bos: str | None = None,
                 eos: str | None = None) -> None:
        self.backend = backend
        self.kind = kind
        # User text never turns into a special: "<sep>" typed in a question is five characters.
        self.backend.encode_special_tokens = True
        self.specials = {t.content: i for i, t in backend.get_added_tokens_decoder().items()
                         if t.special}
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self._roles = {"pad": pad, "bos": bos, "eos": eos}
        self.pad_id = self.token_id(pad)
        self.bos_id = self.token_id(bos) if bos else None
        self.eos_id = self.token_id(eos) if eos else None

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        kept = [int(i) for i in ids if 0 <= int(i) < self.vocab_size]
        return self.backend.decode(kept, skip_special_tokens=True)

    def token_id(self, token: str) -> int:
        if token not in self.specials:
            raise PerceptionError(f"the tokenizer has no special {token!r} (has: {sorted(self.specials)})")
        return self.specials[token]

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / FILE_NAME))
        meta = {"format": FORMAT, "kind": self.kind, **self._roles,
                "specials": sorted(self.specials, key=self.specials.get)}
        (directory / META_NAME).write_text(json.dumps(meta, indent=1) + "\n")
        return directory


class PretrainedTokenizer(Tokenizer):
    """A pretrained LM's tokenizer. Without a padding token, EOS pads (or id 0): the attention
    mask hides padding anyway. :meth:`add_specials` appends a model's prompt specials after the
    pretrained vocabulary, so every pretrained id keeps its meaning (and its embedding)."""

    kind = "hf"

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._refresh()

    def _refresh(self) -> None:
        backend = self.backend
        self.vocab_size = len(backend)
        self.bos_id = backend.bos_token_id
        self.eos_id = backend.eos_token_id
        pad = backend.pad_token_id
        self.pad_id = pad if pad is not None else (backend.eos_token_id or 0)

    @classmethod
    def load(cls, directory: str | Path) -> "PretrainedTokenizer":
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(str(directory), local_files_only=True))
        except (OSError, ValueError) as exc:
            raise PerceptionError(f"cannot load the tokenizer of {directory}: {exc}") from exc

    def add_specials(self, tokens: Sequence[str], *, bos: str | None = None,
                     eos: str | None = None) -> list[int]:
        """Add those of ``tokens`` the vocabulary lacks as special tokens after it, in order, and
        return the ids they got (new rows for the model's embedding table). ``bos``/``eos`` (one
        of ``tokens``) take that role only where the tokenizer has none of its own."""
        new = [t for t in dict.fromkeys(tokens) if t not in self.specials]
        if new:
            self.backend.add_tokens(new, special_tokens=True)
        for role, token in (("bos_token", bos), ("eos_token", eos)):
            if token is not None and getattr(self.backend, role) is None:
                setattr(self.backend, role, token)
        self._refresh()
        return [self.token_id(t) for t in new]

    @property
    def specials(self) -> dict[str, int]:
        """Special token -> id (its own and those added), as ``TrainedTokenizer.specials``."""
        out = {t.content: int(i) for i, t in self.backend.added_tokens_decoder.items() if t.special}
        for token in self.backend.all_special_tokens:
            out.setdefault(token, int(self.backend.convert_tokens_to_ids(token)))
        return out

    def encode(self, text: str) -> list[int]:
        # split_special_tokens: user text never yields a special ("<sep>" typed stays text)
        return list(self.backend(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def decode(self, ids: Iterable[int]) -> str:
        kept = [int(i) for i in ids if 0 <= int(i) < self.vocab_size]
        return self.backend.decode(kept, skip_special_tokens=True)

    def token_id(self, token: str) -> int:
        specials = self.specials
        if token not in specials:
            raise PerceptionError(f"the tokenizer has no special {token!r}")
        return specials[token]

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save_pretrained(str(directory))
        (directory / META_NAME).write_text(json.dumps({"format": FORMAT, "kind": self.kind}) + "\n")
        return directory


# --- the tokenizers trained here --------------------------------------------------------------
def train_bpe(corpus: Iterable[str], vocab_size: int, specials: Sequence[str] = ("<pad>", "<bos>", "<eos>"),
              *, pad: str | None = None, bos: str | None = None, eos: str | None = None,
              byte_level: bool = True, lowercase: bool = False, unk: str | None = None
              ) -> TrainedTokenizer:
    """Learn BPE merges from ``corpus`` (deterministic for the same texts in the same order).

    ``vocab_size`` counts every id, specials included (what the LM's embedding table needs).
    ``pad``/``bos``/``eos`` name the specials playing those roles (default: the first three of
    ``specials``, in that order; ``bos``/``eos`` may be left out by passing "" ).

    ``byte_level=True`` (GPT-2's scheme): the base symbols are the 256 bytes, so any text in any
    language encodes with no unknown token and decodes back exactly; the specials follow the text
    vocabulary. ``byte_level=False``: the base symbols are the characters the corpus contains, text
    is split on whitespace and punctuation first, and ``unk`` (one of ``specials``) stands for an
    unseen character; the specials come first (ids 0, 1, ...). Smaller for a tiny closed corpus
    (the policy's instructions: under 100 ids), useless for open text.
    ``lowercase``: NFKC then lower-case before anything, so "Pick up the RED cube" and "pick up the
    red cube" agree.
    """
    from tokenizers import Tokenizer as Backend, decoders, models, normalizers, pre_tokenizers, trainers

    specials = list(specials)
    pad, bos, eos = _roles(specials, pad, bos, eos)
    texts = [t for t in corpus if t]
    if byte_level:
        text_vocab = vocab_size - len(specials)
        if text_vocab <= 256:
            raise PerceptionError(f"a byte-level BPE vocabulary needs more than 256 + {len(specials)} "
                                  f"specials entries, got {vocab_size}")
        backend = Backend(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=text_vocab, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        if unk not in specials:
            raise PerceptionError("a character-level BPE needs an unknown token among its specials")
        if not texts:
            raise PerceptionError("cannot train a tokenizer on an empty corpus")
        backend = Backend(models.BPE(unk_token=unk))
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                         pre_tokenizers.Punctuation()])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      show_progress=False)
    if lowercase:
        backend.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    backend.train_from_iterator(texts, trainer=trainer)
    if byte_level:
        _append_specials(backend, specials)
    return TrainedTokenizer(backend, "bpe", pad, bos, eos)


def byte_tokenizer(specials: Sequence[str] = ("<pad>", "<bos>", "<eos>"), *, pad: str | None = None,
                   bos: str | None = None, eos: str | None = None) -> TrainedTokenizer:
    """Every UTF-8 byte is a token and its id is the byte's value (0..255); specials follow.
    Byte-level BPE with no merges: nothing to train, nothing unknown."""
    from tokenizers import Tokenizer as Backend, decoders, models, pre_tokenizers

    specials = list(specials)
    backend = Backend(models.BPE(vocab={c: b for b, c in _byte_to_unicode().items()}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    _append_specials(backend, specials)
    return TrainedTokenizer(backend, "byte", *_roles(specials, pad, bos, eos))


def word_tokenizer(words: Iterable[str]) -> TrainedTokenizer:
    """Lower-case words (runs of ``[a-z0-9]``) -> ids: ``[PAD]`` 0, ``[UNK]`` 1, then ``words`` in
    the order given. The CLIP-style encoder's captions come from a small closed vocabulary and it
    reads a bag of words, so whole words are the right unit there."""
    from tokenizers import Regex, Tokenizer as Backend, models, normalizers, pre_tokenizers

    vocab = {t: i for i, t in enumerate(WORD_SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    backend = Backend(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("[a-z0-9]+"), behavior="removed", invert=True)
    backend.add_special_tokens(list(WORD_SPECIALS))
    return TrainedTokenizer(backend, "word", "[PAD]")


def words_of(texts: Iterable[str]) -> list[str]:
    """The sorted distinct words of ``texts``, as :func:`word_tokenizer` splits them."""
    backend = word_tokenizer([]).backend
    return sorted({w for t in texts
                   for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(t))})


def truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """At most ``max_bytes`` UTF-8 bytes of ``text``, never splitting a character; returns (text,
    truncated). Budgets in bytes mean the same thing whatever the tokenizer."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode("utf-8", errors="ignore"), True


# --- loading ------------------------------------------------------------------------------------
def load_tokenizer(directory: str | Path) -> Tokenizer:
    """The tokenizer saved in ``directory``, in this module's format or a legacy one."""
    directory = Path(directory)
    meta_path, path = directory / META_NAME, directory / FILE_NAME
    if meta_path.is_file():
        meta = _read_json(meta_path)
        if meta.get("kind") == "hf":
            return PretrainedTokenizer.load(directory)
        if meta.get("kind") not in ("bpe", "byte", "word"):
            raise PerceptionError(f"{meta_path}: unknown tokenizer kind {meta.get('kind')!r}")
        return TrainedTokenizer(_backend_from_file(path), meta["kind"], meta["pad"],
                                meta.get("bos"), meta.get("eos"))
    if (directory / "tokenizer_config.json").is_file():  # legacy policy: a pretrained LM's own
        return PretrainedTokenizer.load(directory)
    if not path.is_file():
        raise PerceptionError(f"no tokenizer in {directory}")
    spec = _read_json(path)
    if "type" in spec:  # legacy video QA: our specials after the text vocabulary
        return _legacy_video_qa(spec, path)
    # legacy policy: a character-level BPE with [PAD] [BOS] [EOS] [UNK] first
    return TrainedTokenizer(_backend_from_file(path), "bpe", "[PAD]", "[BOS]", "[EOS]")


def _legacy_video_qa(spec: dict[str, Any], path: Path) -> TrainedTokenizer:
    from tokenizers import Tokenizer as Backend

    specials = list(spec.get("specials", ()))
    if specials[:3] != ["<pad>", "<bos>", "<eos>"]:
        raise PerceptionError(f"{path}: unexpected specials {specials[:3]}")
    if spec["type"] == "byte":
        return byte_tokenizer(specials)
    if spec["type"] != "bpe":
        raise PerceptionError(f"{path}: unknown tokenizer type {spec['type']!r}")
    backend = Backend.from_str(json.dumps(spec["bpe"]))
    _append_specials(backend, specials)
    return TrainedTokenizer(backend, "bpe", "<pad>", "<bos>", "<eos>")


def _append_specials(backend: Any, specials: Sequence[str]) -> None:
    """Add ``specials`` as special tokens right after the current vocabulary, in order."""
    first = backend.get_vocab_size(with_added_tokens=True)
    backend.add_special_tokens(list(specials))
    got = [backend.token_to_id(s) for s in specials]
    if got != list(range(first, first + len(specials))):
        raise PerceptionError(f"a special token is also ordinary text in this vocabulary: {specials}")


def _roles(specials: Sequence[str], pad: str | None, bos: str | None, eos: str | None
           ) -> tuple[str, str | None, str | None]:
    defaults = list(specials[:3]) + [None] * 3
    pad = pad or defaults[0]
    bos = defaults[1] if bos is None else bos or None
    eos = defaults[2] if eos is None else eos or None
    for role in (pad, bos, eos):
        if role is not None and role not in specials:
            raise PerceptionError(f"{role!r} is not one of the specials {list(specials)}")
    if pad is None:
        raise PerceptionError("a tokenizer needs a padding special")
    return pad, bos, eos


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, the alphabet byte-level BPE works in."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + i) for i, b in enumerate(extra)}}


def _backend_from_file(path: Path) -> Any:
    from tokenizers import Tokenizer as Backend

    if not path.is_file():
        raise PerceptionError(f"no {FILE_NAME} in {path.parent}")
    try:
        return Backend.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own exception types
        raise PerceptionError(f"cannot read {path}: {exc}") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PerceptionError(f"{path} is not valid JSON: {exc}") from None
