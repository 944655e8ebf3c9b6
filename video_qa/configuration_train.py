"""How `embodied train-qa` trains: one typed dataclass (every field a flag, its help beside it),
and the small record saved beside each checkpoint (``qa_train.json``).

The record says which sampler chose the frames a checkpoint was trained on and where its data
are, and the recipe (data seed, clip counts, data version) that makes its held-out clips again on
a fresh clone (``video_qa.dataset.heldout_data``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from video_qa.errors import VideoQAError

SAMPLERS = ("uniform", "motion")
TRAIN_META = "qa_train.json"  # beside the checkpoint: sampler, data directory, data recipe


@dataclass
class TrainQAConfig:
    data_dir: str = field(default="runs/video_qa/data", metadata={"help": "cached clips + qa.jsonl (generated if missing)"})
    n_billiards: int = field(default=80, metadata={"help": "shots to simulate (~3 s each on one core)"})
    n_tabletop: int = field(default=80, metadata={"help": "expert episodes (~1 s each)"})
    data_seed: int = field(default=0, metadata={"help": "seed of the simulated clips and their questions (recorded with the checkpoint)"})
    workers: int = field(default=1, metadata={"help": "processes simulating clips when data are generated"})
    sampler: str = field(default="motion", metadata={"help": "keyframes per clip: \"motion\" (MGSampler) or \"uniform\"", "choices": SAMPLERS})
    steps: int = field(default=1500, metadata={"help": "AdamW steps (tiny model: ~10 min on one CPU core)"})
    batch_size: int = field(default=32, metadata={"help": "clips per step (each with --questions-per-clip questions)"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate: tiny models from scratch like a high rate; cosine to 0"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps before the cosine decay", "aliases": ("--warmup",)})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seed of the weights and of the training draws"})
    threads: int = field(default=1, metadata={"help": "torch threads: on a shared 2-core box one thread is fastest"})
    log_every: int = field(default=25, metadata={"help": "log the loss every this many steps"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present) | cpu | cuda"})
    # The fixed qa.jsonl holds one round of questions per clip (one yes/no pair, one spatial pair,
    # one time): ~10 per clip, too few for a tiny LM to learn which words of a question name which
    # thing in the frames. Fresh questions draw a new round about a random training clip for every
    # example (other objects, pairs, times; training templates only), so the clips, the expensive
    # part, are reused with far more varied questions. The test split is always the fixed file.
    fresh_questions: bool = field(default=True, metadata={"help": "draw new questions about the training clips for every batch (off = the fixed qa.jsonl training questions)"})
    # Fresh questions also draw from video_qa.questions.EXTRA_TEMPLATES: more ways of asking each
    # type, so a model that reads questions with the pretrained encoder learns the meaning, not one
    # wording. The held-out phrasings stay out either way.
    extra_phrasings: bool = field(default=True, metadata={"help": "fresh questions also use the extra training phrasings (video_qa.questions.EXTRA_TEMPLATES); held-out phrasings never"})
    # An answer is one or two tokens: a batch of single questions gives the LM very little to
    # learn from per step. Several questions about the same frames share one sequence (each sees
    # only the frames and itself), so a step supervises that many more answers for ~2x the cost.
    questions_per_clip: int = field(default=8, metadata={"help": "questions packed per clip and sequence when fresh questions are on (batch_size counts clips)"})
    # Billiards clips are a seventh of the data and the harder world (tiny balls, events between
    # frames); drawing them more often than their share trades tabletop practice for billiards.
    billiards_share: float = field(default=0.0, metadata={"help": "fraction of training clips drawn from billiards shots (0 = their share of the data)"})
    # With subtitles, 320 training shots are few enough to memorise: the model answered "which
    # ball did the cue ball hit first?" from what the clip looked like and ignored the text beside
    # it (0.54 with the right answer in the subtitle). Renaming the object balls of a drawn shot's
    # events, consistently in its subtitles and its answers, makes the text the only way to the
    # answer; the frames and the layout stay the clip's own.
    event_rename: float = field(default=0.0, metadata={"help": "with --subtitles events: share of billiards training draws whose events (subtitles and answers alike) name a random permutation of the object balls, so answers must be read from the text"})
    encoder_steps: int = field(default=3000, metadata={"help": "pretrain the frame encoder on the training clips' dense cell labels first (0 = keep it as built; ignored with --vision-path)"})
    init: str | None = field(default=None, metadata={"help": "start from this VideoLM checkpoint's weights (its encoder, LM and tokenizer; modules it lacks start fresh)", "aliases": ("--init-from",), "metavar": "DIR"})
    eval_limit: int = field(default=0, metadata={"help": "questions per split to evaluate (0 = all)"})
    runs_root: str = field(default="runs", metadata={"help": "run directories go under ROOT/train_qa/", "metavar": "ROOT"})

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise VideoQAError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.steps < 1 or self.batch_size < 1 or self.questions_per_clip < 1:
            raise VideoQAError("steps, batch_size and questions_per_clip must be >= 1")
        if not 0.0 <= self.event_rename <= 1.0:
            raise VideoQAError(f"event_rename must be in [0, 1], got {self.event_rename}")
        if not 0.0 <= self.billiards_share < 1.0:
            raise VideoQAError(f"billiards_share must be in [0, 1), got {self.billiards_share}")


def read_train_meta(checkpoint: str | Path) -> dict[str, Any]:
    """The checkpoint's ``qa_train.json`` ({} when it has none: an older or hand-made checkpoint)."""
    path = Path(checkpoint) / TRAIN_META
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise VideoQAError(f"{path} is not valid JSON: {exc}") from None
