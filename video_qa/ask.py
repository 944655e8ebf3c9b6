"""Asking a trained VideoLM about a video, an episode, a frame list or a live memory.

``VideoQA.answer(frames_or_memory, question) -> Answer(text, frame_times)`` is the one call the
agent makes. Frames are chosen by the sampler the checkpoint was trained with (``qa_train.json``
beside the weights); a :class:`~video_qa.memory.StreamMemory` supplies its own query-relevant
keyframes instead. Over-long questions are truncated with a warning; empty or unreadable input is a
:class:`~video_qa.errors.VideoQAError` (one line on the CLI).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from perception.text import truncate_utf8
from video_qa.errors import VideoQAError


@dataclass(frozen=True)
class Answer:
    text: str
    frame_times: tuple[float, ...]  # seconds: the frames the model looked at
    truncated: bool = False  # the question was cut to the model's limit


class VideoQA:
    """A loaded VideoLM plus the keyframe sampler it was trained with."""

    def __init__(self, model: Any, sampler: str = "motion") -> None:
        self.model = model
        self.sampler = sampler

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "VideoQA":
        from video_qa.configuration_train import read_train_meta
        from video_qa.modeling_videolm import VideoLM

        model = VideoLM.from_pretrained(directory)
        return cls(model, read_train_meta(directory).get("sampler", "motion"))

    def _question(self, question: str) -> tuple[str, bool]:
        if not isinstance(question, str) or not question.strip():
            raise VideoQAError("the question is empty")
        limit = self.model.cfg.max_question_bytes
        text, cut = truncate_utf8(question.strip(), limit)
        if cut:
            warnings.warn(f"question longer than {limit} bytes; truncated to {text!r}", stacklevel=3)
        return text, cut

    def answer(self, frames_or_memory: Any, question: str,
               times: Sequence[float] | None = None,
               event_times: Sequence[float] | None = None,
               facts: dict[str, Any] | None = None) -> Answer:
        """Answer ``question`` about frames (array ``[T,H,W,3]``, list of images or of
        ``perception.frames.Frame``) or a ``StreamMemory``. ``event_times`` (s; perceived events,
        most important first, e.g. from ``embodied coach``'s report) choose the keyframes: the
        clip's first and last frame, the frame nearest each event, the rest by motion
        (``perception.sampling.EventSampler``). ``facts`` (``video_qa.subtitles``: a shot's
        perceived layout and events, e.g. :func:`report_facts`) become the frames' subtitles for a
        model trained with them; a model without subtitles ignores them."""
        from video_qa.memory import StreamMemory
        from video_qa.inputs import frame_indices

        text, cut = self._question(question)
        n = self.model.cfg.num_frames
        if isinstance(frames_or_memory, StreamMemory):
            segments = frames_or_memory.context(text, n)
            images = [s.keyframe for s in segments]
            picked_times = [s.key_time for s in segments]
            idx = np.linspace(0, len(images) - 1, n).round().astype(int)  # pad a short memory
            images, picked_times = [images[i] for i in idx], [picked_times[i] for i in idx]
        else:
            images, all_times = _as_images(frames_or_memory, times)
            if event_times is not None and len(images) >= n:
                from perception.sampling import EventSampler, event_frames

                idx = EventSampler(events=event_frames(event_times, all_times)).select(np.asarray(images), n)
            else:
                idx = frame_indices(np.asarray(images), self.sampler, n)
            images, picked_times = [images[i] for i in idx], [float(all_times[i]) for i in idx]
        clip = np.stack([np.asarray(im, np.uint8) for im in images])
        texts = None
        if facts is not None and self.model.cfg.subtitles == "events":
            from video_qa.subtitles import subtitles

            texts = [subtitles(facts, picked_times)]
        reply = self.model.generate([clip], [picked_times], [text], texts)[0]
        return Answer(reply, tuple(round(t, 2) for t in picked_times), cut)


def _as_images(frames: Any, times: Sequence[float] | None) -> tuple[list[np.ndarray], list[float]]:
    if frames is None or len(frames) == 0:
        raise VideoQAError("no frames to answer from (empty video or memory)")
    first = frames[0]
    if hasattr(first, "image") and hasattr(first, "t"):
        return [f.image for f in frames], [float(f.t) for f in frames]
    images = list(frames)
    shapes = {np.asarray(im).shape for im in images}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != 3:
        raise VideoQAError(f"frames must be RGB images of one size [H, W, 3], got shapes {sorted(shapes)[:3]}")
    if times is None:
        times = [i / 10.0 for i in range(len(images))]  # the sims' default 10 fps
    if len(times) != len(images):
        raise VideoQAError(f"{len(times)} times for {len(images)} frames")
    return images, [float(t) for t in times]


def load_qa(directory: str | Path) -> VideoQA:
    """What the agent calls: a ready :class:`VideoQA` from a checkpoint directory."""
    return VideoQA.from_pretrained(directory)


SHIPPED_CHECKPOINT = Path("checkpoints/videoqa-default")


def default_checkpoint(root: str | Path = "runs", shipped: str | Path = SHIPPED_CHECKPOINT) -> Path:
    """The newest checkpoint trained under ``root`` (motion + TokenMining arm preferred), else
    the one that ships in the repository, so `embodied ask` answers on a fresh clone."""
    found = sorted(Path(root).glob("**/checkpoint/qa_train.json"), key=lambda p: p.stat().st_mtime)
    mining = [p for p in found if "uniform_mean" not in str(p)]
    if mining or found:
        return (mining or found)[-1].parent
    if (Path(shipped) / "model.safetensors").is_file():
        return Path(shipped)
    raise VideoQAError(f"no video-QA checkpoint under {root}/ nor at {shipped}; train one with "
                       "`embodied train-qa` or pass --checkpoint DIR")


def read_video(path: str | Path) -> tuple[np.ndarray, list[float]]:
    """All frames of a video file and their times (s); unreadable or empty -> VideoQAError."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoQAError(f"video {path} does not exist")
    frames, times = [], []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoQAError(f"{path} has no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.time) if frame.time is not None else len(times) / 30.0)
    except VideoQAError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the user's file
        raise VideoQAError(f"cannot read video {path}: {str(exc).splitlines()[0]}") from None
    if not frames:
        raise VideoQAError(f"video {path} has no frames")
    t0 = times[0]
    return np.stack(frames), [t - t0 for t in times]


def read_episode(directory: str | Path, index: int = 0, camera: str | None = None
                 ) -> tuple[np.ndarray, list[float]]:
    """Frames of a saved billiards shot (``save_shot`` dir) or of episode ``index`` of a LeRobot
    dataset root."""
    directory = Path(directory)
    if (directory / "ground_truth.json").is_file():
        from sim.billiards.shot import load_shot

        rec = load_shot(directory)
        cam = camera or ("overhead" if "overhead" in rec.frames else next(iter(rec.frames), None))
        if cam not in rec.frames:
            raise VideoQAError(f"{directory}: no camera {cam!r}; have {', '.join(rec.frames)}")
        return rec.frames[cam], [float(t) for t in rec.times]
    if (directory / "meta" / "info.json").is_file():
        from sim.dataset import IMAGE_PREFIX, LeRobotDataset

        try:
            ds = LeRobotDataset(directory)
            ep = ds.episode(index)
        except Exception as exc:  # noqa: BLE001 - SimError or a broken dataset: one line
            raise VideoQAError(f"cannot read episode {index} of {directory}: {exc}") from None
        keys = [k for k in ep if k.startswith(IMAGE_PREFIX)]
        key = IMAGE_PREFIX + camera if camera else (IMAGE_PREFIX + "agentview"
                                                    if IMAGE_PREFIX + "agentview" in keys else keys[0])
        if key not in ep:
            raise VideoQAError(f"no camera {key!r} in {directory}; have {', '.join(keys)}")
        fps = float(ds.fps)
        return ep[key], [i / fps for i in range(len(ep[key]))]
    raise VideoQAError(f"{directory} is neither a billiards shot (ground_truth.json) nor a LeRobot "
                       "dataset (meta/info.json)")


EVENT_PRIORITY = ("pot", "strike", "ball_ball", "cushion")  # what a keyframe budget keeps first


def ranked_event_times(events: Sequence[dict[str, Any]]) -> list[float]:
    """Event times, the most important kinds first (:data:`EVENT_PRIORITY`), in time order
    within a kind: what a keyframe budget keeps."""
    ranked = sorted(events, key=lambda e: (EVENT_PRIORITY.index(e["kind"]) if e["kind"] in EVENT_PRIORITY
                                           else len(EVENT_PRIORITY), float(e["t"])))
    return [float(e["t"]) for e in ranked]


def report_facts(report: str | Path) -> dict[str, Any]:
    """The perceived layout and events of a shot report (``embodied coach``'s report.json, or its
    directory): a subtitle model's per-frame text, and (:func:`ranked_event_times`) its keyframes."""
    import json

    from video_qa.subtitles import facts_from_report

    path = Path(report)
    path = path / "report.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data["events"], list):
            raise TypeError("its events are not a list")
        return facts_from_report(data)
    except FileNotFoundError:
        raise VideoQAError(f"no shot report at {path} (embodied coach --out DIR writes DIR/report.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VideoQAError(f"{path} is not a readable shot report ({exc})") from None


def report_event_times(report: str | Path) -> list[float]:
    """Event times of a shot report, ranked by :func:`ranked_event_times`."""
    return ranked_event_times(report_facts(report)["events"])


def video_facts(video: str | Path, frames: np.ndarray, times: Sequence[float]
                ) -> tuple[dict[str, Any], list[float]] | None:
    """What the billiards tracker perceives in ``video`` (its frames and their container
    ``times`` already read), when the video has a camera sidecar (``<stem>.calib.json``): the facts
    for subtitles and the frame times, on the recorder's clock where the sidecar gives its fps (as
    ``embodied coach`` reads them); None without a sidecar."""
    from perception.billiards.sidecar import load_sidecar, sidecar_path
    from perception.billiards.tracker import track_shot
    from perception.errors import PerceptionError
    from video_qa.subtitles import facts_from_perception

    path = sidecar_path(video)
    if not path.is_file():
        return None
    try:
        side = load_sidecar(path)
        times = [k / side.fps for k in range(len(frames))] if side.fps else [float(t) for t in times]
        shot = track_shot(frames, times, side.K, side.cam_to_world, side.geometry)
    except PerceptionError as exc:
        raise VideoQAError(str(exc)) from None
    return facts_from_perception(shot, side.K, side.cam_to_world), times
