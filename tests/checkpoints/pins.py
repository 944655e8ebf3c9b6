"""Fixed inputs for the shipped checkpoints, and the predictions they gave when pinned.

``python -m tests.checkpoints.pins --write`` records the predictions of the code as it is into
``pinned.json`` and the inputs into ``inputs.npz``; run it only when a change of behaviour is
intended, and say so in the commit. The test compares against these files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
VLA = ROOT / "checkpoints" / "vla-default"
QA = ROOT / "checkpoints" / "videoqa-default"
INPUTS = HERE / "inputs.npz"
PINNED = HERE / "pinned.json"

INSTRUCTIONS = ["pick up the red cube", "touch the blue cylinder", "pick up the green cylinder",
                "reach the yellow cube"]
QUESTIONS = ["how many objects are on the table?", "what colour is the object the robot picked up?",
             "did the robot pick something up?", "when did the robot grasp the object?",
             "which ball did the cue ball hit first?", "was the red ball potted?",
             "is the red cube left of the blue cube?", "what happened in the video?"]


def make_inputs() -> dict[str, np.ndarray]:
    """Real frames (an expert PickUp episode and a billiards shot) so the answers are not noise."""
    from video_qa.simulate import simulate_billiards, simulate_tabletop

    import sim

    env = sim.make("PickUp", render_mode="rgb_array", image_size=(64, 64))
    obs, _ = env.reset(seed=3)
    policy_obs = {"agentview": obs["agentview"], "wrist": obs["wrist"], "state": obs["state"]}
    env.close()
    table, table_t, _ = simulate_tabletop(7, "PickUp")
    pool, pool_t, _ = simulate_billiards(5)
    pick = lambda n: np.linspace(0, n - 1, 8).round().astype(int)  # noqa: E731
    ti, pi = pick(len(table)), pick(len(pool))
    return {"agentview": policy_obs["agentview"], "wrist": policy_obs["wrist"],
            "state": np.asarray(policy_obs["state"], np.float32),
            "table": table[ti], "table_t": table_t[ti].astype(np.float64),
            "pool": pool[pi], "pool_t": pool_t[pi].astype(np.float64)}


def policy_chunks(inputs: dict[str, np.ndarray]) -> list[list[list[float]]]:
    from policy.predict import Policy

    policy = Policy.from_pretrained(VLA)
    obs = {k: inputs[k] for k in ("agentview", "wrist", "state")}
    return [policy.predict_chunk([obs], [text])[0].tolist() for text in INSTRUCTIONS]


def qa_answers(inputs: dict[str, np.ndarray]) -> list[str]:
    from video_qa.modeling_videolm import VideoLM

    model = VideoLM.from_pretrained(QA)
    out = []
    for clip, times in (("table", "table_t"), ("pool", "pool_t")):
        out += model.generate([inputs[clip]] * len(QUESTIONS),
                              [inputs[times].tolist()] * len(QUESTIONS), QUESTIONS)
    return out


def load_inputs() -> dict[str, np.ndarray]:
    with np.load(INPUTS) as data:
        return {k: data[k] for k in data.files}


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.checkpoints.pins --write")
    if not INPUTS.exists():
        np.savez_compressed(INPUTS, **make_inputs())
    inputs = load_inputs()
    PINNED.write_text(json.dumps({"policy_chunks": policy_chunks(inputs),
                                  "qa_answers": qa_answers(inputs)}, indent=1) + "\n")
    print(f"wrote {PINNED}")
