import json

import numpy as np
import pytest

from policy.action_tokenizer import ActionTokenizer
from policy.errors import PolicyError

STATS = {"q01": [-0.02, -0.01, -0.03, -0.1, -0.1, -0.2, 0.0],
         "q99": [0.02, 0.01, 0.03, 0.1, 0.1, 0.2, 1.0]}


def test_roundtrip_within_half_a_bin():
    tok = ActionTokenizer(STATS)
    rng = np.random.default_rng(0)
    actions = rng.uniform(STATS["q01"], STATS["q99"], size=(5000, 7)).astype(np.float32)
    actions[:, 6] = rng.integers(0, 2, 5000)
    back = tok.from_bins(tok.to_bins(actions))
    err = np.abs(back - actions)
    bound = tok.max_roundtrip_error()
    assert np.all(err[:, :6] <= bound[:6] + 1e-6)
    assert err[:, :6].max() > 0.5 * bound[:6].min()  # the bound is tight, not vacuous
    assert np.array_equal(back[:, 6], actions[:, 6])  # gripper exactly open/closed


def test_bins_range_and_clipping():
    tok = ActionTokenizer(STATS)
    bins = tok.to_bins(np.array([[1.0] * 6 + [1.0], [-1.0] * 6 + [0.0]]))
    assert bins[0, :6].tolist() == [255] * 6 and bins[1, :6].tolist() == [0] * 6
    assert bins[0, 6] == 255 and bins[1, 6] == 0
    assert tok.normalize(np.zeros(7))[:6] == pytest.approx([0.0] * 6, abs=1e-6)


def test_saved_stats_reproduce_decoding(tmp_path):
    tok = ActionTokenizer(STATS)
    (tmp_path / "stats.json").write_text(json.dumps(tok.to_dict()))
    again = ActionTokenizer.from_dict(json.loads((tmp_path / "stats.json").read_text()))
    bins = np.arange(256).repeat(7).reshape(256, 7)
    assert np.array_equal(tok.from_bins(bins), again.from_bins(bins))
    # bin centres span [q01, q99] symmetrically
    assert again.from_bins(np.full(7, 128))[0] == pytest.approx(0.02 / 256, rel=1e-3)


def test_constant_dimension_decodes_to_constant():
    stats = {"q01": [0.0] * 5 + [0.3, 0.0], "q99": [0.01] * 5 + [0.3, 1.0]}
    tok = ActionTokenizer(stats)
    out = tok.from_bins(tok.to_bins(np.array([0.005] * 5 + [0.3, 1.0])))
    assert out[5] == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [
    {"q01": [0.0] * 6 + [float("nan")], "q99": [1.0] * 7},
    {"q01": [0.0] * 7},
    {"q01": [0.0] * 7, "q99": [-1.0] * 7},
])
def test_bad_stats_raise_one_line_error(bad):
    with pytest.raises(PolicyError) as info:
        ActionTokenizer(bad)
    assert "\n" not in str(info.value)
