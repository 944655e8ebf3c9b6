import pytest
import torch

from video_qa.grounding import QuestionGrounding


VARIANTS = {"plain": {}, "relate": {"relate": True}, "where": {"where": True}}


def _setup(seed=0, variant="plain", cells=5):
    torch.manual_seed(seed)
    g = QuestionGrounding(d_lm=16, d_vis=8, max_frames=3, heads=2, **VARIANTS[variant]).eval()
    # one row: 4 frame-prefix tokens, question 1 (3 tokens) + answer (1), question 2 (2) + answer (1)
    turns = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]])
    question = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0]], dtype=torch.bool)
    qpos = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 0, 0, 1, 0]])
    emb = torch.randn(1, 11, 16)
    patches = torch.randn(1, 3, cells, 8)
    return g, emb, question, turns, qpos, patches


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_only_question_tokens_change(variant):
    g, emb, question, turns, qpos, patches = _setup(variant=variant)
    with torch.no_grad():
        out = g(emb, question, turns, qpos, patches)
    torch.testing.assert_close(out[~question], emb[~question])
    assert (out[question] - emb[question]).abs().amax(-1).min() > 1e-4


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_question_never_reads_another_question(variant):
    g, emb, question, turns, qpos, patches = _setup(variant=variant)
    with torch.no_grad():
        before = g(emb, question, turns, qpos, patches)
        other = emb.clone()
        other[0, 8:10] += 3 * torch.randn(2, 16)  # rewrite question 2's tokens
        after = g(other, question, turns, qpos, patches)
    torch.testing.assert_close(after[0, 4:7], before[0, 4:7])  # question 1 unchanged
    assert (after[0, 8:10] - before[0, 8:10]).abs().max() > 1e-3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_what_a_question_reads_comes_from_the_cells(variant):
    g, emb, question, turns, qpos, patches = _setup(variant=variant)
    with torch.no_grad():
        before = g(emb, question, turns, qpos, patches)
        moved = patches.clone()
        moved[0, 2, 3] += 5.0 * torch.randn(8)  # one cell of the last frame
        after = g(emb, question, turns, qpos, moved)
        torch.nn.init.zeros_(g.gate)  # a closed gate: the plain embeddings come through
        torch.testing.assert_close(g(emb, question, turns, qpos, moved), emb)
    assert (after[question] - before[question]).abs().max() > 1e-4


def test_with_relate_the_read_out_knows_where_the_cells_are():
    """Convolutional cells say what, hardly where: without ``relate`` or ``where`` the read-out is
    blind to a shuffle of a frame's cells; with either (each value carries its cell's (x, y), or
    the matches' mean position is added) it is not."""
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    for variant in VARIANTS:
        blind = variant == "plain"
        g, emb, question, turns, qpos, patches = _setup(variant=variant, cells=16)
        shuffled = patches.clone()
        shuffled[0, 1] = patches[0, 1, perm]
        with torch.no_grad():
            g.gate.fill_(1.0)  # open (it starts at the embeddings' 0.02)
            diff = (g(emb, question, turns, qpos, shuffled) - g(emb, question, turns, qpos, patches)).abs().max()
        assert (diff < 1e-5) if blind else (diff > 1e-3), (variant, float(diff))


def test_cell_xy_is_the_row_major_grid():
    xy = QuestionGrounding._cell_xy(9, torch.device("cpu"))
    torch.testing.assert_close(xy[0], torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(xy[2], torch.tensor([1.0, -1.0]))  # end of the first row: right
    torch.testing.assert_close(xy[6], torch.tensor([-1.0, 1.0]))  # start of the last row: bottom
    assert QuestionGrounding._cell_xy(5, torch.device("cpu")).abs().sum() == 0  # not a square grid
