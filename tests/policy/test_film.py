"""Instruction FiLM in the vision tower: identity at the start, text-dependent once trained."""

import numpy as np
import pytest
import torch

from perception.image import to_tensor
from policy.errors import PolicyError
from policy.modeling_vla import VLAModel
from policy.predict import Policy
from policy.processor import encode_instructions, observations_to_arrays
from policy.train import TrainConfig, train
from policy_helpers import SIZE, STATE_DIM, SyntheticDataset, image_with_square, tiny_config

TEXTS = ["move to the square", "go towards the white block"]


def _model(**overrides) -> VLAModel:
    torch.manual_seed(0)
    ds = SyntheticDataset(num_episodes=2, length=3)
    return VLAModel.build(tiny_config(**overrides), ds.stats["action"], ds.tasks,
                          {"mean": [0.0] * STATE_DIM, "std": [1.0] * STATE_DIM}).eval()


def _image_tokens(model: VLAModel, texts: list[str]) -> torch.Tensor:
    """The prefix's image-token part for one image under each instruction."""
    img = image_with_square(True, np.random.default_rng(0))
    obs = [{"agentview": img, "wrist": img, "state": np.zeros(STATE_DIM, np.float32)}] * len(texts)
    imgs = to_tensor(observations_to_arrays(obs, ["agentview", "wrist"], SIZE, 32))
    ids, mask = encode_instructions(texts, model.text_tokenizer, 8)
    with torch.no_grad():
        prefix, _ = model.embed_prefix(imgs, ids, mask, torch.zeros(len(texts), STATE_DIM))
    return prefix[:, ids.shape[1]:-1]  # drop the text tokens and the state token


def _randomise(film: torch.nn.ModuleList) -> None:
    with torch.no_grad():
        for gen in film:
            gen.weight.normal_(0.0, 0.5)
            gen.bias.normal_(0.0, 0.5)


def test_added_film_is_the_identity_until_trained():
    model = _model()
    before = _image_tokens(model, TEXTS)
    # without FiLM the instruction cannot reach the image tokens
    assert torch.equal(before[0], before[1])
    model.add_film()
    assert model.cfg.film and len(model.film) == len(model.vision.stage_widths)
    assert torch.equal(_image_tokens(model, TEXTS), before)
    _randomise(model.film)
    after = _image_tokens(model, TEXTS)
    assert not torch.allclose(after[0], after[1], atol=1e-4)  # the tower now reads the text
    assert not torch.allclose(after[0], before[0], atol=1e-4)


def test_film_round_trips_through_save_pretrained(tmp_path):
    model = _model(film=True)
    _randomise(model.film)
    img = image_with_square(False, np.random.default_rng(1))
    obs = {"agentview": img, "wrist": img, "state": np.zeros(STATE_DIM, np.float32)}
    before = Policy(model).predict_chunk([obs], [TEXTS[0]])
    model.save_pretrained(tmp_path / "ckpt")
    loaded = Policy.from_pretrained(tmp_path / "ckpt")
    assert loaded.cfg.film
    assert np.array_equal(loaded.predict_chunk([obs], [TEXTS[0]]), before)


def test_film_needs_a_convolutional_tower():
    with pytest.raises(PolicyError, match="convolutional"):
        _model(vision_family="vit", film=True)


def test_fine_tuning_with_film_adds_it_to_a_checkpoint_and_trains_it(tmp_path):
    ds = SyntheticDataset(num_episodes=2, length=3)
    common = dict(batch_size=4, log_every=2, lr=2e-3, warmup_steps=1, seed=3, save_every=100)
    base = train(TrainConfig(out=str(tmp_path / "base"), steps=2, **common), tiny_config(), ds)
    assert VLAModel.from_pretrained(base).film is None
    tuned = train(TrainConfig(out=str(tmp_path / "ft"), steps=3, init=str(base), **common),
                  tiny_config(film=True), ds)
    model = VLAModel.from_pretrained(tuned)
    assert model.cfg.film
    assert any(gen.weight.abs().sum() > 0 for gen in model.film)  # left the zero start
