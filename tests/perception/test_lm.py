"""perception.lm: a tiny LM from a config, a pretrained one from a directory, a saved architecture
rebuilt, and LoRA adapters that leave only themselves to train."""

import pytest
import torch

from perception.errors import PerceptionError
from perception.lm import LoRA, TinyLM, build_lm, lm_config_dict, merge_lora

TINY = TinyLM(family="llama", hidden=32, layers=2, heads=2)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_tiny_lm_from_a_config(family):
    torch.manual_seed(0)
    lm = build_lm(100, tiny=TinyLM(family=family, hidden=32, layers=2, heads=2, intermediate=48))
    cfg = lm.config
    assert cfg.model_type == family
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
            cfg.num_key_value_heads, cfg.intermediate_size) == (100, 32, 2, 2, 2, 48)
    assert not cfg.tie_word_embeddings  # the output rows are the policy's own action heads
    assert lm.get_input_embeddings().weight.data_ptr() != lm.get_output_embeddings().weight.data_ptr()
    logits = lm(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 100)
    assert build_lm(50, tiny=TINY).config.intermediate_size == 128  # 4 x hidden by default
    with pytest.raises(PerceptionError, match="unknown LM family"):
        build_lm(10, tiny=TinyLM(family="gpt9"))


def test_a_saved_architecture_rebuilds_the_same_model():
    torch.manual_seed(0)
    lm = build_lm(64, tiny=TINY).eval()
    d = lm_config_dict(lm)
    assert "transformers_version" not in d and d["model_type"] == "llama"
    again = build_lm(config=d).eval()
    again.load_state_dict(lm.state_dict())
    ids = torch.tensor([[5, 6, 7, 8]])
    assert torch.equal(again(input_ids=ids).logits, lm(input_ids=ids).logits)
    with pytest.raises(ValueError, match="exactly one"):
        build_lm(64, tiny=TINY, config=d)


def test_lora_trains_only_the_adapters():
    torch.manual_seed(0)
    lm = build_lm(64, tiny=TINY, lora=LoRA(rank=4, alpha=8))
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # all-linear: q, k, v, o and the MLP of both layers, A and B each
    assert len(trainable) == 2 * 7 * 2
    # only some modules, and a new vocabulary's embeddings trained in full beside them
    lm2 = build_lm(64, tiny=TINY, lora=LoRA(rank=4, alpha=16, target_modules=("q_proj", "v_proj"),
                                            modules_to_save=("embed_tokens", "lm_head")))
    names = [n for n, p in lm2.named_parameters() if p.requires_grad]
    assert sum("lora_" in n for n in names) == 2 * 2 * 2
    assert {n for n in names if "lora_" not in n} == {
        "base_model.model.model.embed_tokens.modules_to_save.default.weight",
        "base_model.model.lm_head.modules_to_save.default.weight"}
    assert lm2.peft_config["default"].lora_alpha == 16
    assert build_lm(64, tiny=TINY, lora=LoRA(rank=0)).__class__.__name__ == "LlamaForCausalLM"


def test_merged_adapters_give_the_same_outputs():
    torch.manual_seed(0)
    lm = build_lm(64, tiny=TINY, lora=LoRA(rank=4)).eval()
    with torch.no_grad():  # adapters start as a no-op (B = 0): make them matter
        for n, p in lm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    ids = torch.tensor([[1, 2, 3, 4]])
    before = lm(input_ids=ids).logits
    merged = merge_lora(lm)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids=ids).logits, before, atol=1e-5, rtol=1e-5)
    assert lm_config_dict(lm)["vocab_size"] == 64


def test_pretrained_from_a_local_directory(tmp_path):
    torch.manual_seed(0)
    saved = build_lm(40, tiny=TINY).eval()
    saved.save_pretrained(tmp_path / "lm")
    lm = build_lm(pretrained=tmp_path / "lm").eval()
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    assert torch.equal(lm(input_ids=ids).logits, saved(input_ids=ids).logits)
    # resized for a larger vocabulary (e.g. action tokens after the text): the old rows stay
    grown = build_lm(40 + 6, pretrained=tmp_path / "lm", lora=LoRA(rank=2))
    emb = grown.get_base_model().get_input_embeddings().weight
    assert emb.shape == (46, 32)
    assert torch.equal(emb[:40], saved.get_input_embeddings().weight)
    assert all("lora_" in n for n, p in grown.named_parameters() if p.requires_grad)
    with pytest.raises(PerceptionError, match="cannot load the language model"):
        build_lm(pretrained=tmp_path / "nowhere")
