import torch

from video_qa.grounding import QuestionGrounding


def _setup(seed=0):
    torch.manual_seed(seed)
    g = QuestionGrounding(d_lm=16, d_vis=8, max_frames=3, heads=2).eval()
    # one row: 4 frame-prefix tokens, question 1 (3 tokens) + answer (1), question 2 (2) + answer (1)
    turns = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]])
    question = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0]], dtype=torch.bool)
    qpos = torch.tensor([[0, 0, 0, 0, 0, 1, 2, 0, 0, 1, 0]])
    emb = torch.randn(1, 11, 16)
    patches = torch.randn(1, 3, 5, 8)
    return g, emb, question, turns, qpos, patches


def test_only_question_tokens_change():
    g, emb, question, turns, qpos, patches = _setup()
    with torch.no_grad():
        out = g(emb, question, turns, qpos, patches)
    torch.testing.assert_close(out[~question], emb[~question])
    assert (out[question] - emb[question]).abs().amax(-1).min() > 1e-4


def test_a_question_never_reads_another_question():
    g, emb, question, turns, qpos, patches = _setup()
    with torch.no_grad():
        before = g(emb, question, turns, qpos, patches)
        other = emb.clone()
        other[0, 8:10] += 3 * torch.randn(2, 16)  # rewrite question 2's tokens
        after = g(other, question, turns, qpos, patches)
    torch.testing.assert_close(after[0, 4:7], before[0, 4:7])  # question 1 unchanged
    assert (after[0, 8:10] - before[0, 8:10]).abs().max() > 1e-3


def test_what_a_question_reads_comes_from_the_cells():
    g, emb, question, turns, qpos, patches = _setup()
    with torch.no_grad():
        before = g(emb, question, turns, qpos, patches)
        moved = patches.clone()
        moved[0, 2, 3] += 5.0 * torch.randn(8)  # one cell of the last frame
        after = g(emb, question, turns, qpos, moved)
        torch.nn.init.zeros_(g.gate)  # a closed gate: the plain embeddings come through
        torch.testing.assert_close(g(emb, question, turns, qpos, moved), emb)
    assert (after[question] - before[question]).abs().max() > 1e-4
