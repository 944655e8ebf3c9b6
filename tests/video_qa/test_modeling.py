import numpy as np
import pytest
import torch

from tests.video_qa.helpers import tiny_config
from video_qa.errors import VideoQAError
from video_qa.modeling import MeanPooling, TokenMining, VideoLM


def test_token_mining_attends_only_within_its_frame():
    torch.manual_seed(0)
    mining = TokenMining(dim=16, num_tokens=4, heads=2).eval()
    patches = torch.randn(3, 9, 16)
    before = mining(patches)
    perturbed = patches.clone()
    perturbed[1] += 5 * torch.randn(9, 16)  # change frame 1 only
    after = mining(perturbed)
    assert before.shape == (3, 4, 16)
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[2], before[2])
    assert (after[1] - before[1]).abs().max() > 1e-3  # frame 1's own tokens do change


def test_video_lm_frame_tokens_are_per_frame():
    torch.manual_seed(0)
    model = VideoLM(tiny_config()).eval()
    images = torch.rand(4, 3, 16, 16)
    before = model.frame_tokens(images)
    images[2] = torch.rand(3, 16, 16)
    after = model.frame_tokens(images)
    torch.testing.assert_close(after[[0, 1, 3]], before[[0, 1, 3]])
    assert before.shape == (4, 2, 64)


def test_mean_pooling_keeps_the_budget_and_averages_cells():
    pool = MeanPooling(4)
    patches = torch.arange(16, dtype=torch.float32).view(1, 16, 1)  # 4x4 grid, values = index
    out = pool(patches)
    assert out.shape == (1, 4, 1)
    assert out.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]  # the four 2x2 quadrants


def _examples(n=4, seed=0):
    rng = np.random.default_rng(seed)
    answers = ["yes", "红色", "2.5s", "not seen"]
    return [{"frames": rng.integers(0, 255, (3, 20, 20, 3), dtype=np.uint8),
             "times": [0.0, 0.5, 1.0], "question": f"question {i}?", "answer": answers[i % 4]}
            for i in range(n)]


def _overfit(model, examples, steps=150):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = model.collate(examples)
    for _ in range(steps):
        loss = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def _answers(model, examples):
    return model.generate(np.stack([e["frames"] for e in examples]), [e["times"] for e in examples],
                          [e["question"] for e in examples])


def test_tiny_model_overfits_a_handful_of_qa_pairs_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = VideoLM(tiny_config())
    examples = _examples()
    loss = _overfit(model, examples)
    assert loss < 0.05
    answers = _answers(model, examples)
    assert answers == [e["answer"] for e in examples]
    model.save_pretrained(tmp_path / "ckpt")
    assert not list(tmp_path.glob("*.tmp-*"))
    loaded = VideoLM.from_pretrained(tmp_path / "ckpt")
    assert _answers(loaded, examples) == answers
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_from_pretrained_names_missing_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(VideoQAError, match="model.safetensors"):
        VideoLM.from_pretrained(tmp_path)
    with pytest.raises(VideoQAError, match="does not exist"):
        VideoLM.from_pretrained(tmp_path / "nope")


def test_mean_pooling_model_trains_with_same_token_budget():
    torch.manual_seed(0)
    model = VideoLM(tiny_config(pooling="mean"))
    batch = model.collate(_examples(2))
    assert int((batch["input_ids"] == model.tokenizer.frame_id).sum()) == 2 * 3 * 2
    assert torch.isfinite(model(**batch))


def test_unknown_pooling_lists_valid_ones():
    with pytest.raises(VideoQAError, match="mining, mean"):
        tiny_config(pooling="max")


def test_per_frame_auxiliary_loss_adds_to_the_answer_loss_and_round_trips(tmp_path):
    from video_qa.data import AUX_LABELS

    torch.manual_seed(0)
    model = VideoLM(tiny_config(aux_frame_weight=1.0))
    batch = model.collate(_examples(2))
    frames = 3
    labels = torch.ones(2, frames, len(AUX_LABELS))
    plain = model(**batch)
    with_aux = model(**batch, frame_labels=labels, frame_mask=torch.ones_like(labels))
    masked = model(**batch, frame_labels=labels, frame_mask=torch.zeros_like(labels))
    assert with_aux > plain + 0.1 and torch.allclose(masked, plain)
    with_aux.backward()
    assert model.aux_head.weight.grad.abs().sum() > 0
    assert model.pool.queries.grad.abs().sum() > 0  # the loss reaches the frame tokens
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VideoLM.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.aux_head.weight, model.aux_head.weight)


def test_frame_encoder_shared_with_a_policy_checkpoint_round_trips(tmp_path):
    """`--vision-path` may name a trained policy: its tower encodes the frames (frozen)."""
    from policy.configuration_vla import VLAConfig
    from policy.modeling_vla import VLAModel

    torch.manual_seed(0)
    stats = {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0]}
    policy_cfg = VLAConfig(image_size=32, patch_size=8, vision_hidden=32, vision_layers=1,
                           lm_hidden=64, lm_layers=1, lm_heads=1, text_vocab_size=64,
                           use_state=False)
    policy = VLAModel.build(policy_cfg, stats, ["go"]).eval()
    policy.save_pretrained(tmp_path / "policy")
    model = VideoLM(tiny_config(vision_path=str(tmp_path / "policy"))).eval()
    frames = np.random.default_rng(0).integers(0, 255, (1, 3, 20, 20, 3), dtype=np.uint8)
    images = model.preprocess(frames[0])
    with torch.no_grad():
        assert torch.equal(model.patches(images), policy.vision(images))
    assert not any(p.requires_grad for p in model.vision.parameters())
    before = model.generate(frames, [[0.0, 0.5, 1.0]], ["what colour?"])
    model.save_pretrained(tmp_path / "qa")
    (tmp_path / "policy" / "model.safetensors").unlink()  # the QA checkpoint stands on its own
    loaded = VideoLM.from_pretrained(tmp_path / "qa")
    assert loaded.generate(frames, [[0.0, 0.5, 1.0]], ["what colour?"]) == before


def test_spatial_head_reads_its_own_columns_and_round_trips(tmp_path):
    from video_qa.data import AUX_LABELS, SPATIAL_LABELS

    torch.manual_seed(0)
    model = VideoLM(tiny_config(aux_spatial_weight=1.0))  # spatial head only, no facts head
    assert not hasattr(model, "aux_head")
    batch = model.collate(_examples(2))
    n, s = len(AUX_LABELS), len(SPATIAL_LABELS)
    labels = torch.ones(2, 3, n + s)
    facts_only = torch.cat([torch.ones(2, 3, n), torch.zeros(2, 3, s)], -1)
    plain = model(**batch)
    spatial = model(**batch, frame_labels=labels, frame_mask=torch.ones_like(labels))
    ignored = model(**batch, frame_labels=labels, frame_mask=facts_only)  # only fact columns live
    assert spatial > plain + 0.1 and torch.allclose(ignored, plain)
    spatial.backward()
    assert model.spatial_head.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VideoLM.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.spatial_head.weight, model.spatial_head.weight)
