"""`embodied agent chat` as an operator uses it: a real terminal (a pseudo-terminal), the shipped
policy and video-QA model loaded by default, one scene, a conversation that asks, commands, asks
what happened and about the video, and stops; Ctrl-C at the prompt changes nothing, Ctrl-C during a
command stops it, and the conversation goes on. In process: a request that fails is one error reply,
and the policy gets its own image size while the video memory keeps the world's.

PickUp seed 0 holds one blue cube, which the shipped policy picks up in about 14 steps from the
world's 128 px frames resized to its 64 px (checked with the in-process agent)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agent.agent import Agent
from agent.world import SimWorld
from policy.base import BasePolicy

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "checkpoints/vla-default", ROOT / "checkpoints/videoqa-default")
REPLY = re.compile(r"agent> ([^\r\n]*)\r?\n")


class Terminal:
    """A child process on a pseudo-terminal: what it prints is read back as the operator sees it
    (input echoed, CR-LF line ends); keystrokes, Ctrl-C included, go through the terminal."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the terminal is its stdin/stdout/stderr and controlling tty
            os.chdir(cwd)
            os.execv(argv[0], argv)
        self.seen = ""

    def read_until(self, pattern: re.Pattern[str] | str, timeout: float) -> re.Match[str]:
        pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.seen)
            if m:
                self.seen = self.seen[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern.pattern!r} within {timeout} s; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the chat ended while waiting for {pattern.pattern!r}:\n{self.seen}")
                self.seen += chunk.decode("utf-8", "replace")

    def say(self, text: str, timeout: float = 30.0) -> str:
        """Type a line at the prompt and return the agent's one-line reply."""
        self.read_until(r"you> ", timeout)
        os.write(self.fd, text.encode() + b"\r")
        return self.read_until(REPLY, timeout).group(1)

    def exit_status(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:  # keep draining, or a child blocked on a full terminal never exits
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.seen += os.read(self.fd, 65536).decode("utf-8", "replace")
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"the chat did not exit within {timeout} s:\n{self.seen}")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.mark.skipif(not all(p.is_dir() for p in SHIPPED), reason="the shipped checkpoints are not here")
def test_chat_in_a_terminal_with_the_shipped_models():
    world = SimWorld("PickUp", seed=0, image_size=32, cameras=("agentview",))  # the scene's truth
    cube = world.objects()
    world.close()
    assert [o.name for o in cube] == ["blue cube"]
    x, y, _ = (float(v) * 100 for v in cube[0].position)

    # Only the deadline differs from the defaults: this machine's CPUs are shared with other tests.
    term = Terminal([sys.executable, "-m", "agent", "agent", "chat", "--task", "PickUp", "--seed", "0",
                     "--model-deadline-ms", "20000"], ROOT)
    try:
        loaded = term.read_until(r"Loaded ([^\r\n]*)\r?\n", 60).group(1)
        assert "policy checkpoints/vla-default" in loaded and "video-QA checkpoints/videoqa-default" in loaded

        seen = term.say("what do you see?")
        assert seen.startswith("I see a blue cube on the table")

        where = term.say("where is the blue cube?")
        m = re.search(r"The blue cube is (\d+) cm in front of the robot base, (\d+) cm to the robot's (left|right)",
                      where)
        assert m, where
        assert abs(int(m.group(1)) - x) <= 1.5 and abs(int(m.group(2)) - abs(y)) <= 1.5
        assert m.group(3) == ("left" if y > 0 else "right")

        term.read_until(r"you> ", 5)
        os.write(term.fd, b"\x03")  # Ctrl-C with nothing running: the conversation goes on
        term.seen = "you> " + term.seen

        done = term.say("pick up the blue cube", timeout=60)
        m = re.fullmatch(r"Done: pick up the blue cube \((\d+) steps\)\.", done)
        assert m, done
        assert int(m.group(1)) < 60

        did = term.say("what did the robot just do?")
        assert did.startswith('I was asked to "pick up the blue cube"') and did.endswith("and succeeded.")
        assert f"ran for {m.group(1)} steps" in did

        # The video-QA model on the 128 px frames the world remembered while the robot worked.
        assert term.say("In the video, what colour was the object the robot picked up?") == "blue"
        assert term.say("In the video, was there a red cylinder?") == "no"

        # Ctrl-C while a command runs stops the robot (pushing takes this policy ~80 steps), and
        # the conversation goes on.
        term.read_until(r"you> ", 5)
        os.write(term.fd, b"push the blue cube to the left\r")
        term.read_until(r"push the blue cube to the left\r?\n", 5)  # the terminal's echo: it is running
        time.sleep(1.0)
        os.write(term.fd, b"\x03")
        pushed = term.read_until(REPLY, 30).group(1)
        assert re.fullmatch(r'I did not finish "push the blue cube to the left": stopped by the operator '
                            r"after \d+ steps\.", pushed), pushed

        assert term.say("stop") == "Stopping. The robot holds still."

        os.write(term.fd, b"\x04")  # Ctrl-D at an empty prompt leaves
        assert term.exit_status(30) == 0
    finally:
        term.close()


class BrokenWorld(SimWorld):
    """A scene whose object list fails once (a camera driver hiccup), then recovers."""

    failures = 1

    def objects(self):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("camera driver hiccup")
        return super().objects()


def test_a_failed_request_is_one_error_reply_and_the_next_one_is_answered():
    world = BrokenWorld("PickUp", seed=0, image_size=32, cameras=("agentview",))
    agent = Agent(world)
    try:
        broken = agent.respond("what do you see?")
        assert broken.kind == "error" and "\n" not in broken.text
        assert broken.text == "error: RuntimeError: camera driver hiccup (a bug; the request was dropped)"
        assert agent.respond("what do you see?").text.startswith("I see a blue cube")
    finally:
        world.close()


class FixedSizePolicy(BasePolicy):
    """Records what the agent feeds a policy that reads 16 px agent-view frames."""

    def __init__(self) -> None:
        self.shapes: list[dict[str, tuple[int, ...]]] = []

    def describe(self):
        return {"image_size": 16, "cameras": ["agentview"]}

    def predict_chunk(self, observations, instructions):
        self.shapes.append({k: np.shape(v) for k, v in observations[0].items()})
        return np.zeros((len(observations), 1, 7), np.float32)


def test_the_policy_gets_its_own_size_and_the_memory_keeps_the_worlds():
    world = SimWorld("Reach", seed=1, image_size=32, cameras=("agentview", "wrist"))
    policy = FixedSizePolicy()
    agent = Agent(world, policy=policy)
    agent.cfg.max_steps = 2
    try:
        target = world.objects()[0].name
        agent.handle(f"touch the {target}")
        assert policy.shapes and policy.shapes[0]["agentview"] == (16, 16, 3)
        assert policy.shapes[0]["wrist"] == (32, 32, 3)  # a camera it does not read is left alone
        assert world.memory.frames()[-1].image.shape == (32, 32, 3)  # the memory keeps the world's frames
    finally:
        world.close()
