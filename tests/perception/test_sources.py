"""Sources yield timestamped RGB frames; bad videos fail clearly or decode what they can."""

import numpy as np
import pytest

from perception.buffer import FrameBuffer
from perception.errors import PerceptionError
from perception.frames import Frame, to_rgb8
from perception.sources import ArraySource, EnvSource, RosbagSource, VideoFileSource, read_video
from perception.videoio import write_video


def _moving_square(n=30, h=64, w=80):
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, 20:40, 2 * i:2 * i + 16] = (255, 128, 0)
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "square.mp4"
    write_video(path, _moving_square(), fps=10, faststart=True)
    return path


def test_video_source_yields_frames_with_timestamps(video):
    src = VideoFileSource(video, max_queue=4)
    frames = list(src)
    assert len(frames) == 30 and src.failed == 0
    assert frames[0].image.shape == (64, 80, 3) and frames[0].image.dtype == np.uint8
    ts = np.array([f.t for f in frames])
    np.testing.assert_allclose(ts, np.arange(30) / 10, atol=1e-6)
    assert [f.index for f in frames] == list(range(30))
    # the orange square is where we drew it (lossy codec: approximately)
    assert frames[5].image[30, 15, 0] > 200 and frames[5].image[30, 60, 0] < 60


def test_truncated_video_decodes_what_it_can(tmp_path):
    # noisy frames, so the payload (not the header) dominates the file and a cut loses frames
    noisy = np.random.default_rng(0).integers(0, 255, (30, 64, 80, 3), dtype=np.uint8)
    write_video(tmp_path / "full.mp4", noisy, fps=10, faststart=True)
    data = (tmp_path / "full.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    src = VideoFileSource(cut)
    frames = list(src)
    assert 0 < len(frames) < 30
    assert src.failed == 30 - len(frames)


def test_missing_empty_and_garbage_videos_raise_user_errors(tmp_path):
    with pytest.raises(PerceptionError, match="not found"):
        VideoFileSource(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(PerceptionError, match="empty"):
        VideoFileSource(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(PerceptionError) as info:
        VideoFileSource(tmp_path / "junk.mp4")
    assert info.value.user_error is True


def test_early_stop_does_not_hang(video):
    src = VideoFileSource(video, max_queue=2, max_frames=3)
    assert len(list(src)) == 3
    frames, times, failed = read_video(video, stride=3)
    assert len(frames) == 10 and failed == 0 and times[1] == pytest.approx(0.3)


def test_to_rgb8_converts_grey_rgba_float_and_odd_sizes(tmp_path):
    assert to_rgb8(np.full((5, 7), 9, np.uint8)).shape == (5, 7, 3)
    rgba = np.zeros((3, 3, 4), np.uint8); rgba[..., 0] = 200; rgba[..., 3] = 7
    np.testing.assert_array_equal(to_rgb8(rgba)[0, 0], [200, 0, 0])
    assert to_rgb8(np.ones((2, 2, 1), np.float32))[0, 0, 2] == 255
    # odd-sized grey frames go through the encoder (cropped to even) and come back RGB
    grey = np.tile(np.linspace(0, 255, 33, dtype=np.uint8), (21, 1))
    write_video(tmp_path / "g.mp4", [grey] * 4, fps=5)
    frames, _, _ = read_video(tmp_path / "g.mp4")
    assert frames.shape == (4, 20, 32, 3)


def test_array_source_and_empty_error():
    src = ArraySource(_moving_square(5), fps=5)
    ts = [f.t for f in src]
    assert ts == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    with pytest.raises(PerceptionError):
        ArraySource(np.zeros((0, 4, 4, 3), np.uint8))


class _ToyEnv:
    metadata = {"render_fps": 20}

    class _Space:
        def sample(self):
            return 0

    action_space = _Space()

    def __init__(self):
        self.k = 0

    def reset(self, seed=None):
        self.k = 0
        return 0, {}

    def step(self, action):
        self.k += 1
        return self.k, 0.0, self.k >= 4, False, {}

    def render(self):
        return np.full((6, 8), self.k * 10, np.uint8)


def test_env_source_resets_and_times():
    frames = list(EnvSource(_ToyEnv(), max_frames=10))
    assert len(frames) == 10 and frames[1].t == pytest.approx(0.05)
    assert [int(f.image[0, 0, 0]) for f in frames[:6]] == [0, 10, 20, 30, 0, 10]
    assert frames[5].meta["episode"] == 1


def test_rosbag_source_reads_images(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    Image, Header, Time = (store.types[n] for n in
                           ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                            "builtin_interfaces/msg/Time"))
    bag = tmp_path / "bag"
    with Writer(bag, version=8) as w:
        conn = w.add_connection("/cam/image", Image.__msgtype__, typestore=store)
        for i in range(3):
            bgr = np.zeros((4, 5, 3), np.uint8); bgr[..., 0] = 50 * (i + 1)  # blue channel
            msg = Image(Header(Time(100 + i // 2, 500_000_000 * (i % 2)), "cam"), 4, 5, "bgr8",
                        0, 15, bgr.reshape(-1))
            w.write(conn, 1000 + i, store.serialize_cdr(msg, Image.__msgtype__))
    frames = list(RosbagSource(bag))
    assert [f.t for f in frames] == pytest.approx([0.0, 0.5, 1.0])
    assert frames[2].image[0, 0].tolist() == [0, 0, 150]  # BGR -> RGB
    with pytest.raises(PerceptionError, match="topics"):
        list(RosbagSource(bag, topic="/other"))


def test_frame_buffer_bounds_by_count_and_age():
    buf = FrameBuffer(max_frames=5, max_age_s=1.0)
    img = np.zeros((2, 2, 3), np.uint8)
    for i in range(20):
        buf.push(Frame(img, i * 0.1, i))
    assert len(buf) == 5 and [f.index for f in buf] == [15, 16, 17, 18, 19]
    buf2 = FrameBuffer(max_frames=100, max_age_s=0.25)
    for i in range(20):
        buf2.push(Frame(img, i * 0.1, i))
    assert [f.index for f in buf2] == [17, 18, 19]
    assert buf2.dropped == 17
    buf2.push(Frame(img, 0.0, 0))  # stream restarted: the stale window goes
    assert len(buf2) == 1
