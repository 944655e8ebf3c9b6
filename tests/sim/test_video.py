"""sim.video: mp4 round trip, odd sizes, atomic writes and clear errors."""

import numpy as np
import pytest

from sim.errors import SimError
from sim.video import VideoWriter, iter_mp4, read_mp4, video_info, write_mp4


def _frames(t: int, h: int, w: int) -> np.ndarray:
    """Smooth moving gradients: what a codec keeps well, unlike random noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = [np.stack([(xx * 3 + 4 * i) % 200 + 20, (yy * 4) % 200 + 20, np.full_like(xx, 100 + i)], -1)
           for i in range(t)]
    return np.stack(out).astype(np.uint8)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_round_trip_exact_count_and_close_values(tmp_path, codec):
    frames = _frames(15, 32, 48)
    path = tmp_path / "a.mp4"
    with VideoWriter(path, fps=10, codec=codec) as writer:
        for frame in frames:
            writer.write(frame)
    back = read_mp4(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    err = np.abs(back.astype(int) - frames.astype(int))
    assert err.mean() < 3.0, err.mean()
    # Frames are distinguishable: frame i is closer to original i than to original i+3.
    assert np.abs(back[5].astype(int) - frames[5]).mean() < np.abs(back[5].astype(int) - frames[8]).mean()
    info = video_info(path)
    assert info["frames"] == 15 and info["fps"] == pytest.approx(10.0)
    assert not (tmp_path / "a.mp4.tmp").exists()


def test_odd_size_is_cropped_back(tmp_path):
    frames = _frames(4, 31, 45)
    write_mp4(tmp_path / "odd.mp4", frames, fps=5)
    back = np.stack(list(iter_mp4(tmp_path / "odd.mp4")))
    assert back.shape == (4, 31, 45, 3)
    assert np.abs(back.astype(int) - frames).mean() < 3.0
    assert video_info(tmp_path / "odd.mp4")["width"] == 45


def test_crash_inside_writer_leaves_no_file(tmp_path):
    path = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, fps=10) as writer:
            writer.write(_frames(1, 16, 16)[0])
            raise RuntimeError("simulated crash")
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_missing_file_are_user_errors(tmp_path):
    writer = VideoWriter(tmp_path / "x.mp4", fps=10)
    with pytest.raises(SimError):
        writer.write(np.zeros((8, 8), np.uint8))
    writer.write(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SimError):
        writer.write(np.zeros((10, 8, 3), np.uint8))
    writer.abort()
    with pytest.raises(SimError):
        read_mp4(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(SimError):
        read_mp4(tmp_path / "junk.mp4")


def _dots(h: int = 32, w: int = 32) -> np.ndarray:
    """Saturated 3-pixel squares on a beige table: how 64 px cameras see the tabletop objects."""
    img = np.full((h, w, 3), (215, 200, 180), np.uint8)
    for k, colour in enumerate([(220, 25, 25), (25, 60, 230), (25, 200, 210), (140, 40, 190)]):
        y, x = 5 + 7 * k, 4 + 6 * k
        img[y:y + 3, x:x + 3] = colour
    return img


def test_yuv444p_keeps_small_objects_colours(tmp_path):
    frames = np.stack([_dots()] * 4)
    objects = (frames[0].max(-1).astype(int) - frames[0].min(-1)) > 100
    errors = {}
    for pix_fmt in ("yuv420p", "yuv444p"):
        write_mp4(tmp_path / f"{pix_fmt}.mp4", frames, fps=10, pix_fmt=pix_fmt, crf=10)
        back = read_mp4(tmp_path / f"{pix_fmt}.mp4")
        errors[pix_fmt] = np.abs(back[0].astype(int) - frames[0])[objects].mean()
    # 4:2:0 smears each dot's colour into the table; full-resolution chroma keeps it.
    assert errors["yuv444p"] < 6.0 < errors["yuv420p"], errors
    assert errors["yuv444p"] * 3 < errors["yuv420p"], errors


def test_unknown_pixel_format_is_a_user_error(tmp_path):
    with pytest.raises(SimError, match="pixel format"):
        VideoWriter(tmp_path / "x.mp4", fps=10, pix_fmt="rgb48")
