"""The auxiliary grounding loss: targets come from the recorder's ground truth, and training uses them."""

import json

import numpy as np
import pytest
import torch

from policy.configuration_vla import VLAConfig
from policy.data import TARGET_CENTRE, TARGET_SCALE, load_frames, open_dataset, target_features
from policy.modeling_vla import VLAModel
from policy.train import TrainConfig, train


@pytest.fixture(scope="module")
def reach_dataset(tmp_path_factory):
    from sim.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("aux") / "reach"
    collect(CollectConfig(task="Reach", episodes=2, out=str(out), image_size=(32, 32),
                          fsync=False, progress=False))
    return open_dataset(out)


def test_target_features_are_scaled_world_and_relative_positions():
    target = np.array([[0.65, -0.15, 0.03]])
    tcp = np.array([[0.5, 0.0, 0.33]])
    f = target_features(target, tcp)
    np.testing.assert_allclose(f[0, :3], (target[0] - TARGET_CENTRE) / TARGET_SCALE, atol=1e-6)
    np.testing.assert_allclose(f[0], [1.0, -1.0, 0.0, 1.0, -1.0, -2.0], atol=1e-5)


def test_frame_targets_match_the_ground_truth(reach_dataset):
    ds = reach_dataset
    table = load_frames(ds, ["agentview", "wrist"], 32, 2, drop_noops=False, with_targets=True)
    gt = ds.episode_ground_truth(0)
    target = next(o for o in gt["initial"]["objects"] if o["is_target"])
    n0 = len(ds.episode(0)["action"])
    assert table.targets.shape == (len(table), 6)
    # The target rests on the table at reset; its world features equal the logged position.
    np.testing.assert_allclose(table.targets[0, :3],
                               (np.array(target["position"]) - TARGET_CENTRE) / TARGET_SCALE, atol=1e-4)
    # The relative part is the target minus the gripper (state[:3]), frame by frame.
    rel = table.targets[:n0, 3:] * TARGET_SCALE
    world = table.targets[:n0, :3] * TARGET_SCALE + TARGET_CENTRE
    np.testing.assert_allclose(rel, world - table.states[:n0, :3], atol=1e-5)
    # Reach ends with the gripper right above the target: the horizontal offset shrinks to ~1 cm.
    assert np.linalg.norm(rel[0]) > 0.15 and np.linalg.norm(rel[n0 - 1, :2]) < 0.015


def test_training_with_the_aux_loss_lowers_it(reach_dataset, tmp_path):
    cfg = VLAConfig(image_size=32, patch_size=16, vision_hidden=32, vision_layers=1, lm_hidden=48,
                    lm_layers=1, lm_heads=2, text_vocab_size=300, max_text_tokens=8, chunk=2,
                    aux_target_weight=1.0)
    ckpt = train(TrainConfig(out=str(tmp_path / "run"), steps=60, batch_size=8, log_every=10,
                             save_every=1000, lr=3e-3, warmup_steps=5, augment=False, seed=1),
                 cfg, reach_dataset)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("aux_loss" in r for r in rows)
    assert rows[-1]["aux_loss"] < 0.5 * rows[0]["aux_loss"]
    model = VLAModel.from_pretrained(ckpt)
    assert model.aux_head is not None and model.cfg.aux_target_weight == 1.0


def test_aux_loss_is_added_with_its_weight():
    from policy_helpers import STATE_DIM, SyntheticDataset, tiny_config
    from policy.data import make_batch
    from policy.processor import encode_instructions

    torch.manual_seed(0)
    ds = SyntheticDataset(num_episodes=2, length=2)
    stats = {"mean": [0.0] * STATE_DIM, "std": [1.0] * STATE_DIM}
    model = VLAModel.build(tiny_config(aux_target_weight=0.5), ds.stats["action"], ds.tasks, stats)
    table = load_frames(ds, ["agentview", "wrist"], 32, 2)
    ids, mask = encode_instructions(table.instructions, model.text_tokenizer, 8)
    b = make_batch(table, np.arange(4), ids, mask, model.action_tokenizer, model.state_stats)
    args = (b["images"], b["text_ids"], b["text_mask"], b["state"], b["target_bins"])
    plain = model(*args)
    with_aux = model(*args, None, torch.ones(4, 6))
    assert "aux_loss" not in plain and with_aux["aux_loss"] > 0
    torch.testing.assert_close(with_aux["loss"], plain["loss"] + 0.5 * with_aux["aux_loss"])
