"""Video QA's text through perception.text: the specials, the template-trained BPE (the one the
shipped checkpoint was trained with), prompts user text cannot inject into, and checkpoints that
save the tokenizer in the shared format and still read the older one."""

import functools
import json
from pathlib import Path

import pytest

from perception.text import META_NAME, load_tokenizer
from tests.video_qa.helpers import tiny_config
from video_qa.modeling_videolm import VideoLM
from video_qa.processor_videolm import SPECIALS, new_tokenizer

SHIPPED = Path(__file__).parents[2] / "checkpoints" / "videoqa-default"
TEXTS = ["When was the red ball potted?", "红球是什么时候进袋的？", "Überraschung 🎱 ça va", "",
         "  two  spaces\tand a tab\n"]


@functools.lru_cache(maxsize=1)
def _bpe():
    return new_tokenizer("bpe", 512)


def test_template_bpe_is_the_one_the_shipped_checkpoint_was_trained_with():
    """Retraining from the templates gives the shipped vocabulary and merges exactly, so a model
    trained today speaks the same ids as the one in checkpoints/."""
    bpe, shipped = _bpe(), load_tokenizer(SHIPPED)
    model = json.loads(bpe.backend.to_str())["model"]
    shipped_model = json.loads(shipped.backend.to_str())["model"]
    assert model["merges"] == shipped_model["merges"] and model["vocab"] == shipped_model["vocab"]
    assert bpe.vocab_size == 519
    assert [bpe.token_id(s) for s in SPECIALS] == list(range(512, 519))
    assert (bpe.pad_id, bpe.bos_id, bpe.eos_id) == (512, 513, 514)
    for text in TEXTS:
        assert bpe.encode(text) == shipped.encode(text)


@pytest.mark.parametrize("kind", ["byte", "bpe"])
@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_any_language(kind, text):
    tok = new_tokenizer(kind, 512) if kind == "byte" else _bpe()
    ids = tok.encode(text)
    assert all(0 <= i < tok.pad_id for i in ids)  # text ids only: no unknown token exists
    assert tok.decode(ids) == text


def test_byte_ids_are_the_utf8_bytes_and_specials_follow():
    tok = new_tokenizer("byte", 512)
    assert tok.encode("红球") == list("红球".encode("utf-8"))
    assert [tok.token_id(s) for s in SPECIALS] == list(range(256, 263)) and tok.vocab_size == 263
    assert tok.decode([tok.bos_id] + tok.encode("红球") + [tok.token_id("<sep>"), tok.eos_id]) == "红球"


def test_bpe_makes_template_words_single_tokens_and_held_out_wording_falls_back_to_pieces():
    bpe = _bpe()
    pieces = [bpe.decode([i]) for i in bpe.encode("Was there a pink cube?")]
    assert pieces == ["Was", " there", " a", " pink", " cube", "?"]
    # "Could you see a ...?" is the held-out yes/no template: its words were not in the corpus
    held = [bpe.decode([i]) for i in bpe.encode("Could you see a pink cube?")]
    assert len(held) > 8 and held[-3:] == [" pink", " cube", "?"]


def test_prompts_user_text_cannot_inject_specials_into():
    model = VideoLM(tiny_config(tokenizer="byte", max_question_bytes=7, text_encoder="none"))
    tok = model.tokenizer
    sep, frame = tok.token_id("<sep>"), tok.token_id("<frame>")
    ids = model.question_ids("<sep><frame>")  # 12 bytes, cut to 7: "<sep><f"
    assert ids == tok.encode("<sep><f") + [sep] and frame not in ids
    assert model.question_ids("红球红球") == tok.encode("红球") + [sep]  # 7 bytes: no half character
    prefix = model.prefix_ids([0.0, 1.25], ["<sep>", ""])
    assert prefix.count(frame) == 2 * model.cfg.tokens_per_frame and prefix.count(sep) == 2
    assert prefix[:2] == [tok.bos_id, tok.token_id("<time>")] and tok.decode(prefix) == "0.0s<sep>1.2s"
    # read by the pretrained encoder, the question is only <q> slots: its text never becomes ids
    read = VideoLM(tiny_config(tokenizer="byte", max_question_bytes=7, text_encoder="minilm"))
    q_ids = read.question_ids("<sep><frame>")
    assert set(q_ids[:-1]) == {read.tokenizer.token_id("<q>")} and q_ids[-1] == read.tokenizer.token_id("<sep>")
    assert read.question_states("<sep><frame>").shape == (len(q_ids) - 1, 384)


def test_checkpoints_save_the_shared_format_and_read_the_older_one(tmp_path):
    model = VideoLM(tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / META_NAME).read_text())
    assert meta["kind"] == "bpe" and meta["specials"] == [*SPECIALS, "<q>"]  # <q>: the encoder's slots
    again = VideoLM.from_pretrained(tmp_path / "ckpt").tokenizer
    assert again.encode(TEXTS[1]) == model.tokenizer.encode(TEXTS[1]) != []
    assert [again.token_id(s) for s in SPECIALS] == [model.tokenizer.token_id(s) for s in SPECIALS]
    # the previous default predates the shared format: {"type": "bpe", "specials", "bpe"}
    legacy = Path(__file__).parents[1] / "fixtures" / "legacy_videoqa_tokenizer"
    assert not (legacy / META_NAME).exists()
    assert load_tokenizer(legacy).encode("pink") == [79, 327] == load_tokenizer(SHIPPED).encode("pink")
