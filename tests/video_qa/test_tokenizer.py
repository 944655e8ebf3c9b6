import pytest

from video_qa.errors import VideoQAError
from video_qa.tokenizer import ByteTokenizer


@pytest.mark.parametrize("text", ["When was the red ball potted?", "红球是什么时候进袋的？",
                                  "Überraschung 🎱 ça va", ""])
def test_round_trip_any_language(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids)  # bytes only: no unknown token exists
    assert tok.decode(ids) == text


def test_chinese_is_three_bytes_per_character_and_specials_are_dropped():
    tok = ByteTokenizer()
    ids = tok.encode("红球")
    assert len(ids) == 6
    assert tok.decode([tok.bos_id] + ids + [tok.sep_id, tok.eos_id]) == "红球"


def test_truncate_never_splits_a_character():
    tok = ByteTokenizer()
    text, cut = tok.truncate("红球红球", 7)  # 7 bytes = 2 characters + 1 stray byte
    assert cut and text == "红球"
    assert tok.truncate("abc", 7) == ("abc", False)


def test_user_text_cannot_inject_specials():
    tok = ByteTokenizer()
    assert tok.sep_id not in tok.encode("a <sep> b")


def test_save_load(tmp_path):
    ByteTokenizer().save(tmp_path)
    assert ByteTokenizer.load(tmp_path).vocab_size == 263
    with pytest.raises(VideoQAError):
        ByteTokenizer.load(tmp_path / "missing")
