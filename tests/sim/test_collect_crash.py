"""Crash safety for real: SIGKILL a collecting process, check what survived, resume to the end."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sim.dataset import LeRobotDataset, committed_episode_indices
from test_collect import _cfg, _run

HERE = Path(__file__).parent
# The child slows each step down (20 ms) so the parent, polling every 10 ms, kills it mid-run.
SCRIPT = """
import sys, time
from pathlib import Path
import test_collect
from test_collect import _cfg, _run
step = test_collect.DummyReachEnv.step
test_collect.DummyReachEnv.step = lambda self, a: (time.sleep(0.02), step(self, a))[1]
_run(_cfg(Path(sys.argv[1]), episodes=6))
"""


def test_sigkill_mid_collection_keeps_committed_episodes_and_resumes(tmp_path):
    root = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1])]),
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while len(committed_episode_indices(root)) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no episode committed within 60 s"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = committed_episode_indices(root)
    assert 2 <= len(killed_at) < 6

    # The reader sees the episodes info.json lists (it may lag one committed episode behind the
    # markers: derived files are refreshed after the commit); all of them read back, and the
    # statistics describe exactly them.
    ds = LeRobotDataset(root)
    assert ds.num_episodes in (len(killed_at) - 1, len(killed_at))
    actions = np.concatenate([ds.episode(i)["action"] for i in range(ds.num_episodes)])
    assert ds.stats["action"]["count"] == [len(actions)]
    np.testing.assert_allclose(ds.stats["action"]["mean"], actions.astype(np.float64).mean(0), rtol=1e-6)

    # Re-running the same command resumes, repairs the metadata and finishes the job.
    summary = _run(_cfg(tmp_path, episodes=6))
    assert summary["resumed_from"] == len(killed_at) and summary["episodes"] == 6
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 6 and not list(root.rglob("*.tmp"))
    assert [ds.episode_meta(i)["seed"] for i in range(6)] == [0, 1, 2, 4, 5, 6]
    actions = np.concatenate([ds.episode(i, decode_video=False)["action"] for i in range(6)])
    assert ds.stats["action"]["count"] == [len(actions)] == [ds.num_frames]
    for i in range(6):
        assert len(ds.episode(i)["observation.images.agentview"]) == ds.episode_meta(i)["length"]
