"""`embodied train-qa --help`: every flag says what it does, no empty default, one spelling per
concept (the old spellings still parse, hidden)."""

import argparse
import re

import pytest

from agent.cli import build_parser


def _train_qa() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train-qa"]


def test_every_train_qa_option_has_help_and_no_empty_default():
    parser = _train_qa()
    shown = [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS
             and not isinstance(a, argparse._HelpAction)]
    assert len(shown) > 40  # the walk sees the config fields, not an empty parser
    missing = [a.option_strings[0] for a in shown if not (a.help or "").strip()]
    assert not missing, missing
    text = parser.format_help()
    assert "(default: )" not in text and "(default: None)" not in text
    for flag in ("--init", "--warmup-steps", "--lora-rank", "--steps", "--data-seed"):
        assert re.search(rf"^\s+{flag}\b", text, re.M), flag
    for hidden in ("--init-from", "--warmup ", "--grounding-where"):
        assert hidden not in text


def test_old_spellings_parse_into_the_one_field():
    parser = build_parser()
    new = parser.parse_args(["train-qa", "--init", "ckpt", "--warmup-steps", "7"])
    old = parser.parse_args(["train-qa", "--init-from", "ckpt", "--warmup", "7"])
    assert (new.init, new.warmup_steps) == (old.init, old.warmup_steps) == ("ckpt", 7)
    with pytest.raises(SystemExit):  # the removed experiment is not a flag any more
        parser.parse_args(["train-qa", "--grounding-where"])
    with pytest.raises(SystemExit):  # choices are checked when parsing, not deep in training
        parser.parse_args(["train-qa", "--sampler", "random"])
