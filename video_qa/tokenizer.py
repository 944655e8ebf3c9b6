"""Tokenizers for the VideoLM: plain bytes, or byte-level BPE. Both round-trip any language.

``ByteTokenizer``: every UTF-8 byte is a token (ids 0..255), plus a few specials. No vocabulary
file; a Chinese character is three tokens.

``BPETokenizer``: byte-level BPE (GPT-2's scheme, through the ``tokenizers`` library): the base
symbols are the 256 bytes, so any text encodes with no unknown token and decodes back exactly;
merges learned from the question templates make "pink", " cube" or " potted" one token each.
Why it is the default: a tiny LM trained from scratch on bytes must first learn to spell names out
of letters before it can look them up in the frames, and within a CPU budget it did not (with
ground-truth frame facts as input, yes/no and spatial questions stayed at chance with bytes; see
video_qa/README.md). Words it never saw (other languages, held-out phrasings) fall back to
smaller pieces down to single bytes.

Specials (``<pad> <bos> <eos> <frame> <time> <sep> <text>``) take the ids after the text
vocabulary and are never produced by ``encode``: a literal "<sep>" in user text stays text.
``<frame>`` is a placeholder whose embedding the model replaces with one visual token; ``<time>``
opens a time marker ("<time>1.3s"); ``<sep>`` ends a frame's block, the question and the prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from video_qa.errors import VideoQAError

SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<frame>", "<time>", "<sep>", "<text>")
FILE_NAME = "tokenizer.json"


class _Base:
    """Special ids after ``text_vocab`` text ids, byte-based truncation."""

    def __init__(self, text_vocab: int) -> None:
        self.text_vocab = text_vocab
        self.specials = {name: text_vocab + i for i, name in enumerate(SPECIALS)}
        self.pad_id = self.specials["<pad>"]
        self.bos_id = self.specials["<bos>"]
        self.eos_id = self.specials["<eos>"]
        self.frame_id = self.specials["<frame>"]
        self.time_id = self.specials["<time>"]
        self.sep_id = self.specials["<sep>"]
        self.text_id = self.specials["<text>"]
        self.vocab_size = text_vocab + len(SPECIALS)

    def truncate(self, text: str, max_bytes: int) -> tuple[str, bool]:
        """Keep at most ``max_bytes`` UTF-8 bytes without splitting a character; returns
        (text, truncated). Limits are in bytes whatever the tokenizer, so they mean the same
        thing for every checkpoint."""
        data = text.encode("utf-8")
        if len(data) <= max_bytes:
            return text, False
        return data[:max_bytes].decode("utf-8", errors="ignore"), True


class ByteTokenizer(_Base):
    """``encode(text) -> ids`` over UTF-8 bytes; ``decode(ids) -> text`` skips specials."""

    kind = "byte"

    def __init__(self) -> None:
        super().__init__(256)

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        """Bytes back to text; specials are dropped, a cut-off multi-byte character becomes U+FFFD."""
        data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
        return data.decode("utf-8", errors="replace")

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE_NAME
        path.write_text(json.dumps({"type": "byte", "specials": list(SPECIALS)}, indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "ByteTokenizer":
        tok = load_tokenizer(directory)
        if not isinstance(tok, cls):
            raise VideoQAError(f"{directory}: the tokenizer is {tok.kind}, not byte")
        return tok


class BPETokenizer(_Base):
    """Byte-level BPE over a ``tokenizers.Tokenizer`` that knows no specials (ours follow it)."""

    kind = "bpe"

    def __init__(self, bpe) -> None:  # bpe: tokenizers.Tokenizer
        self.bpe = bpe
        super().__init__(bpe.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        return self.bpe.encode(text).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Specials are dropped; a cut-off multi-byte character becomes U+FFFD."""
        return self.bpe.decode([int(i) for i in ids if 0 <= int(i) < self.text_vocab])

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE_NAME
        path.write_text(json.dumps({"type": "bpe", "specials": list(SPECIALS),
                                    "bpe": json.loads(self.bpe.to_str())}, ensure_ascii=False))
        return path

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 512) -> "BPETokenizer":
        """Learn merges from ``texts`` (deterministic for the same texts in the same order)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise VideoQAError(f"a byte-level BPE vocabulary needs more than 256 entries, got {vocab_size}")
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        bpe.train_from_iterator(texts, trainer)
        return cls(bpe)


Tokenizer = ByteTokenizer | BPETokenizer


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """The tokenizer saved in a checkpoint directory, whichever kind it is."""
    path = Path(directory) / FILE_NAME
    if not path.is_file():
        raise VideoQAError(f"no {FILE_NAME} in {directory}")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VideoQAError(f"{path} is not valid JSON: {exc}") from None
    if tuple(spec.get("specials", ())) != SPECIALS:
        raise VideoQAError(f"{path}: tokenizer does not match this version ({spec.get('type')})")
    if spec.get("type") == "byte":
        return ByteTokenizer()
    if spec.get("type") == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(json.dumps(spec["bpe"])))
    raise VideoQAError(f"{path}: unknown tokenizer type {spec.get('type')!r}")
