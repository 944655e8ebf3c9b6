from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.video_qa.helpers import tiny_config
from video_qa.errors import VideoQAError
from video_qa.modeling_pooling import MeanPooling, TokenMining
from video_qa.modeling_videolm import VideoLM


@pytest.mark.parametrize("iters", [0, 2])  # independent queries, and queries competing for patches
def test_token_mining_attends_only_within_its_frame(iters):
    torch.manual_seed(0)
    mining = TokenMining(dim=16, num_tokens=4, heads=2, iters=iters).eval()
    patches = torch.randn(3, 9, 16)
    before = mining(patches)
    perturbed = patches.clone()
    perturbed[1] += 5 * torch.randn(9, 16)  # change frame 1 only
    after = mining(perturbed)
    assert before.shape == (3, 4, 16)
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[2], before[2])
    assert (after[1] - before[1]).abs().max() > 1e-3  # frame 1's own tokens do change


def test_competing_queries_split_two_objects_between_them():
    """Two distinct 'objects' among background patches: with competition, the patches of each
    object go mostly to different tokens (independent queries may all take the same one)."""
    torch.manual_seed(0)
    mining = TokenMining(dim=8, num_tokens=2, heads=1, iters=3).eval()
    with torch.no_grad():
        mining.queries.copy_(torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0, 0, 0]]))
        for lin in (mining.to_q, mining.to_k, mining.to_v):
            lin.weight.copy_(torch.eye(8) * 4)
    patches = torch.zeros(1, 6, 8)
    patches[0, :3, 0] = 1.0  # object A on patches 0-2
    patches[0, 3:, 1] = 1.0  # object B on patches 3-5
    kv = mining.norm_kv(patches)
    logits = mining.to_q(mining.norm_q(mining.queries[None])) @ mining.to_k(kv).transpose(1, 2)
    attn = logits.softmax(dim=1)[0]  # [K, N]: which query wins each patch
    assert (attn[0, :3] > 0.5).all() and (attn[1, 3:] > 0.5).all()
    out = mining(patches)
    assert out.shape == (1, 2, 8) and torch.isfinite(out).all()


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


def test_weights_of_another_architecture_get_a_clear_error(tmp_path):
    """A checkpoint whose tensors this code does not build (an older version) is refused in one
    line that says so, not with a state-dict traceback."""
    from safetensors.torch import load_file, save_file

    VideoLM(tiny_config()).save_pretrained(tmp_path / "ckpt")
    weights = load_file(tmp_path / "ckpt" / "model.safetensors")
    dropped = next(k for k in weights if k.startswith("grounding."))
    save_file({k: v for k, v in weights.items() if k != dropped}, tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(VideoQAError, match=f"does not match this version.*{dropped}"):
        VideoLM.from_pretrained(tmp_path / "ckpt")


def test_mean_pooling_model_trains_with_same_token_budget():
    torch.manual_seed(0)
    model = VideoLM(tiny_config(pooling="mean"))
    batch = model.collate(_examples(2))
    assert int((batch["input_ids"] == model.tokenizer.token_id("<frame>")).sum()) == 2 * 3 * 2
    assert torch.isfinite(model(**batch))


def test_unknown_pooling_lists_valid_ones():
    with pytest.raises(VideoQAError, match="mining, mean"):
        tiny_config(pooling="max")


def test_per_frame_auxiliary_loss_adds_to_the_answer_loss_and_round_trips(tmp_path):
    from video_qa.labels import AUX_LABELS

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
    from video_qa.labels import AUX_LABELS, SPATIAL_LABELS

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


def test_packed_questions_see_the_frames_and_themselves_only():
    """Several questions about the same frames in one sequence: each turn's logits are those of
    the same question asked alone, and its loss cannot read another turn's answer."""
    torch.manual_seed(0)
    model = VideoLM(tiny_config()).eval()
    ex = _examples(1)[0]
    turns = [("question 0?", "yes"), ("which colour?", "红色"), ("when?", "2.5s")]
    packed = model.collate([{**ex, "questions": [q for q, _ in turns], "answers": [a for _, a in turns]}])
    assert packed["turns"].max() == 3 and hasattr(model, "grounding")  # grounding included
    n_prefix = len(model.prefix_ids(ex["times"]))
    with torch.no_grad():
        logits = model.logits(**packed)[0]
        for k, (q, a) in enumerate(turns, start=1):
            ref = model.logits(**model.collate([{**ex, "question": q, "answer": a}]))[0]
            span = (packed["turns"][0] == k).nonzero().flatten()
            torch.testing.assert_close(logits[span], ref[n_prefix:], atol=1e-5, rtol=1e-4)
    # the packed loss is the mean over all turns' answer tokens, and it trains: overfit 3 turns
    model.train()
    loss = _overfit(model, [{**ex, "questions": [q for q, _ in turns],
                             "answers": [a for _, a in turns]}], steps=150)
    assert loss < 0.05
    for q, a in turns:  # each answered alone, as at inference
        assert model.generate(ex["frames"][None], [ex["times"]], [q]) == [a]


@pytest.mark.parametrize("text_encoder", ["minilm", "none"])
def test_collate_teaches_the_token_that_ends_each_name_where_that_thing_is(text_encoder):
    from video_qa.labels import CELL_CLASSES

    torch.manual_seed(0)
    model = VideoLM(tiny_config(text_encoder=text_encoder))
    ex = _examples(1)[0]
    n = 16  # cells per frame at 16 px / 4 px patches
    cells = np.zeros((3, n, len(CELL_CLASSES)), np.uint8)
    cells[0, 5, CELL_CLASSES.index("red cube")] = 1
    cells[2, 7, CELL_CLASSES.index("red cube")] = 1
    cells[1, 2, CELL_CLASSES.index("bowl")] = 1
    q = "Was the red cube left of the bowl?"
    refs = (("red cube", q.index("red cube") + 8), ("bowl", q.index("bowl") + 4), ("no such", 3))
    batch = model.collate([{**ex, "question": q, "answer": "yes", "refs": refs, "cells": cells}])
    at, target = batch["ground_at"], batch["ground_target"]
    assert at.shape == (2, 2)  # the unknown thing is skipped
    if model.cfg.pretrained_text:  # the pretrained encoder's tokens: read back through their spans
        first = int(batch["question"][0].nonzero()[0])
        spans = model.text_encoder.token_spans(q)
        tokens = [q[slice(*spans[p - first])] for _, p in at.tolist()]
        assert tokens == ["cube", "bowl"]
    else:
        tokens = [model.tokenizer.decode([int(batch["input_ids"][r, p])]) for r, p in at.tolist()]
        assert tokens == [" cube", " bowl"]
    assert target[0].nonzero().flatten().tolist() == [5, 2 * n + 7]  # frame 0 cell 5, frame 2 cell 7
    assert target[1].nonzero().flatten().tolist() == [1 * n + 2]
    loss_with = model(**batch)
    assert torch.isfinite(loss_with)


def test_with_compare_the_other_question_tokens_are_taught_to_find_nothing():
    from video_qa.labels import CELL_CLASSES

    torch.manual_seed(0)
    model = VideoLM(tiny_config(grounding_compare=True))
    ex = _examples(1)[0]
    cells = np.zeros((3, 16, len(CELL_CLASSES)), np.uint8)
    cells[0, 5, CELL_CLASSES.index("red cube")] = 1
    q = "Is there a red cube?"
    batch = model.collate([{**ex, "question": q, "answer": "yes", "refs": (("red cube", q.index("?")),),
                            "cells": cells}])
    named = {tuple(x) for x in batch["ground_at"].tolist()}
    off = {tuple(x) for x in batch["ground_off"].tolist()}
    question = set(map(tuple, batch["question"].nonzero().tolist()))
    assert named and not named & off and named | off == question  # every question token, once
    assert torch.isfinite(model(**batch))
    plain = VideoLM(tiny_config(grounding_compare=False))
    assert "ground_off" not in plain.collate([{**ex, "question": q, "answer": "yes",
                                              "refs": (("red cube", q.index("?")),), "cells": cells}])


def test_warm_start_keeps_every_trained_weight_and_adds_the_new_module(tmp_path):
    from video_qa.train import warm_start

    torch.manual_seed(0)
    base = VideoLM(tiny_config(grounding_compare=False))
    base.save_pretrained(tmp_path / "base")
    model = warm_start(tmp_path / "base", replace(base.cfg, grounding_compare=True), log=None)
    old, new = base.state_dict(), model.state_dict()
    assert set(new) - set(old) == {"grounding.compare_in.weight", "grounding.compare_in.bias"}
    for k in old:
        torch.testing.assert_close(new[k], old[k])
    assert model.tokenizer.encode("left of") == base.tokenizer.encode("left of")


def test_the_grounding_loss_alone_teaches_a_name_to_find_its_cell():
    """Four things, each a distinct feature in one random cell of one frame; after a short
    training on the grounding loss only, the token that ends a name scores its thing's cell
    above every other cell."""
    from video_qa.labels import CELL_CLASSES
    from video_qa.modeling_videolm import balanced_bce

    torch.manual_seed(0)
    model = VideoLM(tiny_config(num_frames=1, tokens_per_frame=2))
    names = ["red cube", "blue cube", "red cylinder", "bowl"]
    feats = torch.randn(len(names), 32)
    rng = np.random.default_rng(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(size=16):
        exs = []
        for _ in range(size):
            where = rng.permutation(16)[:len(names)]
            patches = 0.1 * torch.randn(1, 16, 32)
            cells = np.zeros((1, 16, len(CELL_CLASSES)), np.uint8)
            for k, name in enumerate(names):
                patches[0, where[k]] += feats[k]
                cells[0, where[k], CELL_CLASSES.index(name)] = 1
            name = names[int(rng.integers(len(names)))]
            q = f"Where is the {name}?"
            exs.append({"patches": patches, "times": [0.0], "question": q, "answer": "x",
                        "refs": ((name, q.index(name) + len(name)),), "cells": cells})
        return model.collate(exs)

    for _ in range(150):
        b = batch()
        layout = {k: v for k, v in b.items() if k not in ("labels", "ground_at", "ground_target",
                                                          "ground_off", "frame_labels", "frame_mask")}
        _, _, _, scores = model._inputs(images=None, want_scores=True, **layout)
        loss = balanced_bce(scores[b["ground_at"][:, 0], b["ground_at"][:, 1]], b["ground_target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    b = batch(32)
    layout = {k: v for k, v in b.items() if k not in ("labels", "ground_at", "ground_target",
                                                      "ground_off", "frame_labels", "frame_mask")}
    with torch.no_grad():
        _, _, _, scores = model._inputs(images=None, want_scores=True, **layout)
    picked = scores[b["ground_at"][:, 0], b["ground_at"][:, 1]]
    hits = (picked.argmax(1) == b["ground_target"].argmax(1)).float().mean()
    assert hits >= 0.9, hits


def test_a_config_saved_before_a_field_existed_loads_as_it_was_trained():
    from video_qa.configuration_videolm import LEGACY_DEFAULTS, VideoLMConfig

    old = VideoLMConfig().to_dict()
    for key in LEGACY_DEFAULTS:
        old.pop(key)
    cfg = VideoLMConfig.from_dict(old)
    assert (cfg.tokenizer, cfg.mining_iters, cfg.grounding) == ("byte", 0, False)
    assert not cfg.grounding_relate and not cfg.grounding_compare
    assert VideoLMConfig.from_dict(VideoLMConfig().to_dict()) == VideoLMConfig()  # new ones as saved


def test_a_removed_experiment_loads_while_off_and_is_refused_while_on(tmp_path):
    """``grounding_where`` is gone: the shipped checkpoint's config says ``false`` and still loads;
    one that used it gets one line, not a missing-weights traceback."""
    import json

    from video_qa.configuration_videolm import VideoLMConfig

    assert VideoLMConfig.from_dict({**VideoLMConfig().to_dict(), "grounding_where": False}) == VideoLMConfig()
    with pytest.raises(VideoQAError, match="grounding_where") as exc:
        VideoLMConfig.from_dict({**VideoLMConfig().to_dict(), "grounding_where": True})
    assert "\n" not in str(exc.value)
    model = VideoLM(tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert "grounding_where" not in meta["video_lm"]
    meta["video_lm"]["grounding_where"] = True
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(VideoQAError, match="grounding_where"):
        VideoLM.from_pretrained(tmp_path / "ckpt")


def test_save_pretrained_leaves_nothing_behind_when_it_fails(tmp_path, monkeypatch):
    """A failed save keeps the previous checkpoint whole and leaves no temporary directory."""
    model = VideoLM(tiny_config())
    model.save_pretrained(tmp_path / "ckpt")
    before = sorted(p.name for p in (tmp_path / "ckpt").iterdir())

    def broken(directory):
        raise OSError("disk full")

    monkeypatch.setattr(model.tokenizer, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == before
    VideoLM.from_pretrained(tmp_path / "ckpt")  # still loads
