"""Offline evaluation on recorded episodes: ``embodied eval --dataset DIR --episodes held-out``.

For a robot we cannot simulate, closed-loop success cannot be measured here; what can is how close
the policy's action chunks come to the recorded ones on episodes it never trained on. Every frame
of the chosen episodes goes through ``Policy.predict_chunk`` (the inference path, with its checks
of the recorded dataset features) and is scored against the chunk recorded from that frame on
(the actions at t, t+1, ..., t+K-1, the last one repeated past the episode's end, as in training):

- ``action_l1``: mean |predicted - recorded| in the dataset's units, overall, per action dimension
  and per chunk step (the first action is the one played first);
- ``action_l1_normalized``: the same in the tokenizer's [-1, 1] space (each dimension scaled by its
  q01..q99 range, so dimensions of different units compare);
- ``token_accuracy``: how often the predicted action falls in the recorded action's bin;
- ``baseline``: the L1 of always predicting the dataset's mean action, the number to beat.

``--episodes held-out`` scores the episodes the training run held out (``--holdout-episodes N``,
recorded in the checkpoint); ``all`` or indices such as ``3,4`` or ``2-5`` score others (the JSON
lists those seen in training). Every frame is scored, idle ones included. The JSON follows the
closed-loop evaluation's conventions: printed, and written to ``--out`` when given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policy.errors import PolicyError

HELD_OUT = "held-out"


@dataclass
class OfflineEvalConfig:
    checkpoint: str = field(default="checkpoints/vla-default", metadata={"help": "policy checkpoint directory"})
    dataset: str = field(default="", metadata={"help": "offline evaluation on this LeRobot v3.0 dataset's recorded episodes (robots we cannot simulate): action L1 and token accuracy instead of closed-loop success", "metavar": "DIR"})
    episodes: str = field(default=HELD_OUT, metadata={"help": "held-out (those the training run held out) | all | indices such as 3,4 or 2-5"})
    batch_size: int = field(default=32, metadata={"help": "frames per model call (offline evaluation)"})
    out: str = field(default="", metadata={"help": "write the JSON result here"})
    device: str = field(default="cpu", metadata={"help": "cpu | cuda"})


def select_episodes(spec: str, total: int, features: dict | None) -> list[int]:
    """The episode indices ``--episodes`` names; out-of-range or unknown ones are one line."""
    spec = spec.strip()
    if spec in (HELD_OUT, "heldout"):
        if not features:
            raise PolicyError("this checkpoint records no train/held-out split (trained before splits "
                              "were recorded); pass --episodes all or indices such as 3,4")
        trained_total = int(features["episodes"]["total"])
        if trained_total != total:
            raise PolicyError(f"the dataset has {total} episodes but the checkpoint's split was made on "
                              f"{trained_total} (from {features.get('root')}): another dataset? pass "
                              "--episodes with indices")
        held = [int(i) for i in features["episodes"]["held_out"]]
        if not held:
            raise PolicyError("the training run held out no episodes (train with --holdout-episodes N); "
                              "pass --episodes 3,4 to score chosen ones (seen in training)")
        return held
    if spec == "all":
        return list(range(total))
    out: list[int] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        lo, sep, hi = part.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if sep else [int(part)]
        except ValueError:
            raise PolicyError(f"--episodes {spec!r}: expected held-out, all or indices such as 3,4 "
                              "or 2-5") from None
        out.extend(span)
    if not out:
        raise PolicyError("--episodes names no episode")
    for i in out:
        if not 0 <= i < total:
            raise PolicyError(f"episode {i} out of range: the dataset has {total} (0..{total - 1})")
    return list(dict.fromkeys(out))


def chunk_targets(actions: np.ndarray, chunk: int) -> np.ndarray:
    """``[T, K, A]``: the actions at t..t+K-1, the last one repeated (``policy.data.load_frames``)."""
    t = np.arange(len(actions))[:, None] + np.arange(chunk)[None, :]
    return actions[np.minimum(t, len(actions) - 1)]


def _mean(x: np.ndarray, axes: tuple[int, ...]) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(x.mean(axis=axes)).reshape(-1)]


def score(pred: np.ndarray, target: np.ndarray, tokenizer: Any) -> dict[str, Any]:
    """L1 (raw and normalised) and bin accuracy of predicted chunks ``[N, K, A]``."""
    raw = np.abs(pred - target)
    norm = np.abs(tokenizer.normalize(pred) - tokenizer.normalize(target))
    hit = (tokenizer.to_bins(pred) == tokenizer.to_bins(target)).astype(np.float64)
    return {"action_l1": float(raw.mean()), "action_l1_per_dim": _mean(raw, (0, 1)),
            "action_l1_per_step": _mean(raw, (0, 2)),
            "action_l1_normalized": float(norm.mean()), "action_l1_normalized_per_dim": _mean(norm, (0, 1)),
            "token_accuracy": float(hit.mean()), "token_accuracy_per_dim": _mean(hit, (0, 1))}


def evaluate_offline(cfg: OfflineEvalConfig) -> dict[str, Any]:
    """Score the checkpoint on the chosen episodes; returns (and optionally writes) the result."""
    from policy.data import open_dataset, read_episode
    from policy.features import (camera_key, check_cameras, check_dataset, check_vectors,
                                 resolve_cameras, sizes_only)
    from policy.predict import Policy

    if not cfg.dataset:
        raise PolicyError("--dataset DIR is required for offline evaluation")
    if cfg.batch_size < 1:
        raise PolicyError("--batch-size must be at least 1")
    t0 = time.perf_counter()
    ds = open_dataset(cfg.dataset)
    policy = Policy.from_pretrained(cfg.checkpoint, device=cfg.device)
    model, features = policy.model, policy.model.dataset_features
    episodes = select_episodes(cfg.episodes, ds.num_episodes, features)
    if features:  # model input -> the dataset camera it was trained on
        check_cameras(features, list(ds.cameras))
        cameras = {c: f["dataset_camera"] for c, f in features["cameras"].items()}
        trained_on = set(int(i) for i in features["episodes"]["train"])
    else:  # checkpoints from before features were recorded read cameras of their own names
        cameras = resolve_cameras(policy.cfg.camera_list, list(ds.cameras), {})
        trained_on = set()
    chunk, tok = int(policy.cfg.chunk), model.action_tokenizer
    preds, targets, per_episode = [], [], []
    for n, i in enumerate(episodes):
        ep = read_episode(ds, i, list(cameras.values()))
        if n == 0:  # the dataset against what the checkpoint was trained on, once
            if features:
                check_dataset(features, ds, ep)
            else:
                check_vectors(sizes_only(model), ds, ep)
        actions = np.asarray(ep["action"], np.float32)
        frames = {c: np.asarray(ep[camera_key(ds, src)]) for c, src in cameras.items()}
        state = ep.get("observation.state")
        pred = []
        for lo in range(0, len(actions), cfg.batch_size):
            idx = range(lo, min(lo + cfg.batch_size, len(actions)))
            obs = [{**{c: f[t] for c, f in frames.items()},
                    **({"state": state[t]} if state is not None else {})} for t in idx]
            pred.append(policy.predict_chunk(obs, [ep["task"]] * len(obs)))
        pred_ep, target_ep = np.concatenate(pred), chunk_targets(actions, chunk)
        preds.append(pred_ep)
        targets.append(target_ep)
        s = score(pred_ep, target_ep, tok)
        per_episode.append({"episode": i, "frames": len(actions), "task": ep["task"],
                            "action_l1": s["action_l1"], "token_accuracy": s["token_accuracy"]})
    pred_all, target_all = np.concatenate(preds), np.concatenate(targets)
    mean_action = np.asarray(ds.stats["action"]["mean"], np.float32)
    baseline = np.broadcast_to(mean_action, target_all.shape)
    result: dict[str, Any] = {
        "checkpoint": cfg.checkpoint, "dataset": cfg.dataset, "config": cfg,
        "split": cfg.episodes, "episodes": episodes,
        "seen_in_training": sorted(trained_on.intersection(episodes)),
        "frames": int(len(pred_all)), "chunk": chunk,
        "action_names": (features or {}).get("action", {}).get("names"),
        **score(pred_all, target_all, tok),
        "baseline": {"predictor": "the dataset's mean action",
                     **{k: v for k, v in score(baseline.copy(), target_all, tok).items()
                        if k in ("action_l1", "action_l1_normalized", "token_accuracy")}},
        "per_episode": per_episode,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(f"offline eval on {len(episodes)} episode(s), {result['frames']} frames: action L1 "
          f"{result['action_l1']:.4g} (normalised {result['action_l1_normalized']:.3f}; mean-action "
          f"baseline {result['baseline']['action_l1']:.4g}), token accuracy "
          f"{result['token_accuracy']:.1%}", flush=True)
    if cfg.out:
        from common.atomic import write_json

        write_json(cfg.out, result)
    return result

