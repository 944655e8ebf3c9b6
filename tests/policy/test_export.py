"""`embodied export` and the ONNX Runtime backend: parity with torch, dynamic batch, one set of
input checks, refusals, and the backend behind eval."""

import json

import numpy as np
import pytest

from policy.errors import PolicyError
from policy.export import checkpoint_sha256, export_checkpoint, read_manifest
from policy.onnx_policy import OnnxPolicy, select_providers
from policy.predict import Policy
from policy_helpers import save_sim_checkpoint, tiny_config

N_OBS = 100
INSTRUCTIONS = ["touch the red cube", "Touch the RED cube!", "touch the cube", "grab the zebra",
                "touch the red cube touch the red cube"]  # unseen words, truncation to 8 tokens


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ckpt = save_sim_checkpoint(root / "ckpt")
    out = export_checkpoint(ckpt, root / "onnx", quantize="int8")
    return ckpt, out


def _observations(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"agentview": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
             "wrist": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
             "state": rng.normal(0, 2, 15).astype(np.float32)} for _ in range(n)]


def _normalised(policy, actions):
    return policy.model.action_tokenizer.normalize(actions)


def test_fp32_graph_matches_torch_on_100_observations_at_batch_1_and_5(exported):
    ckpt, out = exported
    torch_policy = Policy.from_pretrained(ckpt)
    onnx_policy = OnnxPolicy(out, precision="fp32")
    obs = _observations(N_OBS)
    texts = [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(N_OBS)]
    expected = torch_policy.predict_chunk(obs, texts)
    batched = np.concatenate([onnx_policy.predict_chunk(obs[i:i + 5], texts[i:i + 5])
                              for i in range(0, N_OBS, 5)])
    single = np.concatenate([onnx_policy.predict_chunk([o], [t]) for o, t in zip(obs, texts)])
    assert batched.shape == single.shape == expected.shape == (N_OBS, 2, 7)
    assert batched.dtype == np.float32
    error = np.abs(_normalised(torch_policy, batched) - _normalised(torch_policy, expected)).max()
    assert error <= 1e-4, error
    # one graph, batch 1 and batch 5: the same actions
    assert np.abs(_normalised(torch_policy, single) - _normalised(torch_policy, batched)).max() <= 1e-4
    # actions are un-normalised: inside the statistics' q01/q99, the gripper 0 or 1
    assert np.all(np.abs(batched[..., :6]) <= 0.03 + 1e-6)
    assert set(np.unique(batched[..., 6])) <= {0.0, 1.0}
    # the int8 graph: reported beside fp32 (printed with -s), only sanity-checked here
    int8 = OnnxPolicy(out, precision="int8").predict_chunk(obs, texts)
    int8_error = np.abs(_normalised(torch_policy, int8) - _normalised(torch_policy, expected))
    print(f"int8 vs torch, normalised units: max {int8_error.max():.4f}, mean {int8_error.mean():.4f}")
    assert int8.shape == expected.shape and np.all(np.isfinite(int8))


def test_manifest_names_inputs_and_the_source(exported):
    ckpt, out = exported
    manifest = read_manifest(out)
    inputs = {i["name"]: (i["shape"], i["dtype"]) for i in manifest["inputs"]}
    assert inputs == {"images": (["batch", 2, 32, 32, 3], "uint8"), "state": (["batch", 15], "float32"),
                      "text_ids": (["batch", 8], "int64"), "text_mask": (["batch", 8], "int64")}
    assert manifest["outputs"] == [{"name": "actions", "shape": ["batch", 2, 7], "dtype": "float32"},
                                   {"name": "log_probs", "shape": ["batch", 2, 7, 256], "dtype": "float32"}]
    assert manifest["opset"] == 18 and manifest["graphs"] == {"fp32": "model.onnx", "int8": "model_int8.onnx"}
    assert manifest["source"] == {"checkpoint": ckpt, "sha256": checkpoint_sha256(ckpt)}
    assert manifest["export_check"]["max_abs_error_normalised"]["fp32"] <= 1e-4
    assert (out / "tokenizer").is_dir() and json.loads((out / "stats.json").read_text())["state"]["mean"]
    # int8 weights: the quantized graph is much smaller than the fp32 one
    assert (out / "model_int8.onnx").stat().st_size < 0.6 * (out / "model.onnx").stat().st_size
    import onnx

    graph = onnx.load(str(out / "model.onnx"))
    assert [i.name for i in graph.graph.input] == ["images", "state", "text_ids", "text_mask"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_both_backends_give_the_distribution_behind_their_actions(exported):
    """What the guided blend reads: the same log-probabilities from torch and the graph (batch 1
    and 3), normalised, their most likely bins the actions ``predict_chunk`` gives."""
    ckpt, out = exported
    torch_policy, onnx_policy = Policy.from_pretrained(ckpt), OnnxPolicy(out, precision="fp32")
    assert torch_policy.describe()["distribution"] and onnx_policy.describe()["distribution"]
    obs, texts = _observations(3, seed=1), INSTRUCTIONS[:3]
    a = torch_policy.predict_chunk_distribution(obs, texts)
    b = onnx_policy.predict_chunk_distribution(obs, texts)
    one = onnx_policy.predict_chunk_distribution(obs[:1], texts[:1])
    assert a.log_probs.shape == b.log_probs.shape == (3, 2, 7, 256) and a.values.shape == (7, 256)
    np.testing.assert_allclose(b.log_probs, a.log_probs, atol=1e-4)
    np.testing.assert_allclose(one.log_probs[0], b.log_probs[0], atol=1e-4)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_allclose(np.exp(a.log_probs).sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a.actions, torch_policy.predict_chunk(obs, texts))
    np.testing.assert_array_equal(b.actions, onnx_policy.predict_chunk(obs, texts))
    best = a.values[np.arange(7), a.log_probs.argmax(-1)]  # [3, 2, 7]: each dimension's likeliest value
    np.testing.assert_allclose(best, a.actions, atol=1e-6)


def test_onnx_policy_describes_and_refuses_like_the_torch_policy(exported):
    ckpt, out = exported
    torch_policy, onnx_policy = Policy.from_pretrained(ckpt), OnnxPolicy(out)
    assert onnx_policy.describe() == torch_policy.describe()
    assert OnnxPolicy(out, replan=1).describe()["replan"] == 1
    good = _observations(1)[0]
    bad_inputs = [
        ([{**good, "state": np.full(15, np.nan, np.float32)}], ["touch the red cube"]),
        ([{**good, "state": np.zeros(4, np.float32)}], ["touch the red cube"]),
        ([{**good, "state": np.full(15, 1e4, np.float32)}], ["touch the red cube"]),
        ([{**good, "wrist": good["wrist"].astype(np.float32)}], ["touch the red cube"]),
        ([{**good, "wrist": good["wrist"][:16]}], ["touch the red cube"]),
        ([{k: v for k, v in good.items() if k != "wrist"}], ["touch the red cube"]),
        ([{k: v for k, v in good.items() if k != "state"}], ["touch the red cube"]),
        ([good], ["   "]),
        ([good, good], ["touch the red cube"]),
    ]
    for obs, texts in bad_inputs:
        with pytest.raises(PolicyError) as from_torch:
            torch_policy.predict_chunk(obs, texts)
        with pytest.raises(PolicyError) as from_onnx:
            onnx_policy.predict_chunk(obs, texts)
        assert str(from_onnx.value) == str(from_torch.value)


def test_export_refuses_what_it_cannot_export(tmp_path):
    from policy.modeling_vla import VLAModel

    stats = {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0]}
    state_stats = {"mean": [0.0] * 15, "std": [1.0] * 15}
    for name, cfg, words in [("ar", tiny_config(state_dim=15, decoding="autoregressive"), "autoregressive"),
                             ("resize", tiny_config(state_dim=15, obs_image_size=64), "64 px")]:
        VLAModel.build(cfg, stats, ["touch the red cube"], state_stats).save_pretrained(tmp_path / name)
        with pytest.raises(PolicyError, match=words) as err:
            export_checkpoint(tmp_path / name, tmp_path / f"{name}-out")
        assert "\n" not in str(err.value) and not (tmp_path / f"{name}-out").exists()
    # a directory that is not an export is never replaced
    ckpt = save_sim_checkpoint(tmp_path / "ckpt")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(PolicyError, match="not a policy export"):
        export_checkpoint(ckpt, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(PolicyError, match="not a policy export"):
        OnnxPolicy(tmp_path / "mine")


def test_providers_prefer_tensorrt_then_cuda_then_cpu():
    assert select_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    every = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert select_providers(every) == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                       "CPUExecutionProvider"]
    with pytest.raises(PolicyError, match="lacks CUDAExecutionProvider"):
        select_providers(["CPUExecutionProvider"], ["CUDAExecutionProvider"])


def test_eval_on_the_onnx_backend_plays_the_same_episodes(tmp_path, monkeypatch, capsys):
    from agent.cli import main
    from policy.backends import load_policy
    from policy.evaluate import EvalConfig, evaluate

    monkeypatch.setenv("EMBODIED_EXPORT_CACHE", str(tmp_path / "cache"))
    ckpt = save_sim_checkpoint(tmp_path / "ckpt")
    cfg = EvalConfig(checkpoint=ckpt, task="Reach", episodes=2, num_envs=2)
    torch_run = evaluate(cfg)["tasks"]["Reach"]
    onnx_run = evaluate(EvalConfig(**{**cfg.__dict__, "backend": "onnx"}))["tasks"]["Reach"]
    for key in ("successes", "mean_episode_length", "failures"):
        assert onnx_run[key] == torch_run[key], key
    # exported once into the cache, then reused; int8 is added on demand
    (cached,) = (tmp_path / "cache").iterdir()
    stamp = (cached / "model.onnx").stat().st_mtime_ns
    assert isinstance(load_policy(ckpt, backend="onnx"), OnnxPolicy)
    assert (cached / "model.onnx").stat().st_mtime_ns == stamp
    assert load_policy(ckpt, backend="onnx", quantize="int8").precision == "int8"
    with pytest.raises(PolicyError, match="needs --backend onnx"):
        load_policy(ckpt, backend="torch", quantize="int8")
    # the CLI: export, then a one-line error for an autoregressive checkpoint (exit 2)
    assert main(["export", "--checkpoint", ckpt, "--out", str(tmp_path / "cli-out")]) == 0
    assert read_manifest(tmp_path / "cli-out")["graphs"] == {"fp32": "model.onnx"}
    assert main(["export", "--checkpoint", str(tmp_path / "cli-out"), "--out", str(tmp_path / "x")]) == 2
    assert "already an export" in capsys.readouterr().err


def test_a_real_time_chunking_checkpoint_exports_with_its_committed_actions(tmp_path):
    """committed_steps: the graph takes the committed actions' bins and counts; torch and ONNX
    agree with and without them, in one batch of mixed counts, and both refuse too many."""
    import torch

    from policy.base import COMMITTED
    from policy.modeling_vla import VLAModel

    torch.manual_seed(0)
    stats = {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0]}
    VLAModel.build(tiny_config(state_dim=15, chunk=4, committed_steps=2), stats, ["touch the red cube"],
                   {"mean": [0.0] * 15, "std": [1.0] * 15}).save_pretrained(tmp_path / "ckpt")
    out = export_checkpoint(tmp_path / "ckpt", tmp_path / "onnx")
    names = [i["name"] for i in read_manifest(out)["inputs"]]
    assert names[-2:] == ["committed_bins", "committed_len"]
    torch_policy, onnx_policy = Policy.from_pretrained(tmp_path / "ckpt"), OnnxPolicy(out)
    assert torch_policy.describe()["committed_steps"] == onnx_policy.describe()["committed_steps"] == 2
    rng = np.random.default_rng(3)
    obs = _observations(6, seed=4)
    for i, o in enumerate(obs):
        if i % 3:  # none, one, two committed actions
            o[COMMITTED] = np.concatenate([rng.uniform(-0.03, 0.03, (i % 3, 6)),
                                           rng.integers(0, 2, (i % 3, 1))], axis=1).astype(np.float32)
    texts = ["touch the red cube"] * 6
    expected = torch_policy.predict_chunk(obs, texts)
    got = onnx_policy.predict_chunk(obs, texts)
    assert got.shape == expected.shape == (6, 4, 7)
    assert np.abs(_normalised(torch_policy, got) - _normalised(torch_policy, expected)).max() <= 1e-4
    plain = torch_policy.predict_chunk([{k: v for k, v in o.items() if k != COMMITTED} for o in obs], texts)
    np.testing.assert_array_equal(plain[0], expected[0])  # nothing committed: the plain chunk
    assert not np.array_equal(plain[1:], expected[1:])  # committed actions change the rest
    too_many = dict(obs[0], **{COMMITTED: np.zeros((3, 7), np.float32)})
    for policy in (torch_policy, onnx_policy):
        with pytest.raises(PolicyError, match="at most 2"):
            policy.predict_chunk([too_many], texts[:1])
        with pytest.raises(PolicyError, match="NaN"):
            policy.predict_chunk([dict(obs[0], **{COMMITTED: np.full((1, 7), np.nan, np.float32)})], texts[:1])
    # a checkpoint not trained for it refuses the key
    with pytest.raises(PolicyError, match="at most 0"):
        Policy.from_pretrained(save_sim_checkpoint(tmp_path / "plain")).predict_chunk(
            [dict(obs[0], **{COMMITTED: np.zeros((1, 7), np.float32)})], texts[:1])
