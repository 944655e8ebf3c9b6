"""`embodied perceive` (keyframes of a video as a contact sheet) and `embodied pose` (the cue's
pose drawn over a video). Heavy imports happen inside the handlers, so `embodied --help` stays
light."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perceive", help="pick keyframes of a video and save a contact sheet",
                       description="Decode a video, choose --budget keyframes with a sampler and "
                       "write a contact sheet with their timestamps.")
    p.add_argument("--video", required=True, metavar="FILE", help="video file (or rosbag2 dir)")
    p.add_argument("--sampler", default="motion",
                   help="uniform, motion, query or streaming (default: motion)")
    p.add_argument("--budget", type=int, default=16, help="number of keyframes (default: 16)")
    p.add_argument("--out", default="sheet.png", metavar="FILE.png", help="contact sheet path (default: sheet.png)")
    p.add_argument("--query", help="question for the query sampler")
    p.add_argument("--encoder", metavar="DIR",
                   help="frame-text encoder directory for --sampler query (ours or a CLIP)")
    p.add_argument("--stride", type=int, default=1, help="keep every n-th frame (long videos; default: 1)")
    p.set_defaults(func=_perceive)

    q = sub.add_parser("pose", help="estimate and track the cue's pose in a video",
                       description="Track the billiard cue through a video (RGB mode) and write "
                       "the video with the estimated cue outline drawn over it.")
    q.add_argument("--video", required=True, metavar="FILE", help="video file to track the cue in")
    q.add_argument("--out", default="overlay.mp4", metavar="FILE.mp4",
                   help="video with the cue outline drawn (default: overlay.mp4)")
    q.add_argument("--intrinsics", metavar="FILE.json",
                   help='camera matrix: {"K": [[fx,0,cx],[0,fy,cy],[0,0,1]]} or '
                        '{"fx":..,"fy":..,"cx":..,"cy":..}; default: a 55 degree vertical '
                        "field of view centred on the image")
    q.add_argument("--max-frames", type=int, default=None, help="stop after N frames (default: all)")
    q.set_defaults(func=_pose)


def load_intrinsics(path: str):
    """A 3x3 K from JSON; a missing or malformed file is a user error."""
    import json
    from pathlib import Path

    import numpy as np

    from perception.errors import PerceptionError

    p = Path(path)
    if not p.exists():
        raise PerceptionError(f"intrinsics file not found: {p}")
    try:
        raw = json.loads(p.read_text())
        if "K" in raw:
            K = np.asarray(raw["K"], float).reshape(3, 3)
        else:
            K = np.array([[raw["fx"], 0, raw["cx"]], [0, raw["fy"], raw["cy"]], [0, 0, 1]], float)
    except (ValueError, KeyError, TypeError) as exc:
        raise PerceptionError(f"cannot read intrinsics from {p}: {exc}") from exc
    return K


def default_intrinsics(width: int, height: int, fovy_deg: float = 55.0):
    import numpy as np

    f = 0.5 * height / np.tan(np.radians(fovy_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


def _perceive(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2
    import numpy as np
    from PIL import Image

    from common.atomic import atomic_path
    from perception.errors import PerceptionError
    from perception.sampling import get_sampler
    from perception.sheet import contact_sheet
    from perception.sources import open_source

    kwargs = {}
    if args.sampler == "query":
        if not args.encoder:
            raise PerceptionError("--sampler query needs --encoder DIR (a trained frame-text "
                                  "encoder or a local CLIP)")
        from perception.clip import load_encoder

        kwargs["encoder"] = load_encoder(args.encoder)
    sampler = get_sampler(args.sampler, **kwargs)
    src = open_source(args.video, stride=args.stride) if not Path(args.video).is_dir() \
        else open_source(args.video)
    images, times = [], []
    for frame in src:  # keep a 320-wide copy: enough for sampling and for the sheet
        h, w = frame.image.shape[:2]
        small = frame.image if w <= 320 else cv2.resize(
            frame.image, (320, round(h * 320 / w)), interpolation=cv2.INTER_AREA)
        images.append(small)
        times.append(frame.t)
    idx = sampler.select(np.stack(images), args.budget, query=args.query)
    sheet = contact_sheet([images[i] for i in idx], [f"{times[i]:.2f}s #{i}" for i in idx])
    with atomic_path(args.out, suffix=Path(args.out).suffix) as tmp:
        Image.fromarray(sheet).save(tmp)
    failed = getattr(src, "failed", 0)
    print(f"{len(images)} frames decoded ({failed} failed); {args.sampler} picked "
          f"{len(idx)}: " + ", ".join(f"{times[i]:.2f}s" for i in idx))
    print(f"wrote {args.out}")
    return 0


def _pose(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from perception.pose import CueTracker
    from perception.sheet import draw_cue
    from perception.sources import VideoFileSource
    from perception.videoio import write_video

    K = load_intrinsics(args.intrinsics) if args.intrinsics else None
    src = VideoFileSource(args.video, max_frames=args.max_frames)
    tracker = CueTracker()
    stats = {"frames": 0, "found": 0, "seconds": 0.0}

    def frames():
        nonlocal K
        for frame in src:
            if K is None:
                h, w = frame.image.shape[:2]
                K = default_intrinsics(w, h)
            t0 = time.perf_counter()
            T = tracker.update(frame.image, None, K)
            stats["seconds"] += time.perf_counter() - t0
            stats["frames"] += 1
            stats["found"] += T is not None
            text = f"t={frame.t:.2f}s " + ("cue" if T is not None else "no cue")
            if T is not None:
                text += f" tip=({T[0, 3]:+.2f},{T[1, 3]:+.2f},{T[2, 3]:.2f}) m"
            yield draw_cue(frame.image, T, K, tracker.estimator.model, text=text)

    n = write_video(args.out, frames(), fps=src.fps)
    fps = stats["frames"] / max(stats["seconds"], 1e-9)
    print(f"{n} frames, cue found in {stats['found']}, {fps:.1f} frames/s for pose "
          f"({src.failed} failed to decode); wrote {args.out}")
    return 0
