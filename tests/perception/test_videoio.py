"""perception.videoio.write_video commits its file atomically: whole under the final name, or
nothing there at all."""

import numpy as np
import pytest

from perception.sources import VideoFileSource
from perception.videoio import write_video


def _frames(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("camera unplugged")
        yield np.full((32, 48, 3), 20 * i, np.uint8)


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv"])
def test_the_video_lands_whole_under_its_name(tmp_path, name):
    assert write_video(tmp_path / name, _frames(5), fps=10) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    got = [f.image for f in VideoFileSource(tmp_path / name)]
    assert len(got) == 5 and got[0].shape == (32, 48, 3)
    assert abs(int(got[4].mean()) - 80) <= 3  # the frames, in order


def test_a_failure_leaves_neither_a_truncated_video_nor_a_temporary_file(tmp_path):
    write_video(tmp_path / "clip.mp4", _frames(3), fps=10)
    before = (tmp_path / "clip.mp4").read_bytes()
    with pytest.raises(RuntimeError, match="unplugged"):
        write_video(tmp_path / "clip.mp4", _frames(5, fail_at=2), fps=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    assert (tmp_path / "clip.mp4").read_bytes() == before  # the old file, untouched
