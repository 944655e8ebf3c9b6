import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def test_two_gloo_processes_match_one_process(tmp_path):
    """DDP with 2 ranks x 2 samples == 1 process x 4 samples with grad accumulation 2 (same
    global batch, same data order, same augmentation)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(HERE / "ddp_worker.py"), str(tmp_path / "ddp")],
                          env=env, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sys.path.insert(0, str(HERE))
    from ddp_worker import run

    run(str(tmp_path / "single"), grad_accum=2)
    a = load_file(str(tmp_path / "ddp" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "checkpoint" / "model.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), k
    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["world_size"] == 2
    losses_ddp = [json.loads(l)["loss"] for l in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    losses_one = [json.loads(l)["loss"] for l in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses_ddp) == 3
    assert all(abs(x - y) < 1e-4 for x, y in zip(losses_ddp, losses_one))
