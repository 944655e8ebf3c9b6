import numpy as np
import pytest
import torch

from policy.errors import PolicyError
from policy.modeling_vla import VLAModel
from policy.executor import ChunkExecutor
from policy.predict import Policy
from policy_helpers import SIZE, STATE_DIM, SyntheticDataset, image_with_square, tiny_config


def _model(**overrides) -> VLAModel:
    torch.manual_seed(0)
    ds = SyntheticDataset(num_episodes=2, length=3)
    return VLAModel.build(tiny_config(**overrides), ds.stats["action"], ds.tasks,
                          {"mean": [0.0] * STATE_DIM, "std": [1.0] * STATE_DIM}).eval()


def _obs(left: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    img = image_with_square(left, rng)
    return {"agentview": img, "wrist": img[::-1].copy(), "state": np.zeros(STATE_DIM, np.float32)}


def test_decoding_paths_agree():
    model = _model(decoding="autoregressive")
    policy = Policy(model)
    obs = [_obs(True), _obs(False, 1)]
    from perception.image import to_tensor
    from policy.processor import encode_instructions, observations_to_arrays

    imgs = to_tensor(observations_to_arrays(obs, ["agentview", "wrist"], SIZE, 32))
    ids, mask = encode_instructions(["move to the square", "go"], model.text_tokenizer, 8)
    prefix, pmask = model.embed_prefix(imgs, ids, mask, torch.zeros(2, STATE_DIM))
    n = model.cfg.num_action_tokens
    cached = model.decode_autoregressive(prefix, pmask, n)
    uncached = model.decode_autoregressive(prefix, pmask, n, use_cache=False)
    generated = model.decode_hf_generate(prefix, pmask, n)
    assert torch.equal(cached, uncached) and torch.equal(cached, generated)
    # batched == one at a time (left padding must not change the answer)
    single = policy.predict_chunk([obs[1]], ["go"])[0]
    assert np.allclose(policy.predict_chunk(obs, ["move to the square", "go"])[1], single,
                       atol=1e-6)


@pytest.mark.parametrize("overrides", [{}, {"lm_family": "qwen2", "action_head": "l1"},
                                       {"vision_family": "siglip+dinov2", "decoding": "autoregressive"}])
def test_save_load_same_predictions(tmp_path, overrides):
    model = _model(**overrides)
    before = Policy(model).predict_chunk([_obs(True)], ["move to the square"])
    model.save_pretrained(tmp_path / "ckpt")
    assert not list(tmp_path.glob(".ckpt.tmp-*"))  # nothing half-written left behind
    after = Policy.from_pretrained(tmp_path / "ckpt").predict_chunk([_obs(True)], ["move to the square"])
    assert before.shape == (1, 2, 7) and before.dtype == np.float32
    assert np.array_equal(before, after)


def test_missing_checkpoint_files_are_one_line_errors(tmp_path):
    _model().save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "stats.json").unlink()
    with pytest.raises(PolicyError, match="missing stats.json"):
        VLAModel.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(PolicyError, match="does not exist"):
        VLAModel.from_pretrained(tmp_path / "nowhere")


def test_bad_inputs_raise_policy_errors():
    policy = Policy(_model())
    obs = _obs(True)
    with pytest.raises(PolicyError, match="empty"):
        policy.predict_chunk([obs], ["   "])
    with pytest.raises(PolicyError, match="uint8"):
        policy.predict_chunk([{**obs, "agentview": obs["agentview"].astype(np.float32)}], ["go"])
    with pytest.raises(PolicyError, match="shape"):
        policy.predict_chunk([{**obs, "agentview": np.zeros((SIZE + 1, SIZE, 3), np.uint8)}], ["go"])
    with pytest.raises(PolicyError, match="lacks camera"):
        policy.predict_chunk([{"agentview": obs["agentview"], "state": obs["state"]}], ["go"])


def test_open_loop_chunk_and_ensemble_execution():
    model = _model()
    policy = Policy(model)
    chunk = policy.predict_chunk([_obs(True)], ["go"])[0]
    open_loop = ChunkExecutor(policy)
    first = open_loop.act([_obs(True)], ["go"])[0]
    second = open_loop.act([_obs(False)], ["go"])[0]
    assert np.allclose(first, chunk[0]) and np.allclose(second, chunk[1])  # second from the queue
    ens = ChunkExecutor(policy, execution="ensemble")
    a0 = ens.act([_obs(True)], ["go"])[0]
    a1 = ens.act([_obs(False)], ["go"])[0]
    c_new = policy.predict_chunk([_obs(False)], ["go"])[0]
    w = np.exp(-0.1 * np.arange(2))
    expect = (chunk[1] * w[0] + c_new[0] * w[1]) / w.sum()
    assert np.allclose(a0, chunk[0])
    assert np.allclose(a1[:6], expect[:6], atol=1e-6)


def test_replan_plays_only_the_first_actions_of_each_chunk(tmp_path):
    model = _model()  # chunk of 2
    replan = Policy(model, replan=1)
    executor = ChunkExecutor(replan)
    first = executor.act([_obs(True)], ["go"])[0]
    second = executor.act([_obs(False)], ["go"])[0]  # re-predicted from the new image, not queued
    assert np.allclose(first, replan.predict_chunk([_obs(True)], ["go"])[0, 0])
    assert np.allclose(second, replan.predict_chunk([_obs(False)], ["go"])[0, 0])
    assert not np.allclose(second, replan.predict_chunk([_obs(True)], ["go"])[0, 1])
    with pytest.raises(PolicyError, match="replan"):
        Policy(model, replan=3)
    # the checkpoint's own setting is the default, and survives save/load
    saved = _model(replan=1)
    assert Policy(saved).replan == 1 and Policy(saved, replan=0).replan == 2
    saved.save_pretrained(tmp_path / "ckpt")
    assert Policy.from_pretrained(tmp_path / "ckpt").replan == 1


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_pretrained_lm_from_local_dir(tmp_path, family):
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    # A tiny "pretrained" LM and its tokenizer, written the way a hub download looks on disk.
    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "move", "to", "the", "square"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>",
                                               eos_token="</s>", unk_token="<unk>")
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config}[family]
    cfg = cls(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
              num_attention_heads=2, num_key_value_heads=2)
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    model = _model(lm_path=str(tmp_path / "lm"))
    assert model.lm.config.model_type == family
    assert model.action_offset == model.text_tokenizer.vocab_size >= len(vocab)
    assert model.lm.get_input_embeddings().weight.shape[0] == model.action_offset + 256
    before = Policy(model).predict_chunk([_obs(True)], ["move to the square"])
    model.save_pretrained(tmp_path / "ckpt")
    again = Policy.from_pretrained(tmp_path / "ckpt")
    assert again.model.text_tokenizer.kind == "hf"
    assert np.array_equal(before, again.predict_chunk([_obs(True)], ["move to the square"]))


def test_a_policy_checkpoint_lends_its_vision_tower(tmp_path):
    """perception.encoders.load_vision_encoder reads the trained tower out of a policy checkpoint
    (so video QA can start from it), learned cell positions included."""
    from perception.encoders import load_vision_encoder

    model = _model(state_dim=0, use_state=False)
    with torch.no_grad():
        model.vision.backbones[0].pos_embed.normal_()
    model.save_pretrained(tmp_path / "policy")
    encoder = load_vision_encoder(tmp_path / "policy").eval()
    x = torch.rand(2, 3, encoder.image_size, encoder.image_size)
    with torch.no_grad():
        assert torch.equal(encoder(x), model.vision(x))


def test_shipped_tokenizer_loads_with_its_ids():
    """The previous default checkpoint's tokenizer (the format before perception.text; kept in
    tests/fixtures/legacy_policy_tokenizer) gives the ids it was trained with: BOS first, "."
    unseen in training -> [UNK], lower-cased."""
    from pathlib import Path

    from perception.text import load_tokenizer
    from policy.processor import encode_instructions

    tok = load_tokenizer(Path(__file__).parents[1] / "fixtures" / "legacy_policy_tokenizer")
    ids, mask = encode_instructions(["Pick up the RED cube."], tok, 8)
    assert ids.tolist() == [[0, 1, 52, 49, 27, 83, 37, 3]] and mask.tolist() == [[0] + [1] * 7]
    same, _ = encode_instructions(["pick up the red cube."], tok, 8)
    assert torch.equal(ids, same)


def test_new_checkpoints_save_the_tokenizer_in_the_shared_format(tmp_path):
    from perception.text import META_NAME, load_tokenizer

    model = _model()
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "tokenizer" / META_NAME).is_file()
    again = load_tokenizer(tmp_path / "ckpt" / "tokenizer")
    text = "move to the square"
    assert again.encode(text) == model.text_tokenizer.encode(text) != []
    assert (again.pad_id, again.bos_id, again.vocab_size) == (0, 1, model.action_offset)
