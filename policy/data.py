"""Dataset -> in-memory training frames -> batches, with a resumable seeded order and augmentation.

Datasets here are small (tens of episodes of 64 px frames), so every frame is decoded once, resized
to the model's input size and kept in memory; a batch is then plain indexing. No-op frames (no
motion and no gripper change, e.g. an expert idling) are dropped by default: a policy that learns
to stand still does (OpenVLA's filtered demonstrations).

Order: an endless stream of per-epoch permutations drawn from ``seed`` and the epoch number, so
"position p in the stream" is the whole sampler state and a resumed run sees exactly the same
batches. Augmentation parameters come from a generator seeded with (seed, step) and are drawn for
the whole global batch, so every DDP rank augments its slice exactly as a single process would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from perception.image import resize_images
from policy.action_tokenizer import ActionTokenizer, validate_stats
from policy.errors import PolicyError

IMAGE_PREFIX = "observation.images."


def open_dataset(path: str | Path) -> Any:
    """A :class:`sim.dataset.LeRobotDataset` (ours or any LeRobot v3.0 one), with an action feature
    and its statistics checked."""
    from sim.dataset import LeRobotDataset

    ds = LeRobotDataset(path)
    if "action" not in ds.features:
        raise PolicyError(f"dataset {path} has no 'action' feature (it has: {', '.join(ds.features)}); "
                          "a policy learns from recorded actions")
    check_dataset_stats(ds)
    return ds


def check_dataset_stats(ds: Any, action_dim: int = 0) -> None:
    """The dataset's action statistics exist and are usable (``action_dim`` long when given)."""
    stats = getattr(ds, "stats", None)
    if not stats or "action" not in stats:
        raise PolicyError("the dataset has no action statistics (meta/stats.json)")
    validate_stats(stats["action"], dim=action_dim or len(stats["action"].get("q01", [])) or 7,
                   name="dataset action")


def our_action_convention(ds: Any) -> bool:
    """True when the actions follow our convention: 7-D end-effector deltas with a binary gripper
    last (``sim.dataset_layout.ACTION_NAMES``, which our recorder writes into info.json).

    Only then does the tokenizer decode the gripper by sign and do idle frames (no motion, same
    gripper) mean anything: a foreign arm's actions are usually joint positions, where "all near
    zero" is a pose, not idling, and its gripper is a joint (SO-101's is its 6th). Datasets without
    ``features`` (the duck-typed ones of the tests) are ours.
    """
    from sim.dataset_layout import ACTION_NAMES

    features = getattr(ds, "features", None)
    if features is None:
        return True
    return features.get("action", {}).get("names") == ACTION_NAMES


@dataclass
class FrameTable:
    """Every kept frame of the dataset, ready to batch."""

    images: np.ndarray  # uint8 [N, C, S, S, 3]
    states: np.ndarray  # float32 [N, D]
    task_ids: np.ndarray  # int64 [N] into ``instructions``
    instructions: list[str]
    chunks: np.ndarray  # float32 [N, K, A]: the action now and the K-1 after it
    targets: np.ndarray | None = None  # float32 [N, 6]: target_features, when asked for
    steps: np.ndarray | None = None  # int64 [N]: each kept frame's index in its episode

    def sampling_order(self, early_frames: int = 0, early_repeat: int = 1) -> np.ndarray:
        """Frame indices one epoch draws from: each frame once, and the first ``early_frames`` of
        every episode ``early_repeat`` times in all.

        Why: where to go is decided in an episode's first few frames (which object the
        instruction names), and a uniform draw gives those frames a few percent of the updates;
        the failures of the shipped policy are all made there.
        """
        order = np.arange(len(self), dtype=np.int64)
        if early_frames <= 0 or early_repeat <= 1 or self.steps is None:
            return order
        early = order[self.steps < early_frames]
        return np.concatenate([order, np.tile(early, early_repeat - 1)])

    def __len__(self) -> int:
        return len(self.states)


def is_noop(actions: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """True where the arm does not move and the gripper keeps its previous command."""
    still = np.abs(actions[:, :6]).max(axis=1) < eps
    grip = actions[:, 6]
    same_grip = np.concatenate([[True], grip[1:] == grip[:-1]])
    return still & same_grip


# Fixed scales of the auxiliary target features: the tabletop workspace centre and a length of
# the order of its half-width, so the six numbers are O(1) without statistics to save.
TARGET_CENTRE = np.array([0.5, 0.0, 0.03], dtype=np.float32)
TARGET_SCALE = 0.15


def target_features(target_pos: np.ndarray, tcp_pos: np.ndarray) -> np.ndarray:
    """[N, 6]: the target's centre in the workspace frame and relative to the gripper, scaled."""
    target_pos = np.asarray(target_pos, np.float32)
    rel = target_pos - np.asarray(tcp_pos, np.float32)
    return np.concatenate([(target_pos - TARGET_CENTRE) / TARGET_SCALE, rel / TARGET_SCALE], axis=1)


def episode_target_positions(ds: Any, i: int) -> np.ndarray:
    """Per-frame centre of the episode's target object, from the recorded ground truth."""
    frames = ds.episode_ground_truth(i)["frames"]
    k = 0
    while f"objects.{k}.position" in frames:
        flag = frames.get(f"objects.{k}.is_target")
        if flag is not None and bool(np.asarray(flag).reshape(-1)[0]):
            return np.asarray(frames[f"objects.{k}.position"], np.float32)
        k += 1
    raise PolicyError(f"episode {i} has no per-frame target position in its ground truth "
                      "(record it with `embodied sim collect`, which logs it)")


def read_episode(ds: Any, i: int, cameras: Sequence[str]) -> dict[str, Any]:
    """Episode ``i`` with only ``cameras`` decoded when the dataset can skip the others (the
    reader can; a duck-typed test dataset returns everything)."""
    if hasattr(ds, "camera_key"):
        return ds.episode(i, cameras=list(cameras))
    return ds.episode(i)


def load_frames(ds: Any, cameras: Sequence[str], image_size: int, chunk: int,
                drop_noops: bool = True, max_episodes: int = 0,
                with_targets: bool = False, episodes: Sequence[int] | None = None) -> FrameTable:
    """Decode, filter and stack the episodes; action chunks are padded with the last action.

    ``cameras`` are the dataset cameras feeding the model's inputs, in the model's order
    (``policy.features.resolve_cameras``); ``episodes`` the ones to use (default: the first
    ``max_episodes``, or all). ``with_targets`` also reads each frame's target position from the
    ground truth (for the auxiliary grounding loss). ``drop_noops`` needs our action convention
    (:func:`our_action_convention`).
    """
    from policy.features import camera_key

    images, states, task_ids, chunks, targets, steps = [], [], [], [], [], []
    instructions: list[str] = []
    if episodes is None:
        n = ds.num_episodes if not max_episodes else min(max_episodes, ds.num_episodes)
        episodes = range(n)
    for i in episodes:
        ep = read_episode(ds, i, cameras)
        actions = np.asarray(ep["action"], dtype=np.float32)
        keep = ~is_noop(actions) if drop_noops else np.ones(len(actions), bool)
        if not keep.any():
            continue
        actions = actions[keep]
        cams = []
        for cam in cameras:
            key = camera_key(ds, cam)
            if key not in ep:
                have = [k.removeprefix(IMAGE_PREFIX) for k in ep if k.startswith(IMAGE_PREFIX)]
                raise PolicyError(f"the dataset has no camera {cam!r} (has: {have})")
            cams.append(resize_images(np.asarray(ep[key])[keep], image_size))
        images.append(np.stack(cams, axis=1))
        state = ep.get("observation.state")
        state = (np.asarray(state, dtype=np.float32) if state is not None
                 else np.zeros((len(keep), 0), np.float32))
        states.append(state[keep])
        if with_targets:
            pos = episode_target_positions(ds, i)
            if len(pos) != len(state):
                raise PolicyError(f"episode {i}: {len(pos)} ground-truth frames for {len(state)} frames")
            targets.append(target_features(pos, state[:, :3])[keep])
        task = str(ep["task"])
        if task not in instructions:
            instructions.append(task)
        task_ids.append(np.full(len(actions), instructions.index(task), dtype=np.int64))
        t = np.arange(len(actions))[:, None] + np.arange(chunk)[None, :]
        chunks.append(actions[np.minimum(t, len(actions) - 1)])
        steps.append(np.arange(len(actions), dtype=np.int64))
    if not images:
        raise PolicyError("the dataset has no usable frames (all episodes empty or idle)")
    return FrameTable(np.concatenate(images), np.concatenate(states), np.concatenate(task_ids),
                      instructions, np.concatenate(chunks),
                      np.concatenate(targets) if with_targets else None, np.concatenate(steps))


class StreamSampler:
    """Indices from an endless stream of seeded per-epoch permutations; state = one position."""

    def __init__(self, n: int, seed: int, position: int = 0) -> None:
        self.n, self.seed, self.position = n, seed, position
        self._cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cache = {epoch: torch.randperm(self.n, generator=g).numpy()}
        return self._cache[epoch]

    def next(self, count: int) -> np.ndarray:
        out = np.empty(count, dtype=np.int64)
        for j in range(count):
            epoch, k = divmod(self.position + j, self.n)
            out[j] = self._perm(epoch)[k]
        self.position += count
        return out

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "position": self.position, "n": self.n}


def augment(images: torch.Tensor, generator: torch.Generator, crop_scale: float = 0.85,
            jitter: float = 0.2) -> torch.Tensor:
    """Random resized crop + brightness/contrast/saturation jitter on ``[B, C, 3, S, S]`` floats.

    One set of parameters per sample (shared by its cameras), drawn from ``generator`` for the
    whole batch first, so the result does not depend on how the batch is split.
    """
    b, c, _, s, _ = images.shape
    u = torch.rand(b, 7, generator=generator)
    area = crop_scale + (1 - crop_scale) * u[:, 0]
    ratio = torch.exp((u[:, 1] - 0.5) * 0.2)  # aspect in about [0.9, 1.1]
    sx = torch.sqrt(area * ratio).clamp(max=1.0)
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (u[:, 2] * 2 - 1) * (1 - sx)
    ty = (u[:, 3] * 2 - 1) * (1 - sy)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    theta = theta.repeat_interleave(c, dim=0)
    flat = images.flatten(0, 1)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    x = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x.view(b, c, 3, s, s)
    bright = (1 + (u[:, 4] * 2 - 1) * jitter).view(b, 1, 1, 1, 1)
    contrast = (1 + (u[:, 5] * 2 - 1) * jitter).view(b, 1, 1, 1, 1)
    sat = (1 + (u[:, 6] * 2 - 1) * jitter).view(b, 1, 1, 1, 1)
    x = x * bright
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = (x - mean) * contrast + mean
    gray = (0.299 * x[:, :, 0:1] + 0.587 * x[:, :, 1:2] + 0.114 * x[:, :, 2:3])
    x = (x - gray) * sat + gray
    return x.clamp(0, 1)


def make_batch(table: FrameTable, idx: np.ndarray, text_ids: torch.Tensor, text_mask: torch.Tensor,
               action_tok: ActionTokenizer, state_stats: dict | None) -> dict[str, torch.Tensor]:
    """Tensors for frames ``idx``; ``text_ids``/``text_mask`` are pre-encoded per instruction
    (``VLAModel.encode_text``: token ids ``[I, L]``, or pretrained token states ``[I, L, 384]``),
    so a batch indexes them by task and no step runs a text encoder."""
    from perception.image import to_tensor
    from policy.processor import normalize_state

    chunk = table.chunks[idx]  # [B, K, 7]
    tid = torch.from_numpy(table.task_ids[idx])
    extra = {} if table.targets is None else {"aux_target": torch.from_numpy(table.targets[idx])}
    return {**extra,
        "images": to_tensor(table.images[idx]),
        "text_ids": text_ids[tid],
        "text_mask": text_mask[tid],
        "state": normalize_state(table.states[idx], state_stats),
        "target_bins": torch.from_numpy(action_tok.to_bins(chunk).reshape(len(idx), -1)),
        "target_norm": torch.from_numpy(action_tok.normalize(chunk).reshape(len(idx), -1)),
        "chunk": torch.from_numpy(chunk),
    }
