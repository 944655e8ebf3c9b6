"""Run by test_ddp.py under torchrun: the same tiny training as the single-process reference."""

import sys

import torch

from policy.train import TrainConfig, train
from policy_helpers import SyntheticDataset, tiny_config

torch.set_num_threads(1)


def run(out: str, grad_accum: int = 1) -> None:
    cfg = TrainConfig(out=out, steps=3, batch_size=4, grad_accum=grad_accum, log_every=1,
                      save_every=100, lr=2e-3, warmup_steps=1, seed=11, augment=True)
    train(cfg, tiny_config(), SyntheticDataset(num_episodes=3, length=4))


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
