"""The CLI dispatcher: help lists the subcommands, user errors are one line with exit status 2."""

import subprocess
import sys

import pytest

from agent.cli import build_parser, main
from sim.errors import SimError
from sim.registry import check_task


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "bench" in out and "demo" in out


def test_unknown_task_lists_known_ones():
    with pytest.raises(SimError) as exc:
        check_task("PickUpp")
    msg = str(exc.value)
    assert "PickUp" in msg and "Reach" in msg and "Did you mean 'PickUp'" in msg


def test_check_task_accepts_gym_id_and_case():
    assert check_task("embodied/PutIn-v0") == "PutIn"
    assert check_task("pickup") == "PickUp"


def test_user_error_is_one_line_no_traceback(tmp_path):
    code = (
        "import sys\n"
        "from agent.cli import main\n"
        "from common.errors import UserError\n"
        "import agent.commands as c\n"
        "def boom(args):\n"
        "    raise UserError('bad input here')\n"
        "p = __import__('agent.cli', fromlist=['x'])\n"
        "orig = p.build_parser\n"
        "def bp():\n"
        "    parser = orig()\n"
        "    parser.set_defaults(func=boom, command='x')\n"
        "    return parser\n"
        "p.build_parser = bp\n"
        "sys.exit(main([]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "embodied x: error: bad input here"


def test_parser_builds_without_heavy_imports():
    code = "import sys; from agent.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
