"""Inputs that cannot be trusted are refused with one line, never acted on or allocated from:
malformed checkpoints (config, statistics, weights) and non-finite or absurd observations."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from policy.errors import PolicyError
from policy.modeling_vla import VLAModel

ROOT = Path(__file__).resolve().parents[2]
CKPT = ROOT / "checkpoints" / "vla-default"
INPUTS = ROOT / "tests" / "checkpoints" / "inputs.npz"

pytestmark = pytest.mark.skipif(not CKPT.is_dir(), reason="no shipped checkpoint")


def _edit_json(name, change):
    def apply(d: Path) -> None:
        data = json.loads((d / name).read_text())
        data = change(data)
        (d / name).write_text(json.dumps(data))
    return apply


def _set(path: str, value):
    """Set a dotted field (``lm.num_hidden_layers``) of a JSON object."""
    def change(data):
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
        return data
    return change


def _drop(key: str):
    def change(data):
        del data[key]
        return data
    return change


def _first_vision(key, value):
    def change(data):
        data["vision"]["backbones"][0]["config"][key] = value
        return data
    return change


def _transpose_weight(d: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(d / "model.safetensors"))
    weights["projector.0.weight"] = weights["projector.0.weight"].t().contiguous()
    save_file(weights, str(d / "model.safetensors"))


def _state_stat(key, index, value):
    def change(data):
        data["state"][key][index] = value
        return data
    return change


# (id, how to break a copy of the shipped checkpoint, words the one-line error must contain)
BROKEN = [
    ("config-is-a-list", _edit_json("config.json", lambda d: [d]), ["config.json", "JSON object"]),
    ("vla-is-a-number", _edit_json("config.json", _set("vla", 5)), ["config.json", "'vla'", "object"]),
    ("lm-missing", _edit_json("config.json", _drop("lm")), ["config.json", "'lm'", "missing"]),
    ("negative-size", _edit_json("config.json", _set("vla.lm_layers", -3)), ["config.json", "vla.lm_layers", "-3"]),
    ("absurd-layers", _edit_json("config.json", _set("lm.num_hidden_layers", 10 ** 6)),
     ["config.json", "lm.num_hidden_layers", "1000000"]),
    ("absurd-hidden", _edit_json("config.json", _set("lm.hidden_size", 10 ** 9)), ["config.json", "lm.hidden_size"]),
    ("absurd-vision", _edit_json("config.json", _first_vision("hidden_sizes", [64, 128, 10 ** 8])),
     ["config.json", "vision.backbones[0].config.hidden_sizes"]),
    ("absurd-bins", _edit_json("config.json", _set("vla.n_bins", 10 ** 9)), ["config.json", "vla.n_bins"]),
    ("size-as-text", _edit_json("config.json", _set("vla.chunk", "four")), ["config.json", "vla.chunk"]),
    ("size-as-float", _edit_json("config.json", _set("lm.num_attention_heads", 2.5)),
     ["config.json", "lm.num_attention_heads"]),
    ("unknown-model-type", _edit_json("config.json", _set("lm.model_type", "teleporter")),
     ["config.json", "'lm'", "teleporter"]),
    ("unknown-vision-family", _edit_json("config.json", lambda d: _set("vision.backbones", [{"family": "x", "config": {}}])(d)),
     ["config.json", "'vision'"]),
    ("vision-not-a-list", _edit_json("config.json", _set("vision.backbones", {"a": 1})), ["config.json", "vision.backbones"]),
    ("unknown-decoding", _edit_json("config.json", _set("vla.decoding", "sideways")), ["config.json", "sideways"]),
    ("layers-not-in-weights", _edit_json("config.json", _set("lm.num_hidden_layers", 4)),
     ["model.safetensors", "missing", "layers.3"]),
    ("transposed-tensor", _transpose_weight, ["model.safetensors", "projector.0.weight", "[256, 192]"]),
    ("stats-a-list", _edit_json("stats.json", lambda d: [d]), ["stats.json", "JSON object"]),
    ("action-q01-nan", _edit_json("stats.json", lambda d: _set("action.q01", [math.nan] * 7)(d)),
     ["stats.json", "action.q01", "NaN"]),
    ("action-q99-below-q01", _edit_json("stats.json", lambda d: _set("action.q99", [-1.0] * 7)(d)),
     ["stats.json", "action.q99", "q01"]),
    ("action-wrong-length", _edit_json("stats.json", lambda d: _set("action.q01", [0.0] * 6)(d)),
     ["stats.json", "action.q01", "7 numbers"]),
    ("state-mean-nan", _edit_json("stats.json", _state_stat("mean", 3, math.nan)), ["stats.json", "state.mean", "NaN"]),
    ("state-std-inf", _edit_json("stats.json", _state_stat("std", 0, math.inf)), ["stats.json", "state.std", "infinity"]),
    ("state-std-negative", _edit_json("stats.json", _state_stat("std", 2, -0.5)), ["stats.json", "state.std", "negative"]),
    ("state-q-reversed", _edit_json("stats.json", lambda d: (d["state"].update(q01=[1.0] * 15, q99=[0.0] * 15), d)[1]),
     ["stats.json", "state.q99"]),
    ("state-missing", _edit_json("stats.json", _set("state", None)), ["stats.json", "'state'", "15-D"]),
    ("state-wrong-length", _edit_json("stats.json", lambda d: _set("state.mean", [0.0] * 14)(d)),
     ["stats.json", "state.mean", "15 numbers"]),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One copy of the shipped checkpoint; each case breaks its own copy of it."""
    d = tmp_path_factory.mktemp("ckpt") / "vla"
    shutil.copytree(CKPT, d, ignore=shutil.ignore_patterns("*.png", "eval.json"))
    return d


def _broken(pristine: Path, tmp_path: Path, breaker) -> Path:
    d = tmp_path / "bad"
    shutil.copytree(pristine, d)
    breaker(d)
    return d


@pytest.mark.parametrize("name, breaker, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_malformed_checkpoint_is_one_line_error_naming_file_and_field(pristine, tmp_path, name, breaker, words):
    bad = _broken(pristine, tmp_path, breaker)
    with pytest.raises(PolicyError) as info:
        VLAModel.from_pretrained(bad)
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message


def test_absurd_size_is_refused_before_torch_allocates(pristine, tmp_path, monkeypatch):
    """10**6 layers: refused by the bounds, with no module ever built (not even on meta)."""
    import perception.lm

    built = []
    monkeypatch.setattr(perception.lm, "build_lm", lambda *a, **k: built.append(1))
    bad = _broken(pristine, tmp_path, _edit_json("config.json", _set("lm.num_hidden_layers", 10 ** 6)))
    with pytest.raises(PolicyError, match="out of range"):
        VLAModel.from_pretrained(bad)
    assert built == []


def test_pristine_copy_still_loads(pristine):
    model = VLAModel.from_pretrained(pristine)
    assert model.cfg.state_dim == 15 and model.state_proj is not None


def test_eval_with_a_broken_checkpoint_exits_2_with_one_line(pristine, tmp_path):
    bad = _broken(pristine, tmp_path, _edit_json("config.json", _set("lm.num_hidden_layers", 10 ** 6)))
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "eval", "--checkpoint", str(bad), "--episodes", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "lm.num_hidden_layers" in lines[0] and "config.json" in lines[0]


# --- observations ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy():
    from policy.predict import Policy

    return Policy.from_pretrained(CKPT)


def _obs(**changes):
    z = np.load(INPUTS)
    obs = {"agentview": z["agentview"], "wrist": z["wrist"], "state": z["state"].copy()}
    obs.update(changes)
    return obs


def test_describe_names_the_state_dim(policy):
    spec = policy.describe()
    assert spec["state_dim"] == 15 and spec["use_state"] is True
    assert {"chunk", "replan", "cameras", "image_size"} <= set(spec)


@pytest.mark.parametrize("index, value, words", [
    (3, np.nan, ["NaN", "[3]"]),
    (0, np.inf, ["infinity", "[0]"]),
    (0, 485.0, ["'state'[0]", "far outside"]),  # millimetres where metres belong
    (13, 144.0, ["'state'[13]", "far outside"]),  # degrees where radians belong
    (2, -1e30, ["'state'[2]", "far outside"]),
])
def test_untrusted_state_is_refused(policy, index, value, words):
    obs = _obs()
    obs["state"][index] = value
    with pytest.raises(PolicyError) as info:
        policy.predict_chunk([obs], ["pick up the red cube"])
    for word in words:
        assert word in str(info.value), str(info.value)


def test_state_of_the_wrong_shape_is_refused_alone(policy):
    good = _obs()
    with pytest.raises(PolicyError, match=r"shape \(1, 15\)"):
        policy.predict_chunk([good, _obs(state=good["state"][None])], ["go", "go"])


def test_reachable_states_far_from_the_data_are_accepted(policy):
    """The range check refuses wrong units, not unusual poses: a tilted tool (quaternion component
    at 0.7, ~580 data std away) and a joint turned by pi still get an action."""
    obs = _obs()
    obs["state"][3] = 0.7
    obs["state"][12] += np.pi
    chunk = policy.predict_chunk([obs], ["pick up the red cube"])
    assert chunk.shape == (1, 4, 7) and np.all(np.isfinite(chunk))


@pytest.mark.parametrize("image", [
    np.full((64, 64, 3), np.nan, np.float32),
    np.full((64, 64, 3), 0.5, np.float64),
])
def test_non_uint8_images_are_refused(policy, image):
    with pytest.raises(PolicyError, match="uint8"):
        policy.predict_chunk([_obs(wrist=image)], ["pick up the red cube"])
