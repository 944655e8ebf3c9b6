"""Instruction text -> token ids: a small BPE we train on the instruction corpus, or a pretrained
LM's own tokenizer loaded from its directory. Both are saved beside the checkpoint weights.

Ids 0-3 of our own tokenizer are PAD, BOS, EOS and UNK. Instructions are lower-cased and split on
whitespace and punctuation first, so "Pick up the RED cube." and "pick up the red cube" agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from policy.errors import PolicyError

SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")


class TextTokenizer:
    """A uniform face over a `tokenizers.Tokenizer` (ours) or a transformers tokenizer (pretrained)."""

    def __init__(self, backend, kind: str) -> None:
        self.backend = backend
        self.kind = kind  # "bpe" (ours) or "hf" (a pretrained LM's)
        if kind == "bpe":
            self.pad_id = backend.token_to_id("[PAD]")
            self.bos_id = backend.token_to_id("[BOS]")
            self.vocab_size = backend.get_vocab_size()
        else:
            self.vocab_size = len(backend)
            self.bos_id = backend.bos_token_id
            pad = backend.pad_token_id
            self.pad_id = pad if pad is not None else (backend.eos_token_id or 0)

    @classmethod
    def train(cls, corpus: Iterable[str], vocab_size: int = 512) -> "TextTokenizer":
        """Fit a byte-pair encoding on the instructions (a few hundred merges suffice)."""
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                     pre_tokenizers.Punctuation()])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                      show_progress=False)
        texts = [t for t in corpus if t]
        if not texts:
            raise PolicyError("cannot train a tokenizer on an empty instruction corpus")
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, "bpe")

    @classmethod
    def from_hf(cls, path: str | Path) -> "TextTokenizer":
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(str(path)), "hf")
        except (OSError, ValueError) as exc:
            raise PolicyError(f"cannot load the tokenizer of {path}: {exc}") from exc

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` preceded by BOS (when the tokenizer has one)."""
        if self.kind == "bpe":
            ids = self.backend.encode(text).ids
        else:
            ids = self.backend(text, add_special_tokens=False)["input_ids"]
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.kind == "bpe":
            self.backend.save(str(directory / "tokenizer.json"))
        else:
            self.backend.save_pretrained(str(directory))

    @classmethod
    def load(cls, directory: str | Path) -> "TextTokenizer":
        directory = Path(directory)
        if (directory / "tokenizer_config.json").is_file():
            return cls.from_hf(directory)
        if not (directory / "tokenizer.json").is_file():
            raise PolicyError(f"no tokenizer in {directory}")
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(directory / "tokenizer.json")), "bpe")
