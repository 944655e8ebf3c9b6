"""`embodied sim ...` end to end on the real tabletop env with tiny sizes."""

import json
import subprocess
import sys

from agent.cli import main
from sim.dataset import LeRobotDataset
from sim.video import video_info


def _json_tail(text: str) -> dict:
    return json.loads(text[text.index("{"):])


def test_collect_end_to_end_and_rerun_resumes(tmp_path, capsys):
    out = tmp_path / "demos"
    argv = ["sim", "collect", "--task", "Reach", "--episodes", "2", "--out", str(out), "--size", "32x32",
            "--cameras", "agentview", "--no-progress"]
    assert main(argv) == 0
    summary = _json_tail(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["saved_now"] == 2 and summary["success_rate"]["Reach"] > 0
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 2 and ds.cameras == ["agentview"]
    ep = ds.episode(1)
    assert ep["observation.images.agentview"].shape[1:] == (32, 32, 3)
    assert ep["action"].shape == (len(ep["timestamp"]), 7) and ep["success"]
    assert ds.episode_ground_truth(1)["frames"]["tcp.position"].shape == (len(ep["action"]), 3)
    assert (out / "logs" / "metrics.jsonl").read_text().count("\n") == 2
    # the same command again does nothing
    assert main(argv) == 0
    again = _json_tail(capsys.readouterr().out)
    assert again["saved_now"] == 0 and again["resumed_from"] == 2 and again["attempts_now"] == 0


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["sim", "collect", "--task", "Pikcup", "--episodes", "1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'PickUp'" in err and "Known tasks" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")
    assert main(["sim", "collect", "--task", "Reach", "--episodes", "1", "--out", str(tmp_path / "file" / "d")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["sim", "record", "--task", "Reach", "--out", str(tmp_path / "file" / "r.mp4")]) == 2
    assert main(["sim", "record", "--task", "Reach", "--out", str(tmp_path / "r.gif")]) == 2
    assert main(["sim", "collect", "--task", "Billiards", "--out", str(tmp_path / "b")]) == 2
    assert "no scripted arm expert" in capsys.readouterr().err


def test_record_writes_every_step(tmp_path, capsys):
    out = tmp_path / "reach.mp4"
    assert main(["sim", "record", "--task", "reach", "--out", str(out), "--size", "48x32", "--seed", "1"]) == 0
    line = capsys.readouterr().out
    n = int(line.split(": ")[1].split(" frames")[0])
    info = video_info(out)
    assert info["frames"] == n > 2 and (info["width"], info["height"]) == (48, 32)


def test_list_and_sheet(tmp_path, capsys):
    assert main(["sim", "list", "--examples", "1"]) == 0
    text = capsys.readouterr().out
    for name in ("Reach", "PickUp", "Push", "PutIn", "Billiards"):
        assert name in text
    from PIL import Image

    out = tmp_path / "sheet.png"
    assert main(["sim", "sheet", "--task", "Reach", "--out", str(out), "--tile", "32", "--frames", "2"]) == 0
    with Image.open(out) as im:
        assert im.height > 32 and im.width >= 2 * 32


def test_help_does_not_import_heavy_modules():
    code = ("import sys, agent.cli; agent.cli.build_parser(); "
            "print([m for m in ('mujoco', 'torch', 'av', 'pyarrow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_record_billiards_streams_a_shot(tmp_path, capsys):
    out = tmp_path / "shot.mp4"
    assert main(["sim", "record", "--task", "Billiards", "--out", str(out), "--size", "64x48"]) == 0
    n = int(capsys.readouterr().out.split(": ")[1].split(" frames")[0])
    info = video_info(out)
    assert info["frames"] == n > 10 and info["fps"] == 30 and (info["width"], info["height"]) == (64, 48)
