"""A local "pretrained" LM (a tiny Llama saved to disk) is fine-tuned with LoRA, and round-trips."""

import numpy as np
import torch
import transformers

from tests.video_qa.helpers import tiny_config
from video_qa.modeling_videolm import VideoLM


def test_pretrained_lm_gets_lora_adapters_and_round_trips(tmp_path):
    torch.manual_seed(0)
    lm = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256))
    lm.save_pretrained(tmp_path / "lm")
    model = VideoLM(tiny_config(lm_path=str(tmp_path / "lm")))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable)
    assert not any("q_proj.base_layer" in n for n in trainable)  # base weights stay frozen
    assert model.lm.get_input_embeddings().num_embeddings == model.tokenizer.vocab_size
    rng = np.random.default_rng(0)
    ex = [{"frames": rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8), "times": [0, 1, 2],
           "question": "q?", "answer": "yes"}]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = model.collate(ex)
    for _ in range(3):
        loss = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VideoLM.from_pretrained(tmp_path / "ckpt")
    args = ([ex[0]["frames"]], [ex[0]["times"]], ["q?"])
    assert loaded.generate(*args) == model.generate(*args)
    for (n, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)
