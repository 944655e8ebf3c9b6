"""Synthetic data for the policy tests: a dataset object with the LeRobotDataset interface whose
correct action depends on the image (a bright square's side), so a model must look to fit it."""

from __future__ import annotations

import numpy as np

from policy.configuration_vla import VLAConfig

SIZE = 32  # obs image side in tests
STATE_DIM = 4


def tiny_config(**overrides) -> VLAConfig:
    base = dict(image_size=32, patch_size=8, obs_image_size=SIZE, vision_hidden=32,
                vision_layers=1, lm_hidden=64, lm_layers=2, lm_heads=2, chunk=2,
                text_vocab_size=64, max_text_tokens=8, state_dim=STATE_DIM)
    base.update(overrides)
    return VLAConfig(**base)


def save_sim_checkpoint(directory) -> str:
    """An untrained checkpoint that runs in the tabletop sim (15-d state, 32 px images); returns its path.

    Seeded, so the tests that roll it out (closed-loop eval, DAgger) see the same policy every run.
    """
    import torch

    from policy.modeling_vla import VLAModel

    torch.manual_seed(0)
    stats = {"q01": [-0.03] * 6 + [0.0], "q99": [0.03] * 6 + [1.0]}
    model = VLAModel.build(tiny_config(state_dim=15, obs_image_size=32), stats,
                           ["touch the red cube"], {"mean": [0.0] * 15, "std": [1.0] * 15})
    model.save_pretrained(directory)
    return str(directory)


def image_with_square(left: bool, rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 40, size=(SIZE, SIZE, 3), dtype=np.uint8)
    x0 = 2 if left else SIZE - 12
    img[10:20, x0:x0 + 10] = 255
    return img


class SyntheticDataset:
    """Episodes where the action's x moves towards the side the white square is on."""

    def __init__(self, num_episodes: int = 4, length: int = 6, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.tasks = ["move to the square", "go towards the white block"]
        self._episodes = []
        for e in range(num_episodes):
            left = e % 2 == 0
            imgs = np.stack([image_with_square(left, rng) for _ in range(length)])
            action = np.zeros((length, 7), np.float32)
            action[:, 0] = -0.02 if left else 0.02
            action[:, 1] = rng.uniform(-0.01, 0.01, length)
            action[:, 6] = float(left)
            self._episodes.append({
                "action": action,
                "observation.state": rng.normal(size=(length, STATE_DIM)).astype(np.float32),
                "observation.images.agentview": imgs,
                "observation.images.wrist": imgs[:, ::-1].copy(),
                "task": self.tasks[(e // 2) % 2],  # instruction independent of the side
            })
        actions = np.concatenate([e["action"] for e in self._episodes])
        states = np.concatenate([e["observation.state"] for e in self._episodes])
        self.stats = {
            "action": _stats(actions), "observation.state": _stats(states)}
        self.info = {"fps": 10}

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    def episode(self, i: int) -> dict:
        return self._episodes[i]


def _stats(x: np.ndarray) -> dict:
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "q01": np.quantile(x, 0.01, 0).tolist(),
            "q99": np.quantile(x, 0.99, 0).tolist()}
