import json

import numpy as np
import pytest
import torch

from agent.cli import main
from tests.video_qa.helpers import tiny_config
from video_qa.ask import VideoQA, read_video
from video_qa.errors import VideoQAError
from video_qa.memory import StreamMemory
from video_qa.modeling_videolm import VideoLM


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("qa") / "checkpoint"
    VideoLM(tiny_config(max_question_bytes=40)).save_pretrained(path)
    (path / "qa_train.json").write_text(json.dumps({"sampler": "motion", "data_dir": "none"}))
    return path


def _frames(n=12):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (n, 24, 32, 3), dtype=np.uint8)


def test_answer_reports_the_frames_it_used(ckpt):
    qa = VideoQA.from_pretrained(ckpt)
    ans = qa.answer(_frames(), "红球是什么时候进袋的？", times=[i * 0.5 for i in range(12)])
    assert isinstance(ans.text, str) and not ans.truncated
    assert len(ans.frame_times) == 3 and all(t in [i * 0.5 for i in range(12)] for t in ans.frame_times)


def test_over_long_question_is_truncated_with_a_warning(ckpt):
    qa = VideoQA.from_pretrained(ckpt)
    with pytest.warns(UserWarning, match="truncated"):
        ans = qa.answer(_frames(), "why " * 50)
    assert ans.truncated


def test_empty_input_is_a_user_error(ckpt):
    qa = VideoQA.from_pretrained(ckpt)
    with pytest.raises(VideoQAError, match="no frames"):
        qa.answer([], "what happened?")
    with pytest.raises(VideoQAError, match="empty"):
        qa.answer(_frames(), "   ")


def test_answer_from_a_stream_memory(ckpt):
    class Enc:
        def encode_images(self, ims):
            return np.stack([np.asarray(i, np.float32).mean((0, 1)) for i in ims])

        def encode_text(self, texts):
            return np.ones((len(texts), 3), np.float32)

    memory = StreamMemory(Enc(), slots=5, batch=4)
    memory.extend((f, i / 10) for i, f in enumerate(_frames(30)))
    ans = VideoQA.from_pretrained(ckpt).answer(memory, "what happened?")
    assert len(ans.frame_times) == 3 and all(0 <= t <= 2.9 for t in ans.frame_times)


def test_cli_ask_video_and_bad_video(ckpt, tmp_path, capsys):
    from sim.video import write_mp4

    video = write_mp4(tmp_path / "clip.mp4", list(_frames(10)), fps=10)
    frames, times = read_video(video)
    assert len(frames) == 10 and times[1] == pytest.approx(0.1)
    assert main(["ask", "--video", str(video), "--checkpoint", str(ckpt), "what happened?"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("frames used (s): ")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    assert main(["ask", "--video", str(bad), "--checkpoint", str(ckpt), "what?"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read video" in err[0]
    assert main(["ask", "--video", str(tmp_path / "missing.mp4"), "--checkpoint", str(ckpt), "q"]) == 2


def test_cli_train_and_eval_end_to_end(tmp_path, capsys):
    data_dir = tmp_path / "data"
    args = ["train-qa", "--data-dir", str(data_dir), "--n-billiards", "1", "--n-tabletop", "2",
            "--steps", "3", "--batch-size", "4", "--runs-root", str(tmp_path / "runs"),
            "--image-size", "16", "--patch-size", "4", "--vision-hidden", "32", "--vision-layers", "1",
            "--lm-hidden", "32", "--lm-layers", "1", "--lm-heads", "2", "--num-frames", "3",
            "--tokens-per-frame", "2", "--encoder-steps", "2"]
    assert main(args) == 0
    run = next((tmp_path / "runs" / "train_qa").iterdir())
    enc = json.loads((run / "frame_encoder" / "config.json").read_text())["frame_encoder"]
    assert enc["grid"] == 4 and set(enc["test_metrics"]) >= {"cell_recall", "presence_accuracy"}
    assert (run / "config.json").is_file() and (run / "metrics.jsonl").read_text().count("\n") >= 2
    res = json.loads((run / "eval.json").read_text())
    assert set(res["accuracy"]) <= set(res["types"]) and 0 <= res["overall"] <= 1
    assert "heldout_templates" in res and res["visual_tokens"] == 6
    assert set(res["by_source"]) == {"billiards", "tabletop"}  # one shot + two episodes, per world
    out = tmp_path / "eval.json"
    assert main(["eval-qa", "--checkpoint", str(run / "checkpoint"), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["overall"] == res["overall"] and "accuracy" in written


def test_default_checkpoint_prefers_a_trained_one_then_the_shipped_one(tmp_path, ckpt):
    from video_qa.ask import SHIPPED_CHECKPOINT, default_checkpoint

    with pytest.raises(VideoQAError, match="no video-QA checkpoint"):
        default_checkpoint(tmp_path / "runs", shipped=tmp_path / "none")
    assert default_checkpoint(tmp_path / "runs") == SHIPPED_CHECKPOINT
    assert default_checkpoint(ckpt.parent) == ckpt


def test_the_shipped_checkpoint_answers_with_the_frames_it_used():
    from video_qa.ask import SHIPPED_CHECKPOINT

    qa = VideoQA.from_pretrained(SHIPPED_CHECKPOINT)
    times = [i * 0.1 for i in range(40)]
    ans = qa.answer(np.zeros((40, 64, 64, 3), np.uint8), "What colour was the object the robot picked up?",
                    times=times)
    assert ans.text and len(ans.frame_times) == qa.model.cfg.num_frames
    assert all(min(abs(t - u) for u in times) < 1e-6 for t in ans.frame_times)
    report = json.loads((SHIPPED_CHECKPOINT / "eval.json").read_text())
    assert report["overall_non_descriptive"] > 0.85  # the measured quality the README quotes


def test_cli_ablation_writes_one_table_at_equal_budgets(tmp_path):
    args = ["train-qa", "--ablation", "--data-dir", str(tmp_path / "data"), "--n-billiards", "2",
            "--n-tabletop", "2", "--steps", "2", "--batch-size", "2", "--runs-root", str(tmp_path / "runs"),
            "--image-size", "16", "--patch-size", "4", "--vision-hidden", "32", "--vision-layers", "1",
            "--lm-hidden", "32", "--lm-layers", "1", "--lm-heads", "2", "--num-frames", "3",
            "--tokens-per-frame", "2", "--encoder-steps", "2", "--no-grounding"]
    assert main(args) == 0
    root = next((tmp_path / "runs" / "ablation_qa").iterdir())
    table = json.loads((root / "ablation.json").read_text())
    assert set(table["arms"]) == {"uniform+mean", "motion+mining"} and table["grounding"] is False
    arms = table["arms"].values()
    assert {a["visual_tokens"] for a in arms} == {6}  # the same budget in both arms
    assert {(a["sampler"], a["pooling"]) for a in arms} == {("uniform", "mean"), ("motion", "mining")}
    for a in arms:
        assert 0 <= a["event_and_timestamp"] <= 1 and set(a["by_source"]) == {"billiards", "tabletop"}
    # one encoder, pretrained once, for both arms
    assert (root / "frame_encoder" / "model.safetensors").is_file()
    assert not (root / "uniform_mean" / "frame_encoder").exists()
