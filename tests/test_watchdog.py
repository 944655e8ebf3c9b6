"""The suite's last-resort watchdog (tests/conftest.py) ends a run that hangs, naming the test."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_hung_test_ends_the_run_with_its_stack(tmp_path):
    hung = tmp_path / "test_hung.py"
    hung.write_text("import time\n\ndef test_hangs():\n    time.sleep(120)\n")
    env = {**os.environ, "EMBODIED_TEST_WATCHDOG_S": "3"}
    # pytest-timeout off, so only the watchdog can end it; a hang would hit subprocess's timeout.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "--timeout=0",
         "-p", "no:cacheprovider", str(hung)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 1
    assert "Timeout (0:00:03)!" in done.stderr
    assert "test_hangs" in done.stderr and "test_hung.py" in done.stderr
