"""`embodied train-qa`, `embodied eval-qa` and `embodied ask`; heavy imports stay in the handlers."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from common.config import add_dataclass_args
    from video_qa.configuration_train import SAMPLERS
    from video_qa.configuration_train import TrainQAConfig
    from video_qa.configuration_videolm import VideoLMConfig

    t = sub.add_parser("train-qa", help="train the video-QA model on generated simulator QA",
                       description="Generates (or reuses) billiards/tabletop QA under --data-dir, trains, "
                       "saves RUN/checkpoint and evaluates on held-out episodes (RUN/eval.json). "
                       "--ablation trains uniform+mean pooling and motion+TokenMining at equal budgets.")
    add_dataclass_args(t, TrainQAConfig)
    add_dataclass_args(t, VideoLMConfig)
    t.add_argument("--ablation", action="store_true",
                   help="train both ablation arms in one run and write ablation.json")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval-qa", help="exact-match accuracy of a video-QA checkpoint per question type",
                       description="Scores a checkpoint on held-out episodes. Without --data-dir it uses "
                       "the data it was trained on, or, where those are not here (a fresh clone), "
                       "simulates its test clips again from the recipe in its qa_train.json, once, "
                       "cached under runs/qa/heldout/.")
    e.add_argument("--checkpoint", required=True, metavar="DIR", help="a video-QA checkpoint directory")
    e.add_argument("--data-dir", default=None, metavar="DIR",
                   help="QA data (default: the data it was trained on, else its test clips simulated again)")
    e.add_argument("--split", default="test", choices=("train", "test"), help="which clips to score")
    e.add_argument("--sampler", default=None, choices=SAMPLERS,
                   help="keyframe sampler (default: the one it was trained with)")
    e.add_argument("--limit", type=int, default=0, help="questions per template set to evaluate (0 = all)")
    e.add_argument("--workers", type=int, default=1,
                   help="processes simulating the test clips when they must be made again")
    e.add_argument("--resimulate", action="store_true",
                   help="where the checkpoint's test clips came from an older simulator (its data version), "
                        "score it on the same recipe simulated by this code instead of refusing")
    e.add_argument("--facts", default="perceived", choices=("perceived", "truth"),
                   help="where a model with subtitles gets a billiards clip's events: what the tracker "
                        "perceives of the shot filmed again at 640x480 (default; cached beside the clips) "
                        "or the simulator's ground truth (an upper bound)")
    e.add_argument("--out", metavar="FILE.json", help="also write the JSON here")
    e.set_defaults(func=_eval)

    a = sub.add_parser("ask", help="ask a question about a video file or a recorded episode")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", metavar="FILE", help="a video file (mp4, ...)")
    src.add_argument("--episode", metavar="DIR", help="a saved billiards shot or a LeRobot dataset root")
    a.add_argument("--episode-index", type=int, default=0, help="episode of a LeRobot dataset")
    a.add_argument("--camera", default=None, help="camera to read (default: overhead / agentview)")
    a.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="video-QA checkpoint (default: the newest under runs/)")
    a.add_argument("--events", default=None, metavar="REPORT",
                   help="a shot report from `embodied coach` (its --out or report.json): keyframes are "
                   "taken around its perceived events (pots first), plus the first and last frame; a "
                   "model trained with subtitles also reads the events as text beside the frames. "
                   "Without it, a --video with a camera sidecar (FILE.calib.json) is tracked here")
    a.add_argument("question", help="the question, in any language")
    a.set_defaults(func=_ask)


def _train(args: argparse.Namespace) -> int:
    from common.config import from_args
    from video_qa.configuration_train import TrainQAConfig
    from video_qa.configuration_videolm import VideoLMConfig

    cfg, model_cfg = from_args(TrainQAConfig, args), from_args(VideoLMConfig, args)
    if args.ablation:
        from video_qa.ablation import ablation

        run = ablation(cfg, model_cfg)
    else:
        from video_qa.train import train

        run = train(cfg, model_cfg)
    print(f"run directory: {run}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import sys

    from common.atomic import write_json
    from video_qa.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data_dir, args.split, args.sampler,
                                 limit=args.limit or None, workers=args.workers,
                                 log=lambda line: print(line, file=sys.stderr), resimulate=args.resimulate,
                                 facts_source=args.facts)
    if args.out:
        write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=2,
                     ensure_ascii=False))
    return 0


def _ask(args: argparse.Namespace) -> int:
    import sys

    from video_qa.ask import VideoQA, default_checkpoint, read_episode, read_video

    if args.video:
        frames, times = read_video(args.video)
    else:
        frames, times = read_episode(args.episode, args.episode_index, args.camera)
    qa = VideoQA.from_pretrained(args.checkpoint or default_checkpoint())
    from video_qa.ask import ranked_event_times, report_facts, video_facts

    facts = report_facts(args.events) if args.events else None
    if facts is None and args.video and qa.model.cfg.subtitles == "events":
        seen = video_facts(args.video, frames, times)  # a calibrated billiards video: track it here
        if seen is not None:
            facts, times = seen
            print(f"subtitles: the ball tracker's events ({len(facts['events'])}) in {args.video}",
                  file=sys.stderr)
    events = ranked_event_times(facts["events"]) if facts is not None else None
    ans = qa.answer(frames, args.question, times, event_times=events, facts=facts)
    print(ans.text)
    print("frames used (s): " + ", ".join(f"{t:.1f}" for t in ans.frame_times))
    return 0
