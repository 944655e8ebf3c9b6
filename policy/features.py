"""What a checkpoint was trained on: the dataset's features, and the checks that inputs match them.

A policy trained on one robot's data reads that robot's cameras (at their recorded size), a state
of its size and meaning, and predicts actions of its size. ``embodied train`` records these in the
``dataset`` block of the checkpoint's ``config.json``::

    {"root": "/data/so101", "repo_id": null, "fps": 30, "codebase_version": "v3.0",
     "cameras": {"agentview": {"dataset_camera": "top", "shape": [480, 640, 3]}},
     "state": {"dim": 6, "names": ["shoulder_pan", ...]},
     "action": {"dim": 6, "names": ["shoulder_pan", ...]},
     "episodes": {"total": 50, "train": [0, ..., 44], "held_out": [45, ..., 49]}}

``cameras`` maps each model input to the dataset camera that fed it (``--cameras top`` keeps the
dataset's names; ``--camera-map top=agentview`` feeds ``top`` to the input ``agentview``, e.g. to
fine-tune a checkpoint whose inputs have other names). ``episodes`` is the train/held-out split,
which ``embodied eval --dataset DIR --episodes held-out`` scores.

Every later use is checked against the block, with a one-line PolicyError that names the missing
or extra feature: a dataset (offline evaluation, ``check_dataset``) and the observations at
inference (``conform_observations``, called by ``Policy.predict_chunk``). Checkpoints trained before
the block existed (the shipped one) carry none and are checked as before. numpy only.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from perception.image import resize_images
from policy.errors import PolicyError

IMAGE_PREFIX = "observation.images."
STATE_KEY, ACTION_KEY = "observation.state", "action"


# --- cameras ------------------------------------------------------------------------------------
def parse_camera_map(text: str) -> dict[str, str]:
    """``"top=agentview,gripper=wrist"`` -> ``{"top": "agentview", "gripper": "wrist"}``
    (dataset camera -> model input)."""
    out: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        src, sep, dst = (s.strip() for s in pair.partition("="))
        if not sep or not src or not dst:
            raise PolicyError(f"--camera-map takes DATASET=MODEL pairs such as top=agentview, got {pair!r}")
        if src in out or dst in out.values():
            raise PolicyError(f"--camera-map names {src if src in out else dst!r} twice")
        out[src] = dst
    return out


def dataset_cameras(ds: Any, first: Mapping[str, Any]) -> list[str]:
    """The dataset's camera names (``top`` for ``observation.images.top``)."""
    if hasattr(ds, "cameras"):
        return list(ds.cameras)
    return [k.removeprefix(IMAGE_PREFIX) for k in first if k.startswith(IMAGE_PREFIX)]


def camera_key(ds: Any, camera: str) -> str:
    """The episode-dict key of a dataset camera."""
    return ds.camera_key(camera) if hasattr(ds, "camera_key") else IMAGE_PREFIX + camera


def camera_shape(ds: Any, first: Mapping[str, Any], camera: str) -> list[int]:
    """``[H, W, 3]`` of a dataset camera: from info.json through the reader (nothing decoded), or
    from the frames of ``first`` (an episode) for a dataset without ``camera_shape``."""
    if hasattr(ds, "camera_shape"):
        return [int(s) for s in ds.camera_shape(camera)]
    return [int(s) for s in np.asarray(first[camera_key(ds, camera)]).shape[1:]]


def resolve_cameras(model_cameras: Sequence[str], available: Sequence[str],
                    camera_map: Mapping[str, str]) -> dict[str, str]:
    """Model input -> the dataset camera that feeds it: the one ``camera_map`` names, else the
    camera of the same name. A name that does not resolve is one line listing the dataset's."""
    have = ", ".join(available) or "none"
    for src, dst in camera_map.items():
        if src not in available:
            raise PolicyError(f"--camera-map {src}={dst}: the dataset has no camera {src!r}; it has: {have}")
        if dst not in model_cameras:
            raise PolicyError(f"--camera-map {src}={dst}: the model has no input {dst!r} (its cameras: "
                              f"{', '.join(model_cameras)}; choose them with --cameras)")
    feeds = {dst: src for src, dst in camera_map.items()}
    out = {}
    for cam in model_cameras:
        src = feeds.get(cam, cam)
        if src not in available:
            raise PolicyError(f"the dataset has no camera {cam!r}; it has: {have} (pick them with "
                              f"--cameras {','.join(available[:2]) or 'NAME'}, or feed one to the model's "
                              f"input with --camera-map {available[0] if available else 'NAME'}={cam})")
        out[cam] = src
    return out


# --- recording ----------------------------------------------------------------------------------
def _names(ds: Any, key: str, dim: int) -> list[str] | None:
    """A feature's per-dimension names from info.json, when it lists ``dim`` of them."""
    names = getattr(ds, "features", {}).get(key, {}).get("names")
    if isinstance(names, Mapping):  # older LeRobot: {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == dim and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def dataset_features(ds: Any, first: Mapping[str, Any], cameras: Mapping[str, str],
                     train: Sequence[int], held_out: Sequence[int]) -> dict[str, Any]:
    """The ``dataset`` block for a checkpoint trained on ``ds`` (``first``: an episode of it, for
    the state and action sizes; its frames only where the dataset cannot say its camera shapes)."""
    info = getattr(ds, "info", {}) or {}
    state = first.get(STATE_KEY)
    state_dim = int(np.asarray(state).shape[-1]) if state is not None else 0
    action_dim = int(np.asarray(first[ACTION_KEY]).shape[-1])
    root = getattr(ds, "root", None)
    return {
        "root": str(root.resolve()) if root is not None else None,
        "repo_id": info.get("repo_id"),
        "fps": info.get("fps"),
        "codebase_version": info.get("codebase_version"),
        "cameras": {cam: {"dataset_camera": src, "shape": camera_shape(ds, first, src)}
                    for cam, src in cameras.items()},
        "state": {"dim": state_dim, "names": _names(ds, STATE_KEY, state_dim)},
        "action": {"dim": action_dim, "names": _names(ds, ACTION_KEY, action_dim)},
        "episodes": {"total": int(ds.num_episodes), "train": [int(i) for i in train],
                     "held_out": [int(i) for i in held_out]},
    }


def split_episodes(total: int, holdout: int, max_episodes: int = 0) -> tuple[list[int], list[int]]:
    """(train, held out): the last ``holdout`` episodes are held out; training uses the rest (the
    first ``max_episodes`` of them when set)."""
    if holdout < 0 or holdout >= total:
        raise PolicyError(f"--holdout-episodes {holdout}: the dataset has {total} episodes, so hold "
                          f"out 0 to {total - 1}")
    train = list(range(total - holdout))
    return (train[:max_episodes] if max_episodes else train), list(range(total - holdout, total))


def sizes_only(model: Any) -> dict[str, Any]:
    """The state and action a checkpoint from before features were recorded reads: sizes only."""
    state = int(model.cfg.state_dim) if model.state_proj is not None else 0
    return {"state": {"dim": state, "names": None}, "action": {"dim": int(model.cfg.action_dim), "names": None}}


# --- checking -----------------------------------------------------------------------------------
def _size(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def _compare_vector(key: str, trained: Mapping[str, Any], dim: int, names: list[str] | None) -> None:
    """A state or action feature against the trained one: missing and extra names, or dims."""
    want, want_names = int(trained["dim"]), trained.get("names")
    if want_names and names and names != want_names:
        missing = [n for n in want_names if n not in names]
        extra = [n for n in names if n not in want_names]
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                    ([f"extra {', '.join(extra)}"] if extra else [])
            raise PolicyError(f"{key} does not match the checkpoint's: {'; '.join(parts)}")
        raise PolicyError(f"{key} names the same dimensions in another order than the checkpoint "
                          f"({', '.join(want_names)})")
    if dim != want:
        what = f"{dim - want} extra" if dim > want else f"{want - dim} missing"
        listed = f" ({', '.join(want_names)})" if want_names else ""
        raise PolicyError(f"{key} has {dim} dimensions, the checkpoint was trained on {want}{listed}: "
                          f"{what}")


def check_dataset(trained: Mapping[str, Any], ds: Any, first: Mapping[str, Any] | None = None) -> None:
    """The dataset ``ds`` has what the checkpoint was trained on: each camera (by its dataset name,
    at the same size), the state and the action, with the same sizes and names. Extra cameras are fine (unused); anything else that differs is one line naming it.
    ``first``: any episode of it (default: episode 0)."""
    first = first if first is not None else ds.episode(0)
    check_cameras(trained, dataset_cameras(ds, first))
    for cam, spec in trained["cameras"].items():
        src = spec["dataset_camera"]
        shape = camera_shape(ds, first, src)
        if shape != list(spec["shape"]):
            raise PolicyError(f"camera {src!r} is {_size(shape)} in the dataset, the checkpoint was "
                              f"trained on {_size(spec['shape'])}")
    check_vectors(trained, ds, first)


def check_cameras(trained: Mapping[str, Any], available: Sequence[str]) -> None:
    """Every camera the checkpoint was trained on is among the dataset's ``available`` ones."""
    for cam, spec in trained["cameras"].items():
        src = spec["dataset_camera"]
        if src not in available:
            reads = "" if src == cam else f", which the checkpoint reads as {cam!r}"
            raise PolicyError(f"the dataset lacks camera {src!r}{reads}; it has: "
                              f"{', '.join(available) or 'none'}")


def check_vectors(trained: Mapping[str, Any], ds: Any, first: Mapping[str, Any]) -> None:
    """The dataset's state and action against the trained ones (a checkpoint that reads no state
    ignores the dataset's)."""
    for key, name in ((STATE_KEY, "state"), (ACTION_KEY, "action")):
        want = trained[name]
        if name == "state" and not int(want["dim"]):
            continue
        if key not in first:
            raise PolicyError(f"the dataset has no {key}; the checkpoint was trained on a "
                              f"{want['dim']}-D {key}")
        dim = int(np.asarray(first[key]).shape[-1])
        _compare_vector(f"the dataset's {key}", want, dim, _names(ds, key, dim))


def conform_observations(trained: Mapping[str, Any], observations: Sequence[Mapping],
                         size: int) -> list[dict[str, Any]]:
    """Observations checked against the recorded features, each camera resized to the model's
    ``size`` (``perception.image``, as in training) and keyed by the model's input name.

    A camera is found under the model's input name or under the dataset camera that fed it (so a
    robot may send its own camera names); one missing, of another size or of the wrong type is one
    line naming it. The state's length is checked against the recorded one, naming extra or
    missing dimensions; its values are checked later, as for every checkpoint.
    """
    out = []
    for i, obs in enumerate(observations):
        if not isinstance(obs, Mapping):
            raise PolicyError("an observation must be a dict of camera images (and 'state')")
        new: dict[str, Any] = {}
        for cam, spec in trained["cameras"].items():
            src, shape = spec["dataset_camera"], tuple(spec["shape"])
            key = cam if cam in obs else src if src in obs else None
            if key is None:
                named = repr(cam) if cam == src else f"{cam!r} (dataset camera {src!r})"
                raise PolicyError(f"observation {i} lacks camera {named}, "
                                  f"which the checkpoint was trained on at {_size(shape)} "
                                  f"(has: {sorted(obs)})")
            img = obs[key]
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
                got = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
                raise PolicyError(f"image {key!r} must be a uint8 RGB numpy array, got {got}")
            if img.shape != shape:
                raise PolicyError(f"image {key!r} has shape {img.shape}; the checkpoint was trained on "
                                  f"{_size(shape)} frames from dataset camera {src!r}")
            new[cam] = resize_images(img, size)
        if "state" in obs:
            state = obs["state"]
            dim = int(np.asarray(state).shape[-1]) if np.ndim(state) else 0
            want = trained["state"]
            if int(want["dim"]) and np.ndim(state) == 1 and dim != int(want["dim"]):
                _compare_vector(f"observation {i}: 'state'", want, dim, None)
            new["state"] = state
        out.append(new)
    return out


def square_size(trained: Mapping[str, Any] | None) -> int | None:
    """The side every recorded camera shares when all are square, else None."""
    if not trained:
        return None
    sides = {(s["shape"][0], s["shape"][1]) for s in trained["cameras"].values()}
    if len(sides) == 1:
        h, w = next(iter(sides))
        return int(h) if h == w else None
    return None
