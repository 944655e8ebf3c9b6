import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from policy.data import StreamSampler, augment
from policy.errors import PolicyError
from policy.modeling_vla import VLAModel
from policy.predict import Policy
from policy.train import TrainConfig, train
from policy_helpers import STATE_DIM, SyntheticDataset, image_with_square, tiny_config


def _cfg(tmp_path, name, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / name), steps=6, batch_size=4, log_every=2, save_every=3,
                lr=2e-3, warmup_steps=2, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_overfit_one_batch_reaches_near_zero_loss():
    from policy.data import load_frames, make_batch
    from policy.processor import encode_instructions

    torch.manual_seed(0)
    ds = SyntheticDataset(num_episodes=2, length=2)
    model = VLAModel.build(tiny_config(), ds.stats["action"], ds.tasks,
                           {"mean": [0.0] * STATE_DIM, "std": [1.0] * STATE_DIM}).train()
    table = load_frames(ds, ["agentview", "wrist"], 32, 2)
    ids, mask = encode_instructions(table.instructions, model.text_tokenizer, 8)
    batch = make_batch(table, np.arange(4), ids, mask, model.action_tokenizer, model.state_stats)
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(100):
        out = model(batch["images"], batch["text_ids"], batch["text_mask"], batch["state"],
                    batch["target_bins"])
        optim.zero_grad()
        out["loss"].backward()
        optim.step()
        first = first if first is not None else out["loss"].item()
    assert first > 3.0
    assert out["loss"].item() < 0.05 and out["accuracy"].item() == 1.0


def test_trained_policy_looks_at_the_image(tmp_path):
    """openvla #346: a model that ignores the image emits one action whatever it sees."""
    ds = SyntheticDataset(num_episodes=4, length=4)
    ckpt = train(_cfg(tmp_path, "run", steps=150, batch_size=8, log_every=50, save_every=1000,
                      augment=False), tiny_config(), ds)
    policy = Policy.from_pretrained(ckpt)
    rng = np.random.default_rng(5)
    actions = {}
    for left in (True, False):
        img = image_with_square(left, rng)
        obs = {"agentview": img, "wrist": img[::-1].copy(), "state": np.zeros(STATE_DIM, np.float32)}
        actions[left] = policy.predict_chunk([obs], ["move to the square"])[0, 0]
    assert actions[True][0] < -0.01 and actions[False][0] > 0.01  # dx follows the square's side
    assert actions[True][6] == 1.0 and actions[False][6] == 0.0
    metrics = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert (tmp_path / "run" / "curve.png").stat().st_size > 1000


def test_lora_trains_only_adapters(tmp_path):
    ds = SyntheticDataset(num_episodes=2, length=3)
    base = train(_cfg(tmp_path, "base", steps=2, save_every=100), tiny_config(), ds)
    tuned = train(_cfg(tmp_path, "lora", steps=3, init=str(base), lora=True, lora_rank=4,
                       save_every=100), None, ds)
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(tuned / "model.safetensors"))
    lora_keys = [k for k in after if "lora_" in k]
    assert lora_keys and all(k not in before for k in lora_keys)
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora_keys
               if "lora_B" in k)  # B starts at zero: non-zero means adapters trained
    for k, v in after.items():  # every base weight is untouched
        if "lora_" in k:
            continue
        orig = k.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(before[orig], v), k
    assert json.loads((tuned / "config.json").read_text())["vla"]["lora_rank"] == 4


def test_resume_continues_bit_for_bit(tmp_path):
    ds = SyntheticDataset(num_episodes=3, length=4)
    straight = train(_cfg(tmp_path, "straight", steps=6, save_every=3), tiny_config(), ds)
    train(_cfg(tmp_path, "split", steps=6, stop_after=3, save_every=100), tiny_config(), ds)
    resumed = train(_cfg(tmp_path, "ignored", steps=99, save_every=3,
                         resume=str(tmp_path / "split")), None, ds)
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["sampler"]["position"] == 6 * 4


def test_init_refuses_mismatched_stats(tmp_path):
    ds = SyntheticDataset(num_episodes=2, length=3)
    base = train(_cfg(tmp_path, "base", steps=1, save_every=100), tiny_config(), ds)
    other = SyntheticDataset(num_episodes=2, length=3)
    other.stats["action"]["q99"] = [v * 5 for v in other.stats["action"]["q99"]]
    with pytest.raises(PolicyError, match="--restat"):
        train(_cfg(tmp_path, "ft", steps=1, init=str(base)), None, other)
    other.stats["action"]["q01"][0] = float("nan")
    with pytest.raises(PolicyError, match="NaN"):
        train(_cfg(tmp_path, "ft2", steps=1), tiny_config(), other)


def test_a_longer_chunk_keeps_the_checkpoints_first_actions():
    """--rechunk: the LM is causal, so appended placeholders leave the first K actions as they were."""
    torch.manual_seed(0)
    ds = SyntheticDataset(num_episodes=2, length=3)
    model = VLAModel.build(tiny_config(chunk=2, replan=2), ds.stats["action"], ds.tasks,
                           {"mean": [0.0] * STATE_DIM, "std": [1.0] * STATE_DIM}).eval()
    rng = np.random.default_rng(1)
    img = image_with_square(True, rng)
    obs = [{"agentview": img, "wrist": img, "state": np.zeros(STATE_DIM, np.float32)}]
    with torch.no_grad():
        before = Policy(model).predict_chunk(obs, ["move to the square"])
        model.resize_chunk(5)
        after = Policy(model).predict_chunk(obs, ["move to the square"])
    assert before.shape == (1, 2, 7) and after.shape == (1, 5, 7)
    np.testing.assert_array_equal(after[:, :2], before)
    assert model.cfg.chunk == 5 and model.cfg.replan == 2
    model.resize_chunk(1)
    assert model.action_queries.shape[0] == 7 and model.cfg.replan == 1
    with pytest.raises(PolicyError, match=">= 1"):
        model.resize_chunk(0)


def test_rechunk_fine_tunes_a_checkpoint_to_a_longer_chunk(tmp_path):
    ds = SyntheticDataset(num_episodes=2, length=6)
    base = train(_cfg(tmp_path, "base", steps=2, save_every=100), tiny_config(chunk=2, replan=1), ds)
    tuned = train(_cfg(tmp_path, "long", steps=2, init=str(base), rechunk=4, save_every=100), None, ds)
    cfg = json.loads((tuned / "config.json").read_text())["vla"]
    assert (cfg["chunk"], cfg["replan"]) == (4, 1)
    assert load_file(str(tuned / "model.safetensors"))["action_queries"].shape[0] == 4 * 7
    img = image_with_square(False, np.random.default_rng(2))
    obs = [{"agentview": img, "wrist": img, "state": np.zeros(STATE_DIM, np.float32)}]
    assert Policy.from_pretrained(tuned).predict_chunk(obs, ["move to the square"]).shape == (1, 4, 7)
    with pytest.raises(PolicyError, match="--init"):
        train(_cfg(tmp_path, "bad", steps=1, rechunk=4), tiny_config(), ds)


def test_sampler_and_augment_are_deterministic():
    s = StreamSampler(5, seed=1)
    seq = s.next(12)
    assert sorted(seq[:5]) == list(range(5)) and sorted(seq[5:10]) == list(range(5))
    assert np.array_equal(StreamSampler(5, seed=1, position=7).next(5), seq[7:12])
    x = torch.rand(4, 2, 3, 16, 16)
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert a.min() >= 0 and a.max() <= 1


def test_early_frames_are_drawn_more_often_and_every_frame_still_once():
    from policy.data import load_frames

    ds = SyntheticDataset(num_episodes=3, length=5)
    table = load_frames(ds, ["agentview", "wrist"], 32, 2, drop_noops=False)
    assert table.steps.tolist() == list(range(5)) * 3
    assert np.array_equal(table.sampling_order(), np.arange(15))
    order = table.sampling_order(early_frames=2, early_repeat=3)
    counts = np.bincount(order, minlength=15)
    assert counts.tolist() == [3, 3, 1, 1, 1] * 3  # frames 0 and 1 of each episode, 3 times


def test_training_with_early_frame_oversampling_resumes_bit_for_bit(tmp_path):
    ds = SyntheticDataset(num_episodes=2, length=4)
    kw = dict(early_frames=2, early_repeat=4)
    straight = train(_cfg(tmp_path, "straight", steps=6, save_every=3, **kw), tiny_config(), ds)
    train(_cfg(tmp_path, "split", steps=6, stop_after=3, save_every=100, **kw), tiny_config(), ds)
    resumed = train(_cfg(tmp_path, "ignored", steps=99, save_every=3,
                         resume=str(tmp_path / "split")), None, ds)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_committed_steps_fine_tune_leaves_the_given_actions_out_of_the_loss(tmp_path):
    """--committed-steps on --init: the checkpoint learns to continue committed actions; the loss
    counts only the actions it was not given."""
    ds = SyntheticDataset(num_episodes=2, length=6)
    base = train(_cfg(tmp_path, "base", steps=2, save_every=100), tiny_config(chunk=4), ds)
    tuned = train(_cfg(tmp_path, "rtc", steps=2, init=str(base), save_every=100), tiny_config(committed_steps=3), ds)
    assert json.loads((tuned / "config.json").read_text())["vla"]["committed_steps"] == 3
    model = VLAModel.from_pretrained(tuned)
    from policy.data import load_frames, make_batch
    from policy.processor import encode_instructions

    table = load_frames(ds, ["agentview", "wrist"], 32, 4)
    ids, mask = encode_instructions(table.instructions, model.text_tokenizer, 8)
    batch = make_batch(table, np.arange(2), ids, mask, model.action_tokenizer, model.state_stats)
    args = (batch["images"], batch["text_ids"], batch["text_mask"], batch["state"], batch["target_bins"])
    three = torch.tensor([3, 3])
    with torch.no_grad():
        none = model(*args, committed_len=torch.tensor([0, 0]))
        plain = model(*args)
        # targets of the fresh (4th) action set to what the model predicts for it: given the first
        # three, every counted position is right, whatever the model
        agreeing = batch["target_bins"].clone()
        agreeing[:, 21:] = model(*args, committed_len=three)["pred_bins"][:, 21:]
        told = model(*args[:4], agreeing, committed_len=three)
    assert torch.allclose(none["loss"], plain["loss"]) and torch.equal(none["accuracy"], plain["accuracy"])
    assert told["accuracy"].item() == 1.0
    assert model(*args[:4], agreeing)["accuracy"].item() < 1.0  # all four counted: the untrained ones miss
    with pytest.raises(PolicyError, match="committed-steps 4"):
        train(_cfg(tmp_path, "bad", steps=1, init=str(base)), tiny_config(committed_steps=4), ds)
