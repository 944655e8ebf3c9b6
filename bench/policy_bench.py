"""`embodied bench policy`: how fast the VLA turns an observation into actions, path by path.

Paths, all on the same weights and the same observation (the whole call is timed: vision encoder,
projector, prompt and decoding):

- ``generate``: plain `transformers` ``generate`` (greedy, KV cache inside), one action = 7 tokens;
- ``uncached``: our token-by-token loop recomputing the whole sequence each token;
- ``cached``: our loop with a KV cache, one action per call;
- ``cached_chunked``: the KV-cached loop decoding K actions (7K tokens) per call;
- ``parallel``: one forward pass for the 7 tokens of one action (OpenVLA-OFT);
- ``parallel_chunked``: one forward pass for all 7K tokens of K actions.

On CUDA (or with ``--device-paths cpu``) ``gpu_paths`` adds ``generate`` and ``parallel_chunked`` in
fp32 and bf16 and the LM under ``torch.compile``, each against fp32 ``generate`` on that device.

``actions_per_s`` = actions a call yields / seconds per call; ``reaction_latency_ms`` = seconds from
observation to the first action (one call). Ratios are against ``generate`` measured in the same run.
A "7B-shaped" LM (Llama-2-7B width: hidden 4096, MLP 11008, 32 heads) with random weights runs at
reduced depth, labelled as such, because 7B parameters in fp32 do not fit this machine's memory.

``text_encoder``: the pretrained instruction encoder (``perception.text_encoder``, MiniLM): its load
time, its cost per new instruction (one forward pass), and its cost per control step once the
episode's instruction is cached (a lookup, not a forward pass: ``forward_calls_per_step`` is 0).

``text_conditioned``: a ``--text-encoder minilm`` policy end to end (``Policy.predict_chunk``): the
first step of an episode with a new instruction (one MiniLM pass, then the model), every later
step of it (a cache lookup: ``encoder_forward_calls_per_step`` is 0), and the same-size policy with
learned instruction tokens as the baseline, interleaved. The trained checkpoint named by
``--minilm-checkpoint`` when it is a minilm one, else an untrained one of the default size (the
output says which).

``backends``: the same ``parallel_chunked`` call through each policy backend, timed end to end
(``predict_chunk``: input checks, tokenising, preprocessing, the model, de-tokenising): torch eager
(``policy.predict.Policy``), ONNX Runtime fp32 and int8 on the exported graph
(``policy.onnx_policy.OnnxPolicy``, ``embodied export``), and on a GPU torch bf16 and ONNX Runtime's
CUDA provider when present. Torch and ONNX Runtime use the same CPU thread count (``--threads``).
Ratios are against torch eager measured in the same run.

``--lm smollm2`` times the policy built on pretrained SmolLM2-135M under LoRA (``embodied train
--lm smollm2``) instead, at each ``--lm-layers`` depth (2 = the CI model, 30 = the whole base):
training steps/s (forward, backward and AdamW on a random batch of ``--train-batch``, bf16
autocast on CUDA as ``embodied train`` does) and actions/s through ``Policy.predict_chunk`` with
the adapters merged as the eval path loads them (bf16 on CUDA), each against the default tiny
policy measured the same way in the same run. Untrained weights: speed only.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

DESCRIPTION = "VLA decoding speed: HF generate vs KV cache, chunking and parallel decoding"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk", type=int, default=0, help="K actions per chunk (0 = model default)")
    parser.add_argument("--big-layers", type=int, default=2,
                        help="depth of the 7B-width LM (0 = skip it)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device-paths", choices=("auto", "cuda", "cpu", "off"), default="auto",
                        help="where to time fp32 vs bf16 vs torch.compile (auto: CUDA when present)")
    parser.add_argument("--device-big-layers", type=int, default=32,
                        help="depth of the 7B-shaped LM timed in bf16 on CUDA (32 = the whole 7B "
                             "shape; 0 = skip it)")
    parser.add_argument("--lm", choices=("tiny", "smollm2"), default="tiny",
                        help="smollm2: time only the policy on pretrained SmolLM2 under LoRA "
                             "(training steps/s and actions/s per --lm-layers depth) against the "
                             "default tiny policy, on CUDA when present")
    parser.add_argument("--lm-layers", default="",
                        help="with --lm smollm2: the depths to time, comma-separated (30 = all; "
                             "default 2,30, with --quick 2)")
    parser.add_argument("--train-batch", type=int, default=8,
                        help="with --lm smollm2: the batch of a timed training step")
    parser.add_argument("--minilm-checkpoint", default="checkpoints/vla-default",
                        help="a --text-encoder minilm checkpoint to time per new instruction and "
                             "per step (when it is not one, an untrained minilm policy of the "
                             "default size is timed instead, and the output says so)")


def _model(lm_hidden: int, lm_layers: int, lm_heads: int, chunk: int, intermediate: int = 0,
           **config: Any):
    import numpy as np
    import torch

    from policy.configuration_vla import VLAConfig
    from policy.modeling_vla import VLAModel

    torch.manual_seed(0)
    kw = {"chunk": chunk} if chunk else {}
    cfg = VLAConfig(lm_hidden=lm_hidden, lm_layers=lm_layers, lm_heads=lm_heads, state_dim=15,
                    **kw, **config)
    stats = {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0]}
    corpus = ["pick up the red cube", "touch the blue cylinder", "push the green cube to the left"]
    model = VLAModel.build(cfg, stats, corpus, {"mean": [0.0] * 15, "std": [1.0] * 15})
    if intermediate:  # widen the MLP to the 7B shape (build() uses 4x hidden)
        from perception.lm import build_lm, lm_config_dict

        model.lm = build_lm(config={**lm_config_dict(model.lm), "intermediate_size": intermediate})
    obs = {"agentview": np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8),
           "wrist": np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8),
           "state": np.zeros(15, np.float32)}
    return model.eval(), obs


def _describe(cfg) -> str:
    """The benchmarked configuration in words, read off the config rather than restated."""
    return (f"VLAConfig() defaults ({cfg.vision_family} vision, {cfg.image_size} px, "
            f"{len(cfg.camera_list)} cameras; {cfg.lm_layers}x{cfg.lm_hidden} {cfg.lm_family} LM)")


def _paths(model, obs: dict, instruction: str, only: tuple[str, ...] = ()
           ) -> dict[str, tuple[Any, int]]:
    """name -> (callable doing one full observation -> actions call, actions per call), on the
    model's own device and dtype; ``only`` keeps a subset of the paths."""
    import numpy as np
    import torch

    from perception.image import to_tensor
    from policy.processor import encode_instructions, normalize_state, observations_to_arrays

    cfg = model.cfg
    k = cfg.chunk
    weight = next(model.parameters())
    device, dtype = weight.device, weight.dtype
    cuda = device.type == "cuda"

    def prefix():
        arrays = observations_to_arrays([obs], cfg.camera_list, cfg.obs_image_size, cfg.image_size)
        ids, mask = encode_instructions([instruction], model.text_tokenizer, cfg.max_text_tokens)
        state = normalize_state(np.asarray(obs["state"])[None], model.state_stats)
        return model.embed_prefix(to_tensor(arrays).to(device, dtype), ids.to(device),
                                  mask.to(device), state.to(device, dtype))

    def run(fn):
        def call():
            with torch.no_grad():
                p, m = prefix()
                out = fn(p, m)
            if cuda:  # kernels are asynchronous: time until the actions exist
                torch.cuda.synchronize()
            return out
        return call

    paths = {
        "generate": (run(lambda p, m: model.decode_hf_generate(p, m, 7)), 1),
        "uncached": (run(lambda p, m: model.decode_autoregressive(p, m, 7, use_cache=False)), 1),
        "cached": (run(lambda p, m: model.decode_autoregressive(p, m, 7)), 1),
        "cached_chunked": (run(lambda p, m: model.decode_autoregressive(p, m, 7 * k)), k),
        "parallel": (run(lambda p, m: model.decode_parallel(p, m, 7)), 1),
        "parallel_chunked": (run(lambda p, m: model.decode_parallel(p, m, 7 * k)), k),
    }
    return {name: v for name, v in paths.items() if not only or name in only}


def _measure(model, obs: dict, repeat: int, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Median seconds per call of each path, the paths interleaved round by round so that load
    from other processes on a shared machine hits every path alike."""
    import statistics

    out: dict[str, Any] = {"actions_per_s": {}, "reaction_latency_ms": {}, "chunk": model.cfg.chunk,
                           "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    paths = _paths(model, obs, "pick up the red cube", only)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for name, (fn, _) in paths.items():  # warm-up
        fn()
    for _ in range(repeat):
        for name, (fn, _) in paths.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    for name, (_, actions) in paths.items():
        sec = statistics.median(times[name])
        out["actions_per_s"][name] = actions / sec
        out["reaction_latency_ms"][name] = sec * 1000
    base = out["actions_per_s"].get("generate")
    if base:
        out["speedup_vs_generate"] = {k: v / base for k, v in out["actions_per_s"].items()}
    return out


DEVICE_PATHS = ("generate", "parallel_chunked")


def _big_on_device(device: str, layers: int, chunk: int, repeat: int) -> dict[str, Any]:
    """The 7B-shaped LM at ``layers`` depth (32 = Llama-2-7B's whole shape, random weights), built
    straight on ``device`` in bf16: what 'where memory allows' means on a GPU box, and a CPU build
    in fp32 (26 GB, minutes of initialisation) would not be."""
    import torch

    previous = torch.get_default_dtype()
    try:
        with torch.device(device):
            torch.set_default_dtype(torch.bfloat16)
            model, obs = _model(4096, layers, 32, chunk, intermediate=11008)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(device=device, dtype=torch.bfloat16)
    try:
        out = _measure(model, obs, repeat, ("generate", "cached_chunked", "parallel_chunked"))
        out["note"] = (f"Llama-2-7B shape, {layers} of 32 layers, random weights, bf16 on "
                       f"{device}")
        if device == "cuda":
            out["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        return out
    finally:
        del model
        if device == "cuda":
            torch.cuda.empty_cache()


def _device_paths(device: str, chunk: int, repeat: int, compile_lm: bool = True,
                  big_layers: int = 0) -> dict[str, Any]:
    """``generate`` and ``parallel_chunked`` on ``device`` in fp32, bf16 and bf16 with the LM
    under ``torch.compile``: what a GPU box serving robots would run. Each variant is a fresh copy
    of the same weights, so the ratios compare like with like."""
    import copy

    import torch

    base, obs = _model(192, 3, 3, chunk)
    out: dict[str, Any] = {"device": device}
    if device == "cuda":
        out["name"] = torch.cuda.get_device_name(0)
    variants = {"fp32": (torch.float32, False), "bf16": (torch.bfloat16, False)}
    if compile_lm:
        variants["bf16_compile"] = (torch.bfloat16, True)
    for name, (dtype, compiled) in variants.items():
        model = copy.deepcopy(base).to(device=device, dtype=dtype)
        try:
            if compiled:
                # The LM is the part that dominates and keeps fixed shapes in parallel decoding.
                model.lm = torch.compile(model.lm)
            out[name] = _measure(model, obs, repeat, DEVICE_PATHS if not compiled
                                 else ("parallel_chunked",))
        except Exception as exc:  # a missing compiler or kernel is a result to report, not a crash
            out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        del model
    fp32 = out["fp32"].get("actions_per_s", {}).get("generate")
    if fp32:
        out["parallel_chunked_vs_fp32_generate"] = {
            name: out[name]["actions_per_s"]["parallel_chunked"] / fp32
            for name in variants if "actions_per_s" in out[name]}
    if big_layers:
        try:
            out["llama7b_bf16"] = _big_on_device(device, big_layers, chunk, max(3, repeat // 3))
        except Exception as exc:  # out of memory or a missing kernel: a result, not a crash
            out["llama7b_bf16"] = {"error": f"{type(exc).__name__}: "
                                            f"{str(exc).splitlines()[0][:200]}"}
    return out


def _text_encoder(repeat: int) -> dict[str, Any]:
    """The shared text encoder's cost: a new instruction is one forward pass; a repeated one (every
    control step of an episode) is a cache hit, timed here too, with no forward pass."""
    import statistics

    from perception.text_encoder import TextEncoder, encoder_id

    t0 = time.perf_counter()
    enc = TextEncoder()  # a private instance: its cache starts empty whatever ran before
    load_s = time.perf_counter() - t0
    families = ("pick up the {} cube", "push the {} cylinder to the left", "put the {} cube in the bowl")
    colours = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink")
    new = [f.format(c) for c in colours for f in families][: max(3, repeat)]
    enc.encode("warm up the encoder")
    new_times, hit_times = [], []
    for text in new:
        t = time.perf_counter()
        enc.encode([text])
        new_times.append(time.perf_counter() - t)
    calls = enc.forward_calls
    for _ in range(repeat):
        for text in new:  # the same instructions again, as each control step of their episodes would
            t = time.perf_counter()
            enc.encode([text])
            hit_times.append(time.perf_counter() - t)
    return {"load_s": round(load_s, 2), "ms_per_new_instruction": statistics.median(new_times) * 1e3,
            "ms_per_step_cached": statistics.median(hit_times) * 1e3,
            "forward_calls_per_step": (enc.forward_calls - calls) / len(hit_times),
            "new_instructions": len(new_times), "cached_steps": len(hit_times), **encoder_id().to_dict()}


def _text_conditioned(checkpoint: str, repeat: int) -> dict[str, Any]:
    """What conditioning on the pretrained encoder costs a policy: a new instruction's first step
    (one encoder pass + the model) against its later steps (a lookup + the model), and those
    against the same-size policy that reads learned token ids, interleaved round by round."""
    import dataclasses
    import json
    import statistics
    from pathlib import Path

    import numpy as np

    from perception.text_encoder import encoder_id
    from policy.modeling_vla import VLAModel
    from policy.predict import Policy

    config = Path(checkpoint) / "config.json"
    trained = False
    if config.is_file():
        try:
            trained = json.loads(config.read_text())["vla"].get("text_encoder") == "minilm"
        except (ValueError, KeyError, TypeError, AttributeError):
            trained = False
    if trained:
        policy = Policy.from_pretrained(checkpoint)
        source = f"trained checkpoint {checkpoint}"
        cfg = dataclasses.replace(policy.cfg, text_encoder="none")  # same size, learned tokens
        model = policy.model
        base = VLAModel.build(cfg, model.action_tokenizer.to_dict(), ["pick up the red cube"],
                              model.state_stats)
        rng = np.random.default_rng(0)
        s = int(cfg.obs_image_size)
        obs = {cam: rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for cam in cfg.camera_list}
        if model.state_proj is not None:  # a state the checkpoint accepts: its mean
            obs["state"] = np.asarray(model.state_stats["mean"], np.float32)
    else:
        model, _ = _model(192, 3, 3, 0, text_encoder="minilm", film=True)
        policy = Policy(model)
        base, obs = _model(192, 3, 3, 0, film=True)
        source = (f"untrained: {checkpoint} is not a --text-encoder minilm checkpoint, so an "
                  "untrained one of the default size (with FiLM) is timed; costs only")
    baseline = Policy(base)
    encoder = policy.model.text_encoder
    colours = ("crimson", "teal", "amber", "violet", "olive", "navy", "coral", "ivory", "maroon")
    new = [f"bench: please move the {c} block number {i}" for i, c in
           enumerate(colours * (1 + repeat // len(colours)))][: max(3, repeat)]
    policy.predict_chunk([obs], ["warm up the policy"])
    baseline.predict_chunk([obs], ["warm up the policy"])
    first, later, plain = [], [], []
    calls_new = calls_later = 0
    for text in new:  # each instruction: its first step, then as many steps as the episode runs
        calls = encoder.forward_calls
        t = time.perf_counter()
        policy.predict_chunk([obs], [text])
        first.append(time.perf_counter() - t)
        calls_new += encoder.forward_calls - calls
        for _ in range(3):
            calls = encoder.forward_calls
            t = time.perf_counter()
            policy.predict_chunk([obs], [text])
            later.append(time.perf_counter() - t)
            calls_later += encoder.forward_calls - calls
            t = time.perf_counter()
            baseline.predict_chunk([obs], [text])
            plain.append(time.perf_counter() - t)
    ms = {k: statistics.median(v) * 1e3 for k, v in
          (("first", first), ("later", later), ("plain", plain))}
    return {"source": source, "text_encoder": encoder_id().to_dict(),
            "ms_first_step_new_instruction": ms["first"],
            "ms_per_step_cached_instruction": ms["later"],
            "ms_encoder_per_new_instruction": ms["first"] - ms["later"],
            "ms_per_step_learned_tokens": ms["plain"],
            "step_cost_vs_learned_tokens": ms["later"] / ms["plain"],
            "encoder_forward_calls_per_new_instruction": calls_new / len(first),
            "encoder_forward_calls_per_step": calls_later / len(later),
            "new_instructions": len(first), "cached_steps": len(later)}


def _backends(model, obs: dict, repeat: int, threads: int) -> dict[str, Any]:
    """One ``predict_chunk`` per backend on the same weights and observation, interleaved round by
    round (as ``_measure``); the model is exported to a temporary directory first."""
    import copy
    import statistics
    import tempfile
    from pathlib import Path

    import torch

    from policy.export import export_model, read_manifest
    from policy.onnx_policy import OnnxPolicy
    from policy.predict import Policy

    instruction = "pick up the red cube"
    out: dict[str, Any] = {"threads": threads, "chunk": model.cfg.chunk,
                           "actions_per_s": {}, "reaction_latency_ms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export = export_model(copy.deepcopy(model), Path(tmp) / "onnx", quantize="int8")
        out["export_s"] = round(time.perf_counter() - t0, 2)
        out["export_check"] = read_manifest(export)["export_check"]
        policies: dict[str, Any] = {
            "torch_eager": Policy(copy.deepcopy(model)),
            "onnx_fp32": OnnxPolicy(export, precision="fp32", threads=threads,
                                    providers=["CPUExecutionProvider"]),
            "onnx_int8": OnnxPolicy(export, precision="int8", threads=threads,
                                    providers=["CPUExecutionProvider"]),
        }
        import onnxruntime as ort

        if torch.cuda.is_available():
            policies["torch_bf16_cuda"] = Policy(copy.deepcopy(model), device="cuda", dtype=torch.bfloat16)
        if "CUDAExecutionProvider" in ort.get_available_providers():
            policies["onnx_fp32_cuda"] = OnnxPolicy(export, precision="fp32", providers=[
                "CUDAExecutionProvider", "CPUExecutionProvider"])
        gpu = [name for name in policies if name.endswith("_cuda")]
        out["gpu"] = gpu or "not measured: no CUDA GPU (torch) and no CUDA provider (onnxruntime) here"
        times: dict[str, list[float]] = {name: [] for name in policies}
        for policy in policies.values():  # warm-up
            policy.predict_chunk([obs], [instruction])
        for _ in range(repeat):
            for name, policy in policies.items():
                t = time.perf_counter()
                policy.predict_chunk([obs], [instruction])  # numpy out: the GPU has finished
                times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        sec = statistics.median(ts)
        out["actions_per_s"][name] = model.cfg.chunk / sec
        out["reaction_latency_ms"][name] = sec * 1000
    base = out["actions_per_s"]["torch_eager"]
    out["speedup_vs_torch_eager"] = {k: v / base for k, v in out["actions_per_s"].items()}
    best = max(("onnx_fp32", "onnx_int8"), key=lambda k: out["actions_per_s"][k])
    out["best_onnx_cpu"] = {"backend": best, "speedup_vs_torch_eager": out["speedup_vs_torch_eager"][best]}
    return out


def _training_step(model, batch_size: int, device: str):
    """A callable doing one training step (forward, backward, clip, AdamW) on a fixed random batch
    of the model's own input shapes, on ``device`` (bf16 autocast on CUDA, as ``embodied train``)."""
    import torch

    cfg = model.cfg
    model.to(device).train()
    gen = torch.Generator().manual_seed(0)
    texts = ["pick up the red cube", "push the blue cylinder to the left",
             "put the green cube in the bowl", "touch the yellow ball"]
    text, mask = model.encode_text([texts[i % len(texts)] for i in range(batch_size)])
    size = cfg.image_size
    batch = {"images": torch.rand(batch_size, len(cfg.camera_list), 3, size, size, generator=gen),
             "text": text, "text_mask": mask,
             "state": torch.randn(batch_size, cfg.state_dim, generator=gen) if cfg.state_dim else None,
             "target_bins": torch.randint(0, cfg.n_bins, (batch_size, cfg.num_action_tokens), generator=gen)}
    batch = {k: v.to(device) if v is not None else None for k, v in batch.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4)
    cuda = device == "cuda"

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
            loss = model(**batch)["loss"]
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        if cuda:
            torch.cuda.synchronize()
    return step, sum(p.numel() for p in params)


def _inference_call(model, device: str):
    """A callable doing one ``Policy.predict_chunk`` (parallel decoding of the chunk) on the model
    with its adapters merged, as ``Policy.from_pretrained`` loads it; bf16 on CUDA."""
    import numpy as np
    import torch

    from policy.predict import Policy

    model.merge_lora()
    cuda = device == "cuda"
    policy = Policy(model, device=device, dtype=torch.bfloat16 if cuda else None)
    cfg = model.cfg
    rng = np.random.default_rng(0)
    obs = {cam: rng.integers(0, 255, (cfg.obs_image_size, cfg.obs_image_size, 3), dtype=np.uint8)
           for cam in cfg.camera_list}
    obs["state"] = np.zeros(cfg.state_dim, np.float32)
    return lambda: policy.predict_chunk([obs], ["pick up the red cube"])  # numpy out: GPU done


def _interleaved(calls: dict[str, Any], rounds: int) -> dict[str, float]:
    """Median seconds per call of each callable after one warm-up, round by round, so that load
    from other processes on a shared machine hits every variant alike."""
    import statistics

    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _pretrained_lm(args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    """The ``--lm smollm2`` policy at each depth against the default tiny policy (both reading
    MiniLM token states, the default sizes otherwise), trained and run the same way, interleaved."""
    import torch

    from perception.pretrained_lm import resolve_lm
    from policy.configuration_vla import VLAConfig
    from policy.modeling_vla import VLAModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    depths = args.lm_layers or ("2" if args.quick else "2,30")
    depths = [int(d) for d in str(depths).split(",") if d.strip()]
    t0 = time.perf_counter()
    resolve_lm(args.lm)  # dequantized into the cache once: not part of any timing below
    out: dict[str, Any] = {"device": device, "cache_ready_s": round(time.perf_counter() - t0, 1)}
    if device == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    stats = {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0]}
    state = {"mean": [0.0] * 15, "std": [1.0] * 15}
    variants = {"tiny_default": {}} | {f"{args.lm}_{d}_layers": {"lm": args.lm, "lm_layers": d}
                                       for d in depths}
    models, steps = {}, {}
    for name, extra in variants.items():
        torch.manual_seed(0)
        t = time.perf_counter()
        model = VLAModel.build(VLAConfig(text_encoder="minilm", state_dim=15, **extra), stats,
                               ["pick up the red cube"], state)
        cfg = model.cfg
        steps[name], trainable = _training_step(model, args.train_batch, device)
        models[name] = model
        out[name] = {"lm": f"{cfg.lm_layers}x{cfg.lm_hidden} {cfg.lm_family}"
                           + (f", LoRA rank {cfg.lora_rank} on {cfg.lora_targets}" if cfg.pretrained_lm else ""),
                     "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                     "trainable_params_m": round(trainable / 1e6, 3),
                     "build_s": round(time.perf_counter() - t, 1), "train_batch": args.train_batch}
    rounds = 3 if args.quick else 5
    for name, sec in _interleaved(steps, rounds).items():
        out[name].update(train_steps_per_s=1 / sec, train_samples_per_s=args.train_batch / sec,
                         train_rounds=rounds)
    del steps
    calls = {name: _inference_call(model, device) for name, model in models.items()}
    for name, sec in _interleaved(calls, repeat).items():
        out[name].update(actions_per_s=models[name].cfg.chunk / sec, reaction_latency_ms=sec * 1e3,
                         dtype="bf16" if device == "cuda" else "fp32", inference_rounds=repeat)
    base = out["tiny_default"]
    for name in variants:
        if name != "tiny_default":
            out[name]["vs_tiny_default"] = {
                "train_steps_per_s": out[name]["train_steps_per_s"] / base["train_steps_per_s"],
                "actions_per_s": out[name]["actions_per_s"] / base["actions_per_s"]}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    if getattr(args, "lm", "tiny") != "tiny":
        repeat = 9 if args.quick else 25
        result = {"torch_threads": torch.get_num_threads(), "lm": args.lm,
                  "pretrained_lm": _pretrained_lm(args, repeat)}
        result["seconds"] = round(time.perf_counter() - t0, 1)
        return result
    repeat = 9 if args.quick else 25
    model, obs = _model(192, 3, 3, args.chunk)
    result: dict[str, Any] = {"device": "cpu", "torch_threads": torch.get_num_threads()}
    default = _measure(model, obs, repeat)
    result.update({k: default[k] for k in ("actions_per_s", "reaction_latency_ms",
                                           "speedup_vs_generate")})
    result["default_model"] = {"chunk": default["chunk"], "params_m": default["params_m"],
                               "config": _describe(model.cfg)}
    result["text_encoder"] = _text_encoder(repeat)
    result["text_conditioned"] = _text_conditioned(
        getattr(args, "minilm_checkpoint", "checkpoints/vla-default"), repeat)
    result["backends"] = _backends(model, obs, repeat, torch.get_num_threads())
    if args.big_layers and not args.quick:
        big, obs = _model(4096, args.big_layers, 32, args.chunk, intermediate=11008)
        result["llama7b_width"] = {**_measure(big, obs, 3),
                                   "note": f"Llama-2-7B width, {args.big_layers} of 32 layers, "
                                           "random weights, fp32 (7B does not fit in RAM here)"}
        del big
    else:
        result["llama7b_width"] = {"skipped": "--quick (or --big-layers 0): the 7B-width LM "
                                              "takes minutes per path on this CPU"}
    device = getattr(args, "device_paths", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "off"
    if device == "off":
        result["gpu_paths"] = {"skipped": "no GPU here: bf16 and torch.compile paths run on CUDA "
                                          "(--device-paths cpu runs them on the CPU)"}
    else:
        big = 0 if args.quick else getattr(args, "device_big_layers", 32)
        result["gpu_paths"] = _device_paths(device, args.chunk, 5 if args.quick else repeat,
                                            big_layers=big if device == "cuda" else 0)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result
