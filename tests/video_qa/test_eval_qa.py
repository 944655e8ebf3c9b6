"""`embodied eval-qa` on a fresh clone: the checkpoint's test clips are simulated again from the
recipe in its qa_train.json, once, then reused; at toy counts here."""

import json

import pytest

from agent.cli import main
from tests.video_qa.helpers import tiny_config
from video_qa.configuration_train import TRAIN_META
from video_qa.dataset import DataRecipe, generate
from video_qa.modeling_videolm import VideoLM
from video_qa.simulate import DATA_VERSION


@pytest.fixture
def checkpoint(tmp_path):
    model = VideoLM(tiny_config(grounding=False))
    path = model.save_pretrained(tmp_path / "ckpt")
    recipe = DataRecipe(seed=3, n_billiards=1, n_tabletop=2)
    (path / TRAIN_META).write_text(json.dumps({"sampler": "uniform", "data_dir": "runs/qa/gone",
                                               "data": recipe.to_dict()}))
    return path


def test_eval_qa_simulates_the_test_clips_once_then_reuses_them(tmp_path, checkpoint, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)  # runs/qa/heldout/ is relative: a fresh working directory
    assert main(["eval-qa", "--checkpoint", str(checkpoint), "--out", "first.json"]) == 0
    err = capsys.readouterr().err
    data = tmp_path / "runs" / "qa" / "heldout" / f"v{DATA_VERSION}-seed3-b1-t2"
    # clips 0 are the test split (every 5th); clip tabletop_0001 is a training clip: not made
    assert sorted(p.name for p in (data / "clips").glob("*.npz")) == ["billiards_0000.npz",
                                                                       "tabletop_0000.npz"]
    assert err.count("simulated ") == 2
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["data_dir"] == str(data.relative_to(tmp_path)) and first["split"] == "test"
    assert sum(first["count"].values()) > 0 and set(first["by_source"]) == {"billiards", "tabletop"}
    assert main(["eval-qa", "--checkpoint", str(checkpoint), "--out", "second.json"]) == 0
    assert "simulated " not in capsys.readouterr().err  # cached after the first run
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["accuracy"] == first["accuracy"] and second["examples"] == first["examples"]
    # the same questions as the full data make for those clips (clips reused, not simulated)
    full = tmp_path / "full"
    (full / "clips").mkdir(parents=True)
    for f in (data / "clips").iterdir():
        (full / "clips" / f.name).write_bytes(f.read_bytes())
    generate(full, 1, 2, seed=3, log=None)
    test_lines = [ln for ln in (full / "qa.jsonl").read_text().splitlines() if '"split": "test"' in ln]
    assert test_lines == (data / "qa.jsonl").read_text().splitlines()


def test_eval_qa_says_in_one_line_what_it_cannot_regenerate(tmp_path, checkpoint, monkeypatch,
                                                            capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval-qa", "--checkpoint", str(checkpoint), "--split", "train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only the test split" in err[0]
    (checkpoint / TRAIN_META).write_text(json.dumps({"sampler": "uniform", "data_dir": "runs/gone"}))
    assert main(["eval-qa", "--checkpoint", str(checkpoint)]) == 2
    assert "recipe" in capsys.readouterr().err
    meta = {"sampler": "uniform", "data": {**DataRecipe().to_dict(), "version": 1}}
    (checkpoint / TRAIN_META).write_text(json.dumps(meta))
    assert main(["eval-qa", "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "version 1" in err and "--resimulate" in err
