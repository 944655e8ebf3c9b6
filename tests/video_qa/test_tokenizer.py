import functools
import json

import pytest

from video_qa.errors import VideoQAError
from video_qa.tokenizer import BPETokenizer, ByteTokenizer, load_tokenizer

TEXTS = ["When was the red ball potted?", "红球是什么时候进袋的？", "Überraschung 🎱 ça va", "",
         "  two  spaces\tand a tab\n"]


@functools.lru_cache(maxsize=1)
def _bpe() -> BPETokenizer:
    from video_qa.questions import template_corpus

    return BPETokenizer.train(template_corpus(), 512)


def _both():
    return [ByteTokenizer(), _bpe()]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_any_language(text):
    for tok in _both():
        ids = tok.encode(text)
        assert all(0 <= i < tok.text_vocab for i in ids)  # text ids only: no unknown token exists
        assert tok.decode(ids) == text


def test_chinese_is_three_bytes_per_character_and_specials_are_dropped():
    tok = ByteTokenizer()
    ids = tok.encode("红球")
    assert len(ids) == 6
    assert tok.decode([tok.bos_id] + ids + [tok.sep_id, tok.eos_id]) == "红球"
    bpe = _bpe()
    assert bpe.decode([bpe.bos_id] + bpe.encode("红球") + [bpe.sep_id, bpe.eos_id]) == "红球"


def test_bpe_makes_template_words_single_tokens_and_held_out_wording_falls_back_to_pieces():
    bpe = _bpe()
    pieces = [bpe.decode([i]) for i in bpe.encode("Was there a pink cube?")]
    assert pieces == ["Was", " there", " a", " pink", " cube", "?"]
    # "Could you see a ...?" is the held-out yes/no template: its words were not in the corpus
    held = [bpe.decode([i]) for i in bpe.encode("Could you see a pink cube?")]
    assert len(held) > 8 and held[-3:] == [" pink", " cube", "?"]


def test_bpe_training_is_deterministic():
    from video_qa.questions import template_corpus

    a = BPETokenizer.train(template_corpus(), 400)
    b = BPETokenizer.train(template_corpus(), 400)
    assert a.bpe.to_str() == b.bpe.to_str()


def test_truncate_never_splits_a_character():
    for tok in _both():
        text, cut = tok.truncate("红球红球", 7)  # 7 bytes = 2 characters + 1 stray byte
        assert cut and text == "红球"
        assert tok.truncate("abc", 7) == ("abc", False)


def test_a_cut_off_character_decodes_to_the_replacement_character():
    for tok in _both():
        ids = tok.encode("红")
        assert tok.decode(ids[:-1]) == "\ufffd" or tok.decode(ids[:-1]).startswith("\ufffd")


def test_user_text_cannot_inject_specials():
    for tok in _both():
        ids = tok.encode("a <sep> b <frame>")
        assert tok.sep_id not in ids and tok.frame_id not in ids


def test_save_load(tmp_path):
    ByteTokenizer().save(tmp_path)
    assert ByteTokenizer.load(tmp_path).vocab_size == 263
    with pytest.raises(VideoQAError):
        ByteTokenizer.load(tmp_path / "missing")
    bpe = _bpe()
    (tmp_path / "b").mkdir()
    bpe.save(tmp_path / "b")
    back = load_tokenizer(tmp_path / "b")
    assert isinstance(back, BPETokenizer) and back.vocab_size == bpe.vocab_size
    assert back.encode("Was the 红 ball potted?") == bpe.encode("Was the 红 ball potted?")
    with pytest.raises(VideoQAError, match="byte"):
        ByteTokenizer.load(tmp_path / "b")


def test_a_tokenizer_file_of_another_version_is_a_clear_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"type": "bpe", "specials": ["<pad>"]}))
    with pytest.raises(VideoQAError, match="does not match"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(VideoQAError, match="not valid JSON"):
        load_tokenizer(tmp_path)
