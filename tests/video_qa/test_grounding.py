import pytest
import torch

from video_qa.modeling_grounding import QuestionGrounding


VARIANTS = {"plain": {}, "relate": {"relate": True}, "compare": {"relate": True, "compare": True}}


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
    """Convolutional cells say what, hardly where: without ``relate`` the read-out is blind to a
    shuffle of a frame's cells; with it (each value carries its cell's (x, y)) it is not."""
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


def test_compare_gives_the_second_name_its_position_relative_to_the_first():
    """"Is the a left of the b?": with sharp matches that put a in the left column and b in the
    right one, the token ending b carries x_b - x_a > 0 and a nothing (no earlier find); swap
    the two and the sign flips; a token that found nothing gets zeros."""
    g = QuestionGrounding(d_lm=16, d_vis=8, max_frames=1, heads=2, compare=True)
    xy = QuestionGrounding._cell_xy(9, torch.device("cpu"))  # 3x3 grid, one frame
    same = torch.ones(1, 4, 4, dtype=torch.bool)  # one question of four tokens
    qpos = torch.arange(4)[None]

    def features(cell_a, cell_b):
        match = torch.zeros(1, 4, 9)  # [B, L, cells]: nothing anywhere ...
        match[0, 1, cell_a] = 1.0  # ... but token 1 (ends a) finds cell_a
        match[0, 3, cell_b] = 1.0  # and token 3 (ends b) finds cell_b
        return g._compare(match, same, qpos, xy)[0]

    f = features(3, 5)  # a at the left of the middle row, b at its right
    torch.testing.assert_close(f[3], torch.tensor([2.0, 0.0, 1.0, 1.0]), atol=1e-2, rtol=0)
    torch.testing.assert_close(f[1, :2], torch.zeros(2))  # nothing earlier to compare with
    assert f[1, 2] > 0.99 and f[1, 3] == 0
    torch.testing.assert_close(f[[0, 2]], torch.tensor([[0.0, 0, 0, 0], [0, 0, 0, 1]]), atol=1e-2, rtol=0)
    g_swapped = features(5, 3)
    assert g_swapped[3, 0] < -1.9  # b left of a: negative


def test_the_comparison_is_a_sizeable_part_of_what_the_lm_receives():
    """Regression: added inside the block, x_b - x_a was ~0.1 % of the grounded vector (a read-out
    sums many cells) and never learned. Flipping its sign must move the output by a good part of
    the output's own size."""
    g, emb, question, turns, qpos, patches = _setup(variant="compare")
    feats = {}

    def fixed(match, same, question_pos, xy):
        f = torch.zeros(*match.shape[:2], 4)
        f[..., 0], f[..., 2:] = feats["x"], 1.0
        return f

    g._compare = fixed
    patches = 10 * patches  # a trained read-out: strong matches, summed over many cells
    with torch.no_grad():
        g.score_bias.fill_(4.0)
        feats["x"] = 1.0
        right = g(emb, question, turns, qpos, patches)
        feats["x"] = -1.0
        left = g(emb, question, turns, qpos, patches)
    moved = (right - left)[question].norm(dim=-1)
    size = (right - emb)[question].norm(dim=-1)
    assert (moved / size).min() > 0.2, moved / size
