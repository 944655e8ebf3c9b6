"""``embodied dagger``: a checkpoint drives, the expert labels, failures are kept, and the result
is a dataset the trainer reads (aggregated with expert episodes already in the directory)."""

import numpy as np
import pytest
from policy.dagger import DaggerConfig, run_dagger
from policy.errors import PolicyError
from policy_helpers import save_sim_checkpoint
from sim.collect import CollectConfig, collect
from sim.dataset import LeRobotDataset


def test_dagger_aggregates_policy_rollouts_with_expert_labels(tmp_path):
    ckpt = save_sim_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "agg"
    # Two expert episodes first, then two driven by the (untrained) policy in the same directory.
    collect(CollectConfig(task="Reach", episodes=2, out=str(out), image_size=(32, 32), progress=False,
                          fsync=False))
    summary = run_dagger(DaggerConfig(checkpoint=ckpt, task="Reach", episodes=4,
                                      out=str(out), fsync=False))
    assert summary["complete"] and summary["episodes"] == 4 and summary["resumed_from"] == 2
    # An untrained policy fails Reach, and its failed rollouts are kept: they are the point.
    assert summary["per_task"]["Reach"]["saved"] == 2 and summary["success_rate"]["Reach"] < 1.0
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 4
    driven = ds.episode(3)
    actions = np.asarray(driven["action"])
    # The labels are the expert's (bounded moves towards the target, gripper open), recorded on the
    # policy's own states, with the checkpoint's cameras at its image size.
    assert actions.shape[1] == 7 and np.all(np.abs(actions[:, :3]) <= 0.05) and np.all(actions[:, 6] == 0)
    assert len(actions) > 10


def test_dagger_rejects_bad_settings(tmp_path):
    with pytest.raises(PolicyError, match="episodes"):
        run_dagger(DaggerConfig(checkpoint=str(tmp_path / "none"), episodes=0))
