import numpy as np
import pytest

from video_qa.errors import VideoQAError
from video_qa.memory import StreamMemory


class ColourEncoder:
    """A stand-in frame-text encoder: mean RGB (centred) for images, a colour word for text."""

    WORDS = {"red": [1, -0.5, -0.5], "grey": [0.0, 0.0, 0.0]}

    def encode_images(self, images):
        return np.stack([np.asarray(im, np.float32).mean((0, 1)) / 255 - 0.4 for im in images])

    def encode_text(self, texts):
        return np.array([next(v for k, v in self.WORDS.items() if k in t) for t in texts], np.float32)


def _stream(n, needle_at, rng):
    for i in range(n):
        img = np.full((8, 8, 3), 100, np.uint8) + rng.integers(0, 3, (8, 8, 3), dtype=np.uint8)
        if needle_at <= i < needle_at + 2:
            img[..., 0] = 250
        yield img, i / 10


@pytest.mark.parametrize("n", [100, 2000])
def test_memory_stays_within_its_slots_and_keeps_the_needle(n):
    rng = np.random.default_rng(0)
    memory = StreamMemory(ColourEncoder(), slots=16, batch=32)
    needle_at = int(n * 0.63)
    memory.extend(_stream(n, needle_at, rng))
    assert memory.frames_seen == n
    assert len(memory.segments) == 16
    assert sum(s.count for s in memory.segments) == n  # every frame is summarised somewhere
    assert memory.nbytes() < 16 * (8 * 8 * 3 + 64)  # flat: independent of n
    best = memory.locate("when was the red light on?")
    assert abs(best.t0 - needle_at / 10) < 1e-6
    context = memory.context("when was the red light on?", 4)
    assert len(context) == 4 and [s.t0 for s in context] == sorted(s.t0 for s in context)
    assert any(s is best for s in context)


def test_segments_cover_the_stream_in_order():
    memory = StreamMemory(ColourEncoder(), slots=4, batch=5)
    memory.extend(_stream(50, 20, np.random.default_rng(1)))
    starts = [s.t0 for s in memory.segments]
    assert starts == sorted(starts) and starts[0] == 0.0 and memory.segments[-1].t1 == pytest.approx(4.9)


def test_empty_memory_is_a_clear_error():
    with pytest.raises(VideoQAError, match="empty"):
        StreamMemory(ColourEncoder()).context("anything", 4)
