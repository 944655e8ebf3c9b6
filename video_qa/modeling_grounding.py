"""Question grounding: each question's tokens look the named things up in the frames' cells.

Why: a small LM trained from scratch did not learn to find "the pink cube" among the frame tokens
within a CPU budget, even when those tokens held perfect ground truth (yes/no and spatial
questions stayed near chance after 5,000 steps; video_qa/README.md). Asking "is there one?" of
softmax attention needs a learned sink for "none", and the answer bit gives almost no gradient
towards it. So, before the LM, a question's tokens are composed by one bidirectional attention
layer ("pink" + "cube"), then cross-attend to every cell of every sampled frame with SIGMOID
scores (each cell judged on its own, as word-region alignment in GLIP): nothing matching gives a
near-zero read-out, a match gives that cell's features, its position and its frame. The read-out
is added to the question's token embeddings through a learned scale (a gate, as in Flamingo's
gated cross-attention) that starts at the LM's own embedding scale.

Scale matters: a from-scratch LM's word embeddings are tiny (std 0.02), so the composition runs
on layer-normalised embeddings, and what is added back is layer-normalised and scaled to the
embeddings' size. Unscaled (position vectors at std 1), the words drowned and nothing was learned.

Where matters as much as what ("is the blue cube left of the bowl?"), and a convolutional cell's
features say little about where the cell is, so each cell's value carries its image position as a
fixed (x, y) code; with ``relate`` a second text block runs AFTER the read-out, so the tokens of
one name can compare what they found with what the other name found before the LM sees them.

Comparing takes more than knowing: with each name's position in its read-out (``relate``), or as
two numbers (a ``where`` feature, since removed), "left of" stayed at chance for 5,000 steps
although the grounding alone put both things in the right columns for 93 % of the training
questions (video_qa/README.md). With
``compare`` the comparison is computed, not learned: each token gets its found position minus the
mean position of what the question's EARLIER tokens found (weighted by how strongly they found
it), so the second name of "is the a left of the b?" carries x_b - x_a, a number whose sign is the
answer. It is added after the final normalisation, at a size comparable to it: added before the
relate block it was a thousandth of a read-out that sums many cells, and was never learned. Only
tokens that end a name should find anything for this to hold, so with ``compare``
training also teaches every other question token to find nothing (``VideoLM.collate``).

Only question tokens change: the frame tokens in the prompt are untouched, and the questions
packed after one shared frame prefix each read the frames without seeing one another.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class QuestionGrounding(nn.Module):
    """``(emb, question mask, turns, question positions, patches) -> emb`` with grounded questions."""

    def __init__(self, d_lm: int, d_vis: int, max_frames: int, heads: int = 4,
                 max_question_tokens: int = 256, embedding_std: float = 0.02,
                 relate: bool = False, compare: bool = False) -> None:
        super().__init__()
        if d_lm % heads:
            raise ValueError(f"LM width {d_lm} is not divisible by {heads} grounding heads")
        self.heads = heads
        self.cells = nn.Sequential(nn.LayerNorm(d_vis), nn.Linear(d_vis, d_lm))
        self.frame_pos = nn.Embedding(max_frames, d_lm)  # which sampled frame a cell is in
        self.norm_in = nn.LayerNorm(d_lm)
        self.text_pos = nn.Embedding(max_question_tokens, d_lm)
        nn.init.normal_(self.text_pos.weight, std=0.1)  # a hint of order, not louder than the words
        # one pre-norm self-attention block over each question's own tokens
        self.norm_text = nn.LayerNorm(d_lm)
        self.text_qkv = nn.Linear(d_lm, 3 * d_lm)
        self.text_out = nn.Linear(d_lm, d_lm)
        self.norm_mlp = nn.LayerNorm(d_lm)
        self.mlp = nn.Sequential(nn.Linear(d_lm, 2 * d_lm), nn.GELU(), nn.Linear(2 * d_lm, d_lm))
        # sigmoid cross-attention into the cells
        self.norm_q = nn.LayerNorm(d_lm)
        self.q = nn.Linear(d_lm, d_lm)
        self.kv = nn.Linear(d_lm, 2 * d_lm)
        # start with each cell weighted ~1/64: a read-out the size of one cell's features
        self.score_bias = nn.Parameter(torch.full((heads,), -4.0))
        self.out = nn.Linear(d_lm, d_lm)
        self.relate = relate
        self.compare = compare
        if compare:  # (x, y) found minus (x, y) the earlier tokens found, own and earlier strength
            self.compare_in = nn.Linear(4, d_lm)
        if relate:
            self.cell_xy = nn.Linear(2, d_lm)  # (x, y) in [-1, 1] -> the value of every cell
            self.rel_norm = nn.LayerNorm(d_lm)
            self.rel_qkv = nn.Linear(d_lm, 3 * d_lm)
            self.rel_out = nn.Linear(d_lm, d_lm)
            self.rel_norm_mlp = nn.LayerNorm(d_lm)
            self.rel_mlp = nn.Sequential(nn.Linear(d_lm, 2 * d_lm), nn.GELU(), nn.Linear(2 * d_lm, d_lm))
        self.norm_out = nn.LayerNorm(d_lm)
        self.gate = nn.Parameter(torch.tensor(float(embedding_std)))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # [B, H, n, d/H]

    def _self_attend(self, x: torch.Tensor, same: torch.Tensor, norm: nn.Module, qkv: nn.Module,
                     out: nn.Module, norm_mlp: nn.Module, mlp: nn.Module) -> torch.Tensor:
        """One pre-norm block of attention within each question (``same``) and an MLP."""
        b, length, d = x.shape
        q, k, v = qkv(norm(x)).chunk(3, dim=-1)
        att = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v),
                                             attn_mask=same[:, None])
        x = x + out(att.transpose(1, 2).reshape(b, length, d))
        return x + mlp(norm_mlp(x))

    @staticmethod
    def _cell_xy(n: int, device: torch.device) -> torch.Tensor:
        """``[n, 2]`` (x, y) in [-1, 1] of a square grid's cells in row-major order (zeros if the
        cells do not form a square)."""
        g = int(round(n ** 0.5))
        if g * g != n or g < 2:
            return torch.zeros(n, 2, device=device)
        idx = torch.arange(n, device=device)
        return torch.stack([idx % g, idx // g], dim=-1).float() / (g - 1) * 2 - 1

    @staticmethod
    def _finds(match: torch.Tensor, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What each token found, as numbers: the match-weighted mean (x, y) ``[B, L, 2]`` and the
        strongest match ``[B, L]`` (~1 where the token found its thing), from head-averaged match
        probabilities ``match`` ``[B, L, T*N]`` and each cell's ``xy`` ``[T*N, 2]``."""
        return (match @ xy) / (match.sum(-1, keepdim=True) + 1e-3), match.amax(-1)

    def _compare(self, match: torch.Tensor, same: torch.Tensor, question_pos: torch.Tensor,
                 xy: torch.Tensor) -> torch.Tensor:
        """``[B, L, 4]``: (x, y) each token found minus the strength-weighted mean (x, y) that the
        earlier tokens of its question found, scaled by both strengths; its own strength; the
        earlier tokens' (capped at 1). Zeros for a token that found nothing or has nothing before
        it to compare with."""
        found, strength = self._finds(match, xy)
        earlier = same & (question_pos[:, None, :] < question_pos[:, :, None])  # j before i
        prior = earlier.to(match.dtype) * strength[:, None, :]  # [B, L, L]
        prior_strength = prior.sum(-1, keepdim=True)
        before = (prior @ found) / (prior_strength + 1e-3)
        both = strength[..., None] * prior_strength.clamp(max=1.0)
        return torch.cat([(found - before) * both, strength[..., None],
                          prior_strength.clamp(max=1.0)], dim=-1)

    def forward(self, emb: torch.Tensor, question: torch.Tensor, turns: torch.Tensor,
                question_pos: torch.Tensor, patches: torch.Tensor,
                return_scores: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``emb`` ``[B, L, D]``; ``question`` bool ``[B, L]`` (a question's tokens and its
        closing ``<sep>``); ``turns`` ``[B, L]`` (which question a token belongs to);
        ``question_pos`` ``[B, L]`` (index within its question, 0 elsewhere); ``patches``
        ``[B, T, N, D_v]`` the sampled frames' cells."""
        b, length, d = emb.shape
        t, n = patches.shape[1:3]
        # compose each question's tokens, within that question only
        x = self.norm_in(emb) + self.text_pos(question_pos.clamp(0, self.text_pos.num_embeddings - 1))
        same = (turns[:, :, None] == turns[:, None, :]) & question[:, :, None] & question[:, None, :]
        same |= torch.eye(length, dtype=torch.bool, device=emb.device)
        x = self._self_attend(x, same, self.norm_text, self.text_qkv, self.text_out,
                              self.norm_mlp, self.mlp)
        # read the cells of every frame, each scored on its own
        frames = torch.arange(t, device=emb.device).clamp(max=self.frame_pos.num_embeddings - 1)
        cells = (self.cells(patches) + self.frame_pos(frames)[None, :, None]).reshape(b, t * n, d)
        key, value = self.kv(cells).chunk(2, dim=-1)
        xy_cells = self._cell_xy(n, emb.device).to(emb.dtype)  # [N, 2]
        if self.relate:  # where each cell is, in its value (the keys say what is there)
            value = value + self.cell_xy(xy_cells).repeat(t, 1)[None]
        scores = self._split(self.q(self.norm_q(x))) @ self._split(key).transpose(-1, -2)
        logits = scores * (d // self.heads) ** -0.5 + self.score_bias[:, None, None]  # [B, H, L, T*N]
        read = (torch.sigmoid(logits) @ self._split(value)).transpose(1, 2).reshape(b, length, d)
        x = x + self.out(read)
        # head-averaged: what the grounding loss trains, near 0 off the named thing
        match = torch.sigmoid(logits.mean(1)) if self.compare else None
        xy_all = xy_cells.repeat(t, 1)  # [T*N, 2]
        if self.relate:  # compare what the question's names found
            x = self._self_attend(x, same, self.rel_norm, self.rel_qkv, self.rel_out,
                                  self.rel_norm_mlp, self.rel_mlp)
        grounded = self.norm_out(x)
        if self.compare:  # after the norm: inside x it was ~0.1 % of the vector and never read
            grounded = grounded + self.compare_in(self._compare(match, same, question_pos, xy_all))
        grounded = self.gate * grounded
        out = emb + question[..., None].to(emb.dtype) * grounded
        if return_scores:  # [B, L, T*N] score logits averaged over heads, for a grounding loss
            return out, logits.mean(1)
        return out
