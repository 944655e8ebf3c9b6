"""One episode drawn for people: `embodied dataset show DIR --episode N --out FILE.png|.mp4`.

Both outputs share one layout: a caption (episode, task, length, fps), the cameras, and under them
the action and state curves over the episode (matplotlib, rendered once). The PNG is a contact
sheet (a row of evenly spaced frames per camera, dashed lines on the curves where they were
taken); the MP4 plays every frame with a cursor moving along the curves. Files are written
atomically (``common.atomic`` / ``sim.video.VideoWriter``): a failure leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_path
from sim.dataset_inspect import dim_names
from sim.dataset_layout import camera_name
from sim.dataset_reader import LeRobotDataset
from sim.errors import SimError
from sim.sheet import _font
from sim.video import VideoWriter

CAPTION_H, PAD = 24, 4
PANEL_H = 150  # pixels per curve plot
MIN_WIDTH = 640  # the curves need room whatever the cameras' size


def _resize(img: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((max(1, round(w * height / h)), height), Image.BILINEAR))


def _caption(text: str, width: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, CAPTION_H), (255, 255, 255))
    ImageDraw.Draw(im).text((PAD, 4), text, fill=(0, 0, 0), font=_font(14))
    return np.asarray(im)


def _hstack(images: list[np.ndarray], height: int) -> np.ndarray:
    parts = []
    for img in images:
        parts += [img, np.full((height, PAD, 3), 255, np.uint8)]
    return np.concatenate(parts[:-1], axis=1) if parts else np.zeros((height, 0, 3), np.uint8)


def _vstack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, PAD), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)


def curves_panel(ds: LeRobotDataset, ep: dict[str, Any], width: int,
                 marks: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Action and state over the episode as an RGB image ``width`` wide, and the x pixels of the
    first and last frame (where a cursor goes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("action", "observation.state") if k in ep]
    if not keys:
        raise SimError(f"dataset {ds.root} has neither action nor observation.state to plot")
    n = len(ep[keys[0]])
    dpi = 100
    fig, axes = plt.subplots(len(keys), 1, figsize=(width / dpi, PANEL_H * len(keys) / dpi), dpi=dpi,
                             sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        values = np.asarray(ep[key], np.float64).reshape(n, -1)
        names = dim_names(ds, key)
        for j in range(values.shape[1]):
            ax.plot(np.arange(n), values[:, j], lw=1, label=names[j] if j < len(names) else str(j))
        ax.set_ylabel(key.replace("observation.", ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, max(n - 1, 1))
        if values.shape[1] <= 10:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        for m in marks if marks is not None else []:
            ax.axvline(m, color="0.5", lw=0.8, ls="--")
    axes[-1, 0].set_xlabel("frame", fontsize=8)
    # margins in pixels, whatever the width: room for tick labels on the left, the legend on the right
    fig.subplots_adjust(left=55 / width, right=1 - 140 / width, top=0.97, bottom=0.3 / len(keys), hspace=0.15)
    fig.canvas.draw()
    panel = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    x0 = float(axes[0, 0].transData.transform((0, 0))[0])
    x1 = float(axes[0, 0].transData.transform((max(n - 1, 1), 0))[0])
    plt.close(fig)
    return panel, (x0, x1)


def _caption_text(ds: LeRobotDataset, i: int, ep: dict[str, Any], n: int) -> str:
    outcome = "" if ep.get("success") is None else (", success" if ep["success"] else ", failure")
    return f"episode {i}: \"{ep['task']}\"  ({n} frames at {ds.fps} fps{outcome})"


def show_episode(ds: LeRobotDataset, i: int, out: str | Path, n_frames: int = 6, tile: int = 128) -> Path:
    """Write episode ``i`` to ``out``: a PNG contact sheet or an MP4, chosen by the extension."""
    out = Path(out)
    kind = out.suffix.lower()
    if kind not in (".png", ".mp4"):
        raise SimError(f"--out must end in .png or .mp4, got {str(out)!r}")
    ep = ds.episode(i)  # everything is read and decoded before anything is written
    n = ds.episode_length(i)
    cams = [(camera_name(k), ep[k]) for k in ds.camera_keys]
    if kind == ".png":
        idx = np.linspace(0, n - 1, min(n_frames, n)).round().astype(int)
        rows = [_hstack([_resize(frames[t], tile) for t in idx], tile) for _, frames in cams]
        width = max([r.shape[1] for r in rows] + [MIN_WIDTH])
        labels = [_caption(f"{name}  (frames {', '.join(map(str, idx))})", width) for name, _ in cams]
        panel, _ = curves_panel(ds, ep, width, marks=idx)
        body = [x for pair in zip(labels, rows) for x in pair]
        sheet = _vstack([_caption(_caption_text(ds, i, ep, n), width), *body, panel])
        from PIL import Image

        try:
            with atomic_path(out, suffix=".png") as tmp:
                Image.fromarray(sheet).save(tmp, format="PNG")
        except OSError as exc:
            raise SimError(f"cannot write {out}: {exc.strerror or exc}") from exc
        return out
    cam_row = _hstack([_resize(frames[0], tile) for _, frames in cams], tile) if cams else None
    width = max(cam_row.shape[1] if cam_row is not None else 0, MIN_WIDTH)
    panel, (x0, x1) = curves_panel(ds, ep, width)
    names = f"  cameras: {' | '.join(name for name, _ in cams)}" if cams else ""
    caption = _caption(_caption_text(ds, i, ep, n) + names, width)
    try:
        with VideoWriter(out, fps=ds.fps) as writer:
            for t in range(n):
                cur = panel.copy()
                x = int(round(x0 + (x1 - x0) * t / max(n - 1, 1)))
                cur[:, max(x - 1, 0):x + 1] = (220, 30, 30)
                rows = [caption]
                if cams:
                    rows.append(_hstack([_resize(frames[t], tile) for _, frames in cams], tile))
                rows.append(cur)
                writer.write(_vstack(rows))
    except OSError as exc:
        raise SimError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out
