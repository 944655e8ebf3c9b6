"""`embodied train` end to end on a real LeRobot v3 dataset written by sim.dataset."""

import json

import numpy as np

from agent.cli import main
from policy_helpers import SyntheticDataset

TINY = ["--image-size", "32", "--patch-size", "8", "--vision-hidden", "32", "--vision-layers", "1",
        "--lm-hidden", "64", "--lm-layers", "1", "--lm-heads", "2", "--chunk", "2",
        "--text-vocab-size", "64", "--max-text-tokens", "8"]


def _write_dataset(root):
    from sim.dataset import LeRobotWriter

    src = SyntheticDataset(num_episodes=2, length=4)
    with LeRobotWriter(root, fps=10, cameras=["agentview", "wrist"], image_size=(32, 32),
                       state_dim=4) as writer:
        for i in range(src.num_episodes):
            ep = src.episode(i)
            rec = writer.start_episode(task=ep["task"], seed=i)
            for t in range(len(ep["action"])):
                rec.add_frame({"agentview": ep["observation.images.agentview"][t],
                               "wrist": ep["observation.images.wrist"][t]},
                              ep["observation.state"][t], ep["action"][t])
            rec.finish(success=True)


def test_embodied_train_then_resume_and_errors(tmp_path, capsys):
    _write_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "data"), "--out", str(run), "--steps", "4",
                 "--stop-after", "2", "--batch-size", "4", "--log-every", "1", *TINY]) == 0
    assert main(["train", "--resume", str(run)]) == 0
    state = json.loads((run / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [1, 2, 3, 4]
    cfg = json.loads((run / "checkpoint" / "config.json").read_text())["vla"]
    assert cfg["obs_image_size"] == 32 and cfg["state_dim"] == 4
    stats = json.loads((run / "checkpoint" / "stats.json").read_text())
    assert np.allclose(stats["action"]["q99"][0], 0.02, atol=1e-6)
    # a corrupt parquet file is one clear line and exit status 2
    data_file = next((tmp_path / "data" / "data").rglob("*.parquet"))
    data_file.write_bytes(b"not parquet")
    capsys.readouterr()
    assert main(["train", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "r2"),
                 "--steps", "1", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("embodied train: error:") and "\n" not in err


def test_train_flags_map_onto_both_configs_and_lora_rank_stays_the_trainers():
    import argparse

    from common.config import from_args
    from policy.train_config import TrainConfig, add_arguments, model_config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--dataset", "d", "--lora", "--lora-r", "8", "--lm-hidden", "64",
                              "--vision", "enc", "--no-use-state", "--lr", "1"])
    cfg, model = from_args(TrainConfig, args), model_config_from_args(args)
    assert cfg.dataset == "d" and cfg.lora and cfg.lora_rank == 8 and cfg.lr == 1.0
    assert model.lora_rank == 0  # adapters are added by the trainer, not declared by the flags
    assert model.lm_hidden == 64 and model.vision_path == "enc" and model.use_state is False
    assert model.lm_layers == 3  # untouched fields keep VLAConfig's defaults
