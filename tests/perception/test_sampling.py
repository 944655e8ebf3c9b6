"""Every sampler keeps the contract (budget, sorted, distinct, deterministic) and does its job."""

import numpy as np
import pytest

from perception.errors import PerceptionError
from perception.frames import Frame
from perception.sampling import SAMPLERS, StreamingKeyframes, get_sampler


def bursty_video(n=120, h=48, w=64, bursts=((30, 40), (90, 100)), seed=0):
    """A dot that sits still except during ``bursts``, where it moves fast; light noise."""
    rng = np.random.default_rng(seed)
    frames = np.full((n, h, w, 3), 40, np.uint8)
    x = 5.0
    for i in range(n):
        if any(a <= i < b for a, b in bursts):
            x = (x + 4) % (w - 8)
        frames[i, 20:28, int(x):int(x) + 8] = 230
    noise = rng.integers(-2, 3, frames.shape)
    return np.clip(frames.astype(int) + noise, 0, 255).astype(np.uint8)


class _ToyEncoder:
    """Embeds frames by the dot's column; the 'query' points at one column range."""

    def encode_images(self, images):
        cols = np.array([np.argmax(im[24, :, 0]) for im in images], np.float32)
        return np.stack([np.cos(cols / 20), np.sin(cols / 20)], 1)

    def encode_text(self, texts):
        return np.array([[np.cos(40 / 20), np.sin(40 / 20)]], np.float32)


def _make(name):
    return get_sampler(name, encoder=_ToyEncoder()) if name == "query" else get_sampler(name)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_contract_budget_order_determinism(name):
    video = bursty_video()
    for budget in (1, 7, 16, 120):
        idx = _make(name).select(video, budget, query="dot on the right")
        assert len(idx) == budget and len(set(idx.tolist())) == budget
        assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < len(video)
        np.testing.assert_array_equal(idx, _make(name).select(video, budget,
                                                              query="dot on the right"))
    with pytest.raises(PerceptionError, match="larger than the stream"):
        _make(name).select(video, 121)
    frames = [Frame(im, i / 10, i) for i, im in enumerate(video[:20])]
    assert len(_make(name).select(frames, 5, query="x")) == 5


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(PerceptionError, match="uniform, motion"):
        get_sampler("fancy")


def test_uniform_is_evenly_spaced():
    np.testing.assert_array_equal(get_sampler("uniform").select(np.zeros((100, 2)), 4),
                                  [12, 37, 62, 87])


@pytest.mark.parametrize("name", ["motion", "streaming"])
def test_motion_samplers_concentrate_on_bursts(name):
    video = bursty_video()
    idx = get_sampler(name).select(video, 16)
    in_burst = np.mean([(30 <= i <= 41) or (90 <= i <= 101) for i in idx])
    assert in_burst >= 0.6  # bursts are 20% of the frames; uniform puts ~20% there


def test_motion_random_mode_differs_from_centres_but_stays_in_segments():
    video = bursty_video()
    centre = get_sampler("motion").select(video, 8)
    rand = get_sampler("motion", random=True, seed=3).select(video, 8)
    assert len(rand) == 8 and not np.array_equal(centre, rand)


def test_motion_on_features_uses_feature_differences():
    feats = np.zeros((50, 4), np.float32)
    feats[25:, 0] = np.arange(25) * 10.0  # only the second half changes
    idx = get_sampler("motion").select(feats, 10)
    assert np.mean(idx >= 25) >= 0.8


def test_query_sampler_goes_where_the_query_points_and_caches():
    video = bursty_video()
    enc = _ToyEncoder()
    calls = []
    orig = enc.encode_images
    enc.encode_images = lambda ims: calls.append(1) or orig(ims)
    s = get_sampler("query", encoder=enc)
    idx = s.select(video, 8, query="dot near column 40")
    cols = np.array([np.argmax(video[i, 24, :, 0]) for i in idx])
    assert np.mean(np.abs(cols - 40) <= 8) >= 0.6
    s.select(video, 4, query="again")
    assert len(calls) == 1  # embeddings were cached for this stream
    tree = get_sampler("query", encoder=enc, mode="tree").select(video, 8, query="q")
    assert len(tree) == 8
    cover = s.select(video, 6)  # no query: coverage of embedding clusters
    assert len(set(np.argmax(video[cover, 24, :, 0], axis=1) // 10)) >= 3


def test_streaming_keyframes_hold_fixed_memory():
    video = bursty_video(n=300, bursts=((50, 60), (200, 215)))
    state = StreamingKeyframes(capacity=8)
    for i, im in enumerate(video):
        state.push(Frame(im, i / 30, i))
        assert len(state) <= 8
    kept = [f.index for f in state.keyframes()]
    assert len(kept) == 8 and sum(50 <= k <= 61 or 200 <= k <= 216 for k in kept) >= 4


def test_query_sampler_motion_prior_spends_the_rest_where_things_move():
    """With an uninformative question the share not steered by relevance (here most of it)
    follows the prior: evenly, or (prior="motion") into the bursts where the dot moves."""
    video = bursty_video()
    moving = np.zeros(len(video), bool)
    moving[29:41] = moving[89:101] = True

    class Flat(_ToyEncoder):
        def encode_images(self, images):
            return np.ones((len(images), 2), np.float32)

    even = get_sampler("query", encoder=Flat(), uniform_mix=0.9).select(video, 12, query="q")
    moved = get_sampler("query", encoder=Flat(), uniform_mix=0.9, prior="motion").select(
        video, 12, query="q")
    assert moving[even].mean() <= 0.34 and moving[moved].mean() >= 0.75
    with pytest.raises(PerceptionError, match="valid: uniform, motion"):
        get_sampler("query", prior="loud")
