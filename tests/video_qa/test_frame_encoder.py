import numpy as np
import pytest

from video_qa.errors import VideoQAError
from video_qa.labels import CELL_CLASSES, cell_labels, cell_of, cell_targets

COL = {name: i for i, name in enumerate(CELL_CLASSES)}


def _episode():
    return {"source": "tabletop", "width": 128, "height": 128,
            "objects": [{"name": "red cube", "color": "red", "shape": "cube", "is_target": True},
                        {"name": "blue cylinder", "color": "blue", "shape": "cylinder", "is_target": False}],
            "track": {"red cube": [[10.0, 20.0], [70.0, 100.0]], "blue cylinder": [[127.0, 0.0], [127.0, 0.0]]},
            "lifted": [False, True], "receptacle": {"kind": "bowl", "u": 64.0, "uv": [64.0, 64.0]}}


def test_cells_are_row_major_and_off_frame_points_have_none():
    assert cell_of(0, 0, 128, 128, 8) == 0
    assert cell_of(127.9, 0, 128, 128, 8) == 7
    assert cell_of(0, 16.0, 128, 128, 8) == 8  # second row
    assert cell_of(64, 40, 128, 80, 8) == 4 * 8 + 4  # a 128x80 frame is split into 8 rows too
    assert cell_of(-1, 5, 128, 128, 8) is None and cell_of(5, 128, 128, 128, 8) is None


def test_tabletop_cells_follow_each_object_and_mark_the_lifted_one():
    ep = _episode()
    first, later = cell_labels(ep, 0, 8), cell_labels(ep, 1, 8)
    assert first.shape == (64, len(CELL_CLASSES))
    assert first[cell_of(10, 20, 128, 128, 8), COL["red cube"]] == 1
    assert later[cell_of(70, 100, 128, 128, 8), COL["red cube"]] == 1  # it moved
    assert first[:, COL["red cube"]].sum() == 1 and later[:, COL["red cube"]].sum() == 1
    assert first[7, COL["blue cylinder"]] == 1
    assert first[cell_of(64, 64, 128, 128, 8), COL["bowl"]] == 1
    assert first[:, COL["lifted"]].sum() == 0  # not yet lifted
    assert later[cell_of(70, 100, 128, 128, 8), COL["lifted"]] == 1
    assert later[:, COL["lifted"]].sum() == 1
    assert first[:, COL["ball:cue"]].sum() == 0


def test_billiards_cells_drop_potted_balls():
    shot = {"source": "billiards", "width": 128, "height": 80,
            "track": {"cue": [[5.0, 5.0], [60.0, 40.0]], "red": [[100.0, 70.0], None]}}
    first, later = cell_labels(shot, 0, 8), cell_labels(shot, 1, 8)
    assert first[0, COL["ball:cue"]] == 1 and later[cell_of(60, 40, 128, 80, 8), COL["ball:cue"]] == 1
    assert first[cell_of(100, 70, 128, 80, 8), COL["ball:red"]] == 1
    assert later[:, COL["ball:red"]].sum() == 0  # potted: nowhere
    assert first[:, :COL["ball:cue"]].sum() == 0  # no tabletop things on a pool table


def test_clips_without_positions_need_regenerating():
    with pytest.raises(VideoQAError, match="regenerate"):
        cell_labels({"source": "tabletop", "objects": []}, 0, 8)


def test_offsets_say_where_in_its_cell_each_thing_is():
    labels, offsets = cell_targets(_episode(), 0, 8)
    cell = cell_of(10, 20, 128, 128, 8)  # 16 px cells: (10, 20) is 10/16 across, 4/16 down
    assert labels[cell, COL["red cube"]] == 1
    np.testing.assert_allclose(offsets[cell, COL["red cube"]].astype(float), [10 / 16, 4 / 16], atol=1e-3)
    assert offsets[labels == 0].max() == 0  # nothing where nothing is
    _, later = cell_targets(_episode(), 1, 8)
    lifted = cell_of(70, 100, 128, 128, 8)
    np.testing.assert_array_equal(later[lifted, COL["lifted"]], later[lifted, COL["red cube"]])
