"""Byte-level tokenizer: every UTF-8 byte is a token, plus a few specials.

Why bytes: any language (Chinese, emoji, accents) round-trips exactly with no unknown token and no
vocabulary file to ship, and a 264-token vocabulary keeps the tiny default LM small. The price is
longer sequences (a Chinese character is three tokens), which is fine for short questions.

Ids 0..255 are the bytes; specials follow. ``<frame>`` is a placeholder whose embedding the model
replaces with one visual token; ``<time>`` opens a time marker ("<time>1.3s"); ``<sep>`` ends a
frame's block, the question and the prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from video_qa.errors import VideoQAError

SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<frame>", "<time>", "<sep>", "<text>")
FILE_NAME = "tokenizer.json"


class ByteTokenizer:
    """``encode(text) -> ids`` over UTF-8 bytes; ``decode(ids) -> text`` skips specials."""

    def __init__(self) -> None:
        self.specials = {name: 256 + i for i, name in enumerate(SPECIALS)}
        self.pad_id = self.specials["<pad>"]
        self.bos_id = self.specials["<bos>"]
        self.eos_id = self.specials["<eos>"]
        self.frame_id = self.specials["<frame>"]
        self.time_id = self.specials["<time>"]
        self.sep_id = self.specials["<sep>"]
        self.text_id = self.specials["<text>"]
        self.vocab_size = 256 + len(SPECIALS)

    def encode(self, text: str) -> list[int]:
        """Plain text only: a literal "<sep>" in user text stays bytes, so users cannot inject specials."""
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        """Bytes back to text; specials are dropped, a cut-off multi-byte character becomes U+FFFD."""
        data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
        return data.decode("utf-8", errors="replace")

    def truncate(self, text: str, max_bytes: int) -> tuple[str, bool]:
        """Keep at most ``max_bytes`` bytes without splitting a character; returns (text, truncated)."""
        data = text.encode("utf-8")
        if len(data) <= max_bytes:
            return text, False
        return data[:max_bytes].decode("utf-8", errors="ignore"), True

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE_NAME
        path.write_text(json.dumps({"type": "byte", "specials": list(SPECIALS)}, indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "ByteTokenizer":
        path = Path(directory) / FILE_NAME
        if not path.is_file():
            raise VideoQAError(f"no {FILE_NAME} in {directory}")
        spec = json.loads(path.read_text())
        if spec.get("type") != "byte" or tuple(spec.get("specials", ())) != SPECIALS:
            raise VideoQAError(f"{path}: tokenizer does not match this version ({spec})")
        return cls()
