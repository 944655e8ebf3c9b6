"""Text in and out of a VideoLM: its tokenizer, and training batches that pack several questions
about the same frames into one sequence, right-padded, with what the grounding loss needs.

The tokenizer is ``perception.text``'s (saved at the checkpoint's root), with these specials after
the text vocabulary (:data:`SPECIALS`; ``encode`` never produces them, so a literal "<sep>" in user
text stays text): ``<frame>`` is a placeholder whose embedding the model replaces with one visual
token; ``<time>`` opens a time marker ("<time>1.3s"); ``<sep>`` ends a frame's block, the question
and the prompt; ``<text>`` opens a frame's optional text. New models use byte-level BPE learned
from the question templates (``"bpe"``): a tiny LM trained from scratch on bytes must first learn
to spell names out of letters before it can look them up in the frames, and within a CPU budget it
did not (video_qa/README.md); ``"byte"`` (plain UTF-8 bytes) is the other choice. Both round-trip
any language; words the merges never saw fall back to smaller pieces down to single bytes.

A pretrained LM (``--lm smollm2``, or ``--lm-path`` with tokenizer files) keeps its own tokenizer,
so every pretrained id keeps its embedding: its BOS/EOS/padding play those roles and only
:data:`PROMPT_SPECIALS` (plus ``<bos>``/``<eos>`` where it has none) are added after its
vocabulary, as new embedding rows that train beside the LoRA adapters (:func:`tokenizer_for`).

One row per clip: ``<bos> {frames} q1 <sep> a1 <eos> q2 <sep> a2 <eos> ...``; ``turns`` marks
which question a token belongs to (0 the shared frames, -1 padding) so the model's block mask lets
each turn see the frames and itself only, and every turn's positions restart after the frames.
With a pretrained text encoder the question's tokens are ``<q>`` slots and the batch carries
their encoder states (``question_states``, one row per slot, in reading order).
The token that ends each thing a question names gets the cells where that thing is
(``ground_at`` / ``ground_target``); with ``grounding_compare`` every other question token is
taught to find nothing (``ground_off``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from perception.text import PretrainedTokenizer, Tokenizer, byte_tokenizer, train_bpe, truncate_utf8

SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<frame>", "<time>", "<sep>", "<text>")
PROMPT_SPECIALS: tuple[str, ...] = ("<frame>", "<time>", "<sep>", "<text>")  # added to a pretrained vocabulary
# With a pretrained text encoder (``text_encoder="minilm"``) the question is a run of ``<q>``
# placeholders, one per encoder token, whose embeddings the model replaces with the projected
# encoder states (as ``<frame>`` slots take visual tokens).
QUESTION_SPECIAL = "<q>"


def _specials(cfg: Any) -> tuple[str, ...]:
    return (QUESTION_SPECIAL,) if getattr(cfg, "pretrained_text", False) else ()


def tokenizer_for(cfg: Any) -> Tokenizer:
    """A new model's tokenizer: the pretrained LM's own plus :data:`PROMPT_SPECIALS` when it has
    one (``cfg.pretrained_lm``), else :func:`new_tokenizer` (``cfg.tokenizer``)."""
    from perception.pretrained_lm import has_tokenizer, pretrained_tokenizer

    source = cfg.pretrained_lm
    if not source or not has_tokenizer(source):
        return new_tokenizer(cfg.tokenizer, cfg.bpe_vocab, _specials(cfg))
    tok = pretrained_tokenizer(source)
    roles = [t for t, have in (("<bos>", tok.bos_id), ("<eos>", tok.eos_id)) if have is None]
    tok.add_specials([*PROMPT_SPECIALS, *_specials(cfg), *roles], bos="<bos>", eos="<eos>")
    return tok


def new_specials(tok: Tokenizer) -> list[int]:
    """Ids of the specials :func:`tokenizer_for` gave a pretrained vocabulary: the embedding rows
    its LM trains beside the adapters (its own BOS/EOS/padding keep their pretrained rows)."""
    if not isinstance(tok, PretrainedTokenizer):
        return []
    specials = tok.specials
    return [specials[s] for s in (*PROMPT_SPECIALS, QUESTION_SPECIAL, "<bos>", "<eos>") if s in specials]


def new_tokenizer(kind: str, bpe_vocab: int, extra: tuple[str, ...] = ()) -> Tokenizer:
    """A new model's tokenizer: ``"byte"``, or ``"bpe"`` with ``bpe_vocab`` text ids (256 bytes
    + merges learned from the training templates; deterministic, so the same for every run);
    ``extra`` specials follow :data:`SPECIALS`."""
    specials = SPECIALS + tuple(extra)
    if kind == "byte":
        return byte_tokenizer(specials)
    from video_qa.questions import template_corpus

    return train_bpe(template_corpus(), bpe_vocab + len(specials), specials)


def collate(model: Any, examples: Sequence[dict[str, Any]], device: torch.device | None = None
            ) -> dict[str, torch.Tensor]:
    """Examples with ``frames [T,H,W,3]`` (or cached ``patches [T,N,D]``), ``times`` and
    either ``question``/``answer`` or lists ``questions``/``answers`` (several turns about the
    same frames; ``texts`` optional) -> right-padded training tensors."""
    tok = model.tokenizer
    rows, labels, turns, positions, qmask, qpos = [], [], [], [], [], []
    ground_at: list[tuple[int, int]] = []  # (row, position) of a token that ends a name
    ground_target: list[np.ndarray] = []  # [T * N]: the cells where that thing is
    ground_off: list[tuple[int, int]] = []  # (row, position) of a question token naming nothing
    states: list[torch.Tensor] = []  # the pretrained encoder's states of every question, in order
    for row, ex in enumerate(examples):
        questions = ex["questions"] if "questions" in ex else [ex["question"]]
        answers = ex["answers"] if "answers" in ex else [ex["answer"]]
        refs = ex.get("refs", ())
        refs = refs if "questions" in ex else [refs]
        ids = model.prefix_ids(ex["times"], ex.get("texts"))
        n_prefix = len(ids)
        lab, turn, pos = [-100] * n_prefix, [0] * n_prefix, list(range(n_prefix))
        is_q, q_pos = [False] * n_prefix, [0] * n_prefix
        for k, (q, a) in enumerate(zip(questions, answers), start=1):
            ans, _ = truncate_utf8(a, model.cfg.max_answer_bytes)
            qi, ai = model.question_ids(q), tok.encode(ans) + [tok.eos_id]
            if model.cfg.pretrained_text:
                states.append(model.question_states(q))
            if "cells" in ex and k - 1 < len(refs):
                ends = model._name_ends(q, qi, refs[k - 1])
                for at, cls in ends:
                    ground_at.append((row, len(ids) + at))
                    ground_target.append(np.asarray(ex["cells"])[:, :, cls].reshape(-1))
                if model.cfg.grounding_compare:
                    named = {at for at, _ in ends}
                    ground_off += [(row, len(ids) + i) for i in range(len(qi)) if i not in named]
            ids += qi + ai
            lab += [-100] * len(qi) + ai
            turn += [k] * (len(qi) + len(ai))
            pos += range(n_prefix, n_prefix + len(qi) + len(ai))
            is_q += [True] * len(qi) + [False] * len(ai)
            q_pos += list(range(len(qi))) + [0] * len(ai)
        rows.append(ids)
        labels.append(lab)
        turns.append(turn)
        positions.append(pos)
        qmask.append(is_q)
        qpos.append(q_pos)
    width = max(len(r) for r in rows)
    ids_t = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
    lab_t = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    turn_t = torch.full((len(rows), width), -1, dtype=torch.long)
    pos_t = torch.zeros((len(rows), width), dtype=torch.long)
    q_t = torch.zeros((len(rows), width), dtype=torch.bool)
    qpos_t = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r)
        ids_t[i, :n] = torch.tensor(r)
        lab_t[i, :n] = torch.tensor(labels[i])
        mask[i, :n] = 1
        turn_t[i, :n] = torch.tensor(turns[i])
        pos_t[i, :n] = torch.tensor(positions[i])
        q_t[i, :n] = torch.tensor(qmask[i])
        qpos_t[i, :n] = torch.tensor(qpos[i])
    dev = device or model.device
    out = {"input_ids": ids_t.to(dev), "labels": lab_t.to(dev), "attention_mask": mask.to(dev),
           "position_ids": pos_t.to(dev), "question": q_t.to(dev), "question_pos": qpos_t.to(dev)}
    if states:
        out["question_states"] = torch.cat(states).to(dev)
    if any(len(ex.get("questions", ())) > 1 for ex in examples):
        out["turns"] = turn_t.to(dev)
    else:  # one question each: the plain causal mask; turns only tell the grounding apart
        out["question_turns"] = turn_t.to(dev)
    if ground_at and hasattr(model, "grounding"):
        out["ground_at"] = torch.tensor(ground_at, dtype=torch.long, device=dev)
        out["ground_target"] = torch.from_numpy(np.stack(ground_target).astype(np.float32)).to(dev)
        if ground_off:
            out["ground_off"] = torch.tensor(ground_off, dtype=torch.long, device=dev)
    if all("frame_labels" in ex for ex in examples):
        out["frame_labels"] = torch.stack([torch.as_tensor(ex["frame_labels"]) for ex in examples]).to(dev)
        out["frame_mask"] = torch.stack([torch.as_tensor(ex["frame_mask"]) for ex in examples]).to(dev)
    if all("patches" in ex for ex in examples):
        out["patches"] = torch.stack([torch.as_tensor(ex["patches"]) for ex in examples]).to(dev)
    else:
        out["images"] = torch.stack([model.preprocess(ex["frames"]) for ex in examples]).to(dev)
    return out
