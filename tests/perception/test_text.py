"""perception.text: one tokenizer interface, one save format, and the shipped checkpoints' older
formats read back with the ids their models were trained with."""

import json
from pathlib import Path

import pytest

from perception.errors import PerceptionError
from perception.text import (META_NAME, PretrainedTokenizer, TrainedTokenizer, byte_tokenizer,
                             load_tokenizer, train_bpe, truncate_utf8, word_tokenizer, words_of)

CHECKPOINTS = Path(__file__).parents[2] / "checkpoints"
QA_SPECIALS = ("<pad>", "<bos>", "<eos>", "<frame>", "<time>", "<sep>", "<text>")
CORPUS = ["pick up the red cube", "touch the blue cylinder", "is the red cube left of the bowl?",
          "how many objects are on the table?"] * 4
TEXTS = ["pick up the red cube", "Was the PINK ball potted?", "中文 é 🙂", "a <sep> b [PAD]", ""]


def test_byte_level_bpe_round_trips_any_text_and_keeps_specials_out_of_text(tmp_path):
    tok = train_bpe(CORPUS, 300, QA_SPECIALS)
    assert tok.vocab_size == 300 and tok.kind == "bpe"
    assert [tok.pad_id, tok.bos_id, tok.eos_id] == [293, 294, 295]  # after the 293 text ids
    assert tok.token_id("<frame>") == 296
    for text in TEXTS:
        ids = tok.encode(text)
        assert all(0 <= i < 293 for i in ids)  # text ids only: "<sep>" typed in text stays text
        assert tok.decode(ids) == text
    assert len(tok.encode(" red cube")) < len(" red cube")  # merges learned from the corpus
    assert tok.decode(tok.encode("red") + [tok.eos_id, tok.token_id("<sep>"), 10_000, -1]) == "red"
    with pytest.raises(PerceptionError, match="no special"):
        tok.token_id("<nope>")
    with pytest.raises(PerceptionError, match="more than 256"):
        train_bpe(CORPUS, 258, QA_SPECIALS)


@pytest.mark.parametrize("make", [
    lambda: train_bpe(CORPUS, 300, QA_SPECIALS),
    lambda: train_bpe(CORPUS, 60, ("[PAD]", "[BOS]", "[EOS]", "[UNK]"), byte_level=False,
                      lowercase=True, unk="[UNK]"),
    lambda: byte_tokenizer(QA_SPECIALS),
    lambda: word_tokenizer(words_of(CORPUS)),
])
def test_save_load_round_trip(tmp_path, make):
    tok = make()
    tok.save(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == sorted([META_NAME, "tokenizer.json"])
    again = load_tokenizer(tmp_path / "tok")
    assert isinstance(again, TrainedTokenizer) and again.kind == tok.kind
    assert (again.vocab_size, again.pad_id, again.bos_id, again.eos_id, again.specials) == \
        (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, tok.specials)
    for text in TEXTS + CORPUS[:4]:
        assert again.encode(text) == tok.encode(text)
        assert again.decode(tok.encode(text)) == tok.decode(tok.encode(text))


def test_character_level_bpe_lower_cases_and_knows_an_unknown_token():
    tok = train_bpe(CORPUS, 60, ("[PAD]", "[BOS]", "[EOS]", "[UNK]"), byte_level=False,
                    lowercase=True, unk="[UNK]")
    assert [tok.pad_id, tok.bos_id, tok.eos_id, tok.token_id("[UNK]")] == [0, 1, 2, 3]
    assert tok.vocab_size <= 60
    assert tok.encode("Pick up the RED cube") == tok.encode("pick up the red cube")
    assert tok.encode("x")[-1] == 3  # "x" is not in the corpus
    with pytest.raises(PerceptionError, match="unknown token"):
        train_bpe(CORPUS, 60, ("[PAD]",), byte_level=False)


def test_byte_tokenizer_ids_are_the_bytes():
    tok = byte_tokenizer(QA_SPECIALS)
    assert tok.vocab_size == 263 and tok.kind == "byte"
    assert tok.encode("hé中") == list("hé中".encode("utf-8"))
    assert tok.decode([104, 195, 169, 256, 300]) == "hé"  # specials and unknown ids dropped
    assert tok.decode(list("中".encode())[:2]) == "\ufffd"  # a cut-off character


def test_word_tokenizer_reads_lower_case_words():
    words = words_of(["A red-cube, on the LEFT!", "balls rolling x9"])
    assert words == ["a", "balls", "cube", "left", "on", "red", "rolling", "the", "x9"]
    tok = word_tokenizer(words)
    assert (tok.pad_id, tok.token_id("[UNK]"), tok.vocab_size) == (0, 1, 11)
    assert tok.encode("The RED cube, pink!") == [9, 7, 4, 1]
    assert tok.bos_id is None and tok.eos_id is None


def test_truncate_utf8_never_splits_a_character():
    assert truncate_utf8("abc", 3) == ("abc", False)
    assert truncate_utf8("a中b", 3) == ("a", True)  # 中 is three bytes: it does not fit whole
    assert truncate_utf8("a中b", 4) == ("a中", True)


def test_shipped_video_qa_tokenizer_gives_its_trained_ids():
    """The previous video-QA default's tokenizer.json (kept in tests/fixtures when the default
    moved to the shared format): {"type": "bpe", "specials", "bpe"}; the ids below are what it was
    trained with. The new default extends it by one special, <q>, and keeps every old id."""
    shipped = load_tokenizer(CHECKPOINTS / "videoqa-default")
    assert shipped.vocab_size == 520 and shipped.token_id("<q>") == 519
    assert shipped.encode("pink") == [79, 327]
    tok = load_tokenizer(Path(__file__).parents[1] / "fixtures" / "legacy_videoqa_tokenizer")
    assert tok.kind == "bpe" and tok.vocab_size == 519
    assert [tok.token_id(s) for s in QA_SPECIALS] == list(range(512, 519))
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (512, 513, 514)
    assert tok.encode("is the red cube left of the blue cube?") == [369, 258, 323, 278, 269, 265,
                                                                     258, 324, 278, 30]
    assert tok.encode("1.3s") == [16, 13, 18, 82] and tok.encode("pink") == [79, 327]
    ids = tok.encode("was the red ball potted?") + [tok.token_id("<sep>"), tok.eos_id]
    assert tok.decode(ids) == "was the red ball potted?"


def test_shipped_policy_tokenizer_gives_its_trained_ids():
    """The Reach/PickUp default's tokenizer (kept in tests/fixtures when the default moved to the
    pretrained encoder): its legacy layout still loads with the ids it was trained with."""
    tok = load_tokenizer(Path(__file__).resolve().parents[1] / "fixtures" / "legacy_policy_tokenizer")
    assert tok.kind == "bpe" and tok.vocab_size == 94
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.token_id("[UNK]")) == (0, 1, 2, 3)
    assert tok.encode("Pick up the RED cube.") == [52, 49, 27, 83, 37, 3]


def test_legacy_video_qa_byte_format(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"type": "byte", "specials": list(QA_SPECIALS)}))
    tok = load_tokenizer(tmp_path)
    assert tok.kind == "byte" and tok.encode("ab") == [97, 98] and tok.token_id("<text>") == 262


def _tiny_hf_tokenizer(directory):
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "move", "to", "the", "square"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>",
                                               eos_token="</s>", unk_token="<unk>")
    tok.save_pretrained(directory)


def test_pretrained_tokenizer_from_a_local_directory(tmp_path):
    _tiny_hf_tokenizer(tmp_path / "lm")
    tok = load_tokenizer(tmp_path / "lm")  # a pretrained LM's directory, as the policy's old saves
    assert isinstance(tok, PretrainedTokenizer) and tok.kind == "hf"
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (7, 1, 2, 2)  # EOS pads
    assert tok.encode("move to the square") == [3, 4, 5, 6]
    assert tok.decode([1, 3, 4, 2]) == "move to"
    assert tok.token_id("</s>") == 2
    tok.save(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    assert isinstance(again, PretrainedTokenizer)
    assert again.encode("move to the square") == [3, 4, 5, 6]
    assert json.loads((tmp_path / "saved" / META_NAME).read_text())["kind"] == "hf"


def test_missing_or_broken_tokenizers_are_one_line_errors(tmp_path):
    with pytest.raises(PerceptionError, match="no tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(PerceptionError, match="not valid JSON"):
        load_tokenizer(tmp_path)
    with pytest.raises(PerceptionError, match="cannot load the tokenizer"):
        PretrainedTokenizer.load(tmp_path / "nowhere")
