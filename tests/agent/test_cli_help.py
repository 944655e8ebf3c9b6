"""Every flag of every `embodied` subcommand says what it does, and no empty default is printed.

The parser is walked, not the ``--help`` text, so a new subcommand is covered the day it lands.
"""

import argparse

import pytest

from agent.cli import build_parser


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(subcommand path, action) for every visible option under ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, path + (name,))
        elif action.option_strings and not isinstance(action, argparse._HelpAction) \
                and action.help is not argparse.SUPPRESS:
            yield path, action


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from _subcommands(sub, path + (name,))


PARSER = build_parser()
SUBCOMMANDS = sorted({" ".join(path) for path, _ in _subcommands(PARSER)})


def test_the_walk_reaches_every_package():
    top = {name.split()[0] for name in SUBCOMMANDS}
    assert {"train", "eval", "sim", "bench", "perceive", "pose", "demo", "train-qa", "eval-qa"} <= top
    assert {"sim collect", "bench sim", "bench all"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_has_help_and_no_empty_default(command):
    bad = []
    for path, action in _options(PARSER):
        if " ".join(path) != command:
            continue
        text = action.help or ""
        if not text.strip() or "(default: )" in text or "(default: None)" in text:
            bad.append(f"{'/'.join(action.option_strings)}: {text!r}")
    assert not bad, f"embodied {command}: " + "; ".join(bad)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_text_renders_without_empty_defaults(command):
    parser = PARSER
    for name in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    text = parser.format_help()
    assert "(default: )" not in text and "(default: None)" not in text


def test_train_needs_a_dataset_or_a_run_to_resume(capsys):
    with pytest.raises(SystemExit) as exc:
        PARSER.parse_args(["train", "--steps", "3"])
    assert exc.value.code == 2
    assert "one of the arguments --dataset --resume is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        PARSER.parse_args(["train", "--dataset", "d", "--resume", "r"])


def test_one_spelling_per_concept_old_ones_hidden():
    args = PARSER.parse_args(["train", "--dataset", "d", "--lora-r", "8", "--init", "ckpt"])
    assert args.lora_rank == 8 and args.init == "ckpt"
    assert PARSER.parse_args(["train", "--dataset", "d", "--lora-rank", "4"]).lora_rank == 4
    train = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    text = train.format_help()
    assert "--lora-rank" in text and "--lora-r " not in text and "--lora-r\n" not in text
    assert "--init " in text and "--init-from" not in text and "--warmup-steps" in text
