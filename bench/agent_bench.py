"""`embodied bench agent`: operator commands in the operator's own words, run by the agent in the sim.

What an operator gets (issue 23): an utterance goes through the whole agent (the router on the
pretrained encoder, the slots checked against what the scene perceiver sees, the policy given the
operator's words, the safety filter) and the episode's predicate says whether the robot did it.
Each scene is commanded twice, in fresh copies of the same seeded world: once in a paraphrase
written for this bench (none is a training or an evaluation template of the policy, nor a line
of the router's example sets) and once in the environment's own training phrasing, the baseline
measured in the same run. A paraphrase the router asks back about or refuses counts as a failure:
the operator did not get the robot to act.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from common.errors import UserError

DESCRIPTION = "operator paraphrases run end to end by the agent in the sim, vs the training phrasing"
FAMILY_TASK = {"reach": "Reach", "pick_up": "PickUp", "push": "Push", "put_in": "PutIn"}
NOUNS = {"cube": ("cube", "block"), "cylinder": ("cylinder", "can")}
# Written for this bench, in an operator's voice. "{prep}" is in/on, "{prep2}" into/onto.
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "reach": ("could you touch the {obj} for me", "go over and touch the {obj} please",
              "I want the gripper touching the {obj}", "reach over to the {obj}"),
    "pick_up": ("could you pick the {obj} up for me", "please lift the {obj} up",
                "grab hold of the {obj} and lift it", "pick up that {obj}"),
    "push": ("please push the {obj} over to the {side}", "could you slide the {obj} to the {side} a bit",
             "give the {obj} a push to the {side}", "push that {obj} to the {side}"),
    "put_in": ("could you put the {obj} {prep} the {rec} please", "please place the {obj} {prep2} the {rec}",
               "pop the {obj} {prep} the {rec}", "put that {obj} {prep} the {rec}"),
}
SEED = 300_000  # scenes of their own: not the policy's training (0..) nor test (100000..) seeds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default="checkpoints/vla-default", help="policy checkpoint")
    p.add_argument("--episodes", type=int, default=0, help="scenes per family (default 20; --quick 4)")
    p.add_argument("--families", default=",".join(FAMILY_TASK), help="comma list of task families")


def utterance(family: str, episode: Any, k: int) -> str:
    """The k-th paraphrase of ``episode``'s command, naming its target with a shape word or a
    synonym by turns ("red block")."""
    target = episode.target
    noun = NOUNS[target.shape][k % 2]
    preps = {"bowl": ("in", "into"), "plate": ("on", "onto")}.get(episode.receptacle or "", ("", ""))
    template = PARAPHRASES[family][k % len(PARAPHRASES[family])]
    return template.format(obj=f"{target.color} {noun}", side=episode.side or "",
                           rec=episode.receptacle or "", prep=preps[0], prep2=preps[1])


def _run_one(policy: Any, task: str, seed: int, text: str | None) -> dict[str, Any]:
    from agent.agent import Agent
    from agent.world import SimWorld

    world = SimWorld(task, seed=seed, image_size=128)
    try:
        text = text or world.instruction  # the environment's own (training) phrasing
        reply = Agent(world, policy=policy).respond(text)
        return {"text": text, "kind": reply.kind, "success": reply.kind == "done",
                "steps": reply.data.get("steps"), "reply": reply.text[:160]}
    finally:
        world.close()


def run(args: argparse.Namespace) -> dict:
    from agent.world import SimWorld
    from common.stats import wilson_interval
    from policy.backends import load_policy

    n = args.episodes or (4 if args.quick else 20)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILY_TASK))
    if unknown or not families:
        raise UserError(f"--families takes some of {', '.join(FAMILY_TASK)}, got {', '.join(unknown) or 'none'}")
    policy = load_policy(args.checkpoint)
    t0 = time.perf_counter()
    per_family: dict[str, Any] = {}
    episodes = []
    for family in families:
        task = FAMILY_TASK[family]
        wins = {"paraphrase": 0, "training_phrasing": 0}
        for i in range(n):
            seed = SEED + i
            probe = SimWorld(task, seed=seed, image_size=64, world_source="ground-truth")
            spec = probe.unwrapped.episode
            probe.close()
            para = _run_one(policy, task, seed, utterance(family, spec, i))
            base = _run_one(policy, task, seed, None)
            wins["paraphrase"] += para["success"]
            wins["training_phrasing"] += base["success"]
            episodes.append({"family": family, "seed": seed, "paraphrase": para, "training_phrasing": base})
            print(f"{family:8s} seed {seed}: {'ok ' if para['success'] else 'no '} {para['text']!r} -> "
                  f"{para['kind']}; training phrasing {'ok' if base['success'] else 'no'}", flush=True)
        per_family[family] = {
            k: {"successes": v, "episodes": n, "success_rate": v / n, "ci95": list(wilson_interval(v, n))}
            for k, v in wins.items()}
    total = {k: sum(f[k]["successes"] for f in per_family.values()) for k in ("paraphrase", "training_phrasing")}
    m = n * len(families)
    result = {
        "checkpoint": args.checkpoint, "episodes_per_family": n, "seeds": [SEED, SEED + n - 1],
        "command_success": total["paraphrase"] / m,
        "command_success_ci95": list(wilson_interval(total["paraphrase"], m)),
        "baseline_training_phrasing": total["training_phrasing"] / m,
        "ratio_vs_training_phrasing": (total["paraphrase"] / total["training_phrasing"]
                                       if total["training_phrasing"] else None),
        "per_family": per_family, "episodes": episodes, "seconds": round(time.perf_counter() - t0, 1),
    }
    print(f"\ncommand success in paraphrase {total['paraphrase']}/{m} = {result['command_success']:.3f}; "
          f"training phrasing {total['training_phrasing']}/{m} = {result['baseline_training_phrasing']:.3f}")
    return result
