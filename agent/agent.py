"""The operator's agent: questions get answers, commands run the policy until success, timeout or stop.

Every action the policy proposes passes the safety filter; a model slower than its deadline stops
the robot rather than letting a stale action through; an observation the policy refuses (a NaN
state) or a model that cannot answer (a server gone) stops it too, and the reply says why; a
``stop`` from the operator (or Ctrl-C) ends a running command at the next control step.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from agent.router import Route, route
from common.errors import is_user_error
from agent.safety import SafetyFilter
from perception.image import resize_images
from policy.base import BasePolicy
from policy.executor import ChunkExecutor

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    max_steps: int = 120  # control steps per command (12 s at 10 Hz): the longest task needs ~60
    model_deadline_ms: float = 2000.0  # slower predictions stop the robot (generous for loaded CPUs)
    # A view older than this is not "what is on the table now": questions about the scene get "I
    # can't see the table" and commands are refused (the ROS graph's lists can lag or stop coming).
    max_view_age_s: float = 2.0


@dataclass
class Reply:
    kind: str  # "answer" | "done" | "stopped" | "refused" | "clarify" | "help" | "error"
    text: str
    data: dict[str, Any] = field(default_factory=dict)


HELP = ("I answer questions about what the cameras saw (\"what do you see?\", \"where is the red cube?\", "
        "\"what did the robot just do?\") and run commands (\"pick up the red cube\", \"push the blue "
        "cylinder to the left\", \"put the green cube in the bowl\", \"touch the yellow cube\"). "
        "Say \"stop\" to stop the robot.")


def _side(y: float) -> str:
    return "to the robot's left" if y > 0.03 else "to the robot's right" if y < -0.03 else "straight ahead"


class Agent:
    def __init__(self, world: Any, policy: BasePolicy | None = None, qa: Any = None,
                 config: AgentConfig | None = None, safety: SafetyFilter | None = None,
                 on_step: Callable[[int, np.ndarray], None] | None = None, shot: Any = None) -> None:
        self.world = world
        self.policy = policy
        self.executor = ChunkExecutor(policy) if policy is not None else None
        spec = policy.describe() if policy is not None else {}
        self._policy_size = spec.get("image_size")  # None: the policy takes the world's frames as they are
        self._policy_cameras = spec.get("cameras")
        self.qa = qa
        self.cfg = config or AgentConfig()
        self.safety = safety or SafetyFilter()
        self.on_step = on_step
        self.history: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self.shot: dict[str, Any] | None = None  # a shot's report: billiards questions answered from it
        if shot is not None:
            self.load_shot(shot)

    def load_shot(self, report: Any) -> None:
        """Answer billiards questions from this shot's report (a ShotReport, its dict, or the
        report.json / directory ``embodied coach`` writes) rather than from the VideoLM."""
        from agent.billiards_qa import load_facts

        self.shot = load_facts(report)

    def _vocabulary(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        from sim.tabletop.scene import SHAPES
        from sim.tabletop.tasks import COLORS

        return tuple(COLORS), tuple(SHAPES)

    def policy_observation(self, obs: dict[str, Any]) -> dict[str, Any]:
        """The world's observation as the policy reads it: its cameras at its own input size.

        One camera stream feeds every model: the world renders once, at the size the video memory
        keeps (128 px for the video-QA model), and each model gets its own size from those frames
        (``perception.image.resize_images``, the resampling every encoder shares) rather than the
        world rendering a second time or forcing one size on all."""
        if not self._policy_size:
            return obs
        cameras = self._policy_cameras or [k for k, v in obs.items() if k != "state" and np.ndim(v) == 3]
        out = dict(obs)
        for cam in cameras:
            if cam in obs:  # a missing camera is the policy's to refuse, with its own message
                out[cam] = resize_images(np.asarray(obs[cam]), int(self._policy_size))
        return out

    def stop(self) -> None:
        """Thread-safe: the running command ends at its next control step."""
        self._stop.set()

    def respond(self, text: str) -> Reply:
        """``handle`` for a conversation: a request that fails becomes one ``error`` reply and the
        conversation goes on (a bad file, a lost model, a bug in one branch must not end the
        operator's session). A user error says its message; anything else names its type and
        keeps its traceback in the log."""
        try:
            return self.handle(text)
        except Exception as exc:  # noqa: BLE001 - one request failed, not the conversation
            message = " ".join(str(exc).split())  # one line, whatever the exception holds
            if is_user_error(exc):
                return Reply("error", f"error: {message}")
            log.debug("request %r failed", text, exc_info=True)
            return Reply("error", f"error: {type(exc).__name__}: {message} (a bug; the request was dropped)")

    def handle(self, text: str) -> Reply:
        r = route(text, *self._vocabulary(), world=self.world)
        if r.kind == "stop":
            self.stop()
            return Reply("stopped", "Stopping. The robot holds still.")
        if self.shot is not None and r.kind in ("question", "unknown", "chat"):
            # the router may not call "what was the cut angle?" a question; the report decides
            from agent.billiards_qa import answer_billiards

            found = answer_billiards(r.text, self.shot)
            if found is not None:  # the tracker's fact wins over the VideoLM's guess
                return Reply("answer", found.text, found.to_dict())
        if r.kind == "question":
            return self._answer(r)
        if r.kind == "command":
            return self._command(r)
        if r.kind == "clarify":  # ambiguous or impossible: ask back, never guess and move
            blind = self._blind()
            if blind:  # "I do not see a red cube" would be a guess when the table is out of view
                return Reply("refused", f"I can't see the table, so I will not move: {blind}.")
            return Reply("clarify", r.question)
        if r.kind == "chat":
            return Reply("help", HELP)
        reason = f" ({'; '.join(r.notes)})" if r.notes else ""
        return Reply("help", f"I did not understand that{reason}. {HELP}")

    # -- questions -----------------------------------------------------------------------------
    def _blind(self) -> str:
        """The reason the world's cameras cannot see the table now, or "" (worlds without a
        perceiver always see): the view shows no table, or it is older than ``max_view_age_s``."""
        view_problem = getattr(self.world, "view_problem", None)
        problem = view_problem() if callable(view_problem) else ""
        if problem:
            return problem
        view_age = getattr(self.world, "view_age_s", None)
        age = view_age() if callable(view_age) else 0.0
        if age > self.cfg.max_view_age_s:
            return f"my latest view is {age:.1f} s old (older than {self.cfg.max_view_age_s:g} s)"
        return ""

    def _answer(self, r: Route) -> Reply:
        if self.world is None:  # a recorded shot only (embodied coach --ask)
            return Reply("answer", "I cannot answer that from the shot's report, and I have no live view.")
        objects = self.world.objects()
        blind = self._blind() if r.topic in ("scene", "where") else ""
        if blind:  # never a stale or empty list presented as what is there
            return Reply("answer", f"I can't see the table: {blind}.")
        if r.topic == "scene":
            names = [o.name for o in objects]
            recs = self.world.receptacles()
            listing = ", ".join(f"{'an' if n[0] in 'aeiou' else 'a'} {n}" for n in names + recs) or "nothing"
            return Reply("answer", f"I see {listing} on the table (from the {self.world.source}).",
                         {"objects": names + recs})
        if r.topic == "where":
            if not r.target:
                return Reply("answer", "Which object? Name its colour and shape, e.g. 'where is the red cube?'")
            match = [o for o in objects if o.name == r.target or r.target in o.name]
            if not match:
                return Reply("answer", f"I do not see a {r.target} here; I see "
                             f"{', '.join(o.name for o in objects) or 'nothing'}.")
            o = match[0]
            x, y, z = (float(v) for v in o.position)
            return Reply("answer", f"The {o.name} is {x * 100:.0f} cm in front of the robot base, "
                         f"{abs(y) * 100:.0f} cm {_side(y)} ({self.world.source}).",
                         {"object": o.name, "position_m": [x, y, z]})
        if r.topic == "history":  # the agent's own record of its commands, not a guess from video
            if not self.history:
                return Reply("answer", "I have not done anything yet.")
            h = self.history[-1]
            outcome = "and succeeded" if h["success"] else f"and stopped ({h['reason']})"
            return Reply("answer", f"I was asked to \"{h['instruction']}\"; I ran for {h['steps']} steps "
                         f"({h['seconds']:.1f} s of robot time) {outcome}.", dict(h))
        if self.qa is None:
            return Reply("answer", "I have no video-QA model loaded, so I cannot answer questions about "
                         "the video; ask what I see, where an object is, or what I just did.")
        frames = self.world.memory.frames()
        if not frames:
            return Reply("answer", "Not seen: my video memory is empty.")
        ans = self.qa.answer(frames, r.text)
        times = [round(float(t), 2) for t in getattr(ans, "frame_times", [])]
        text = ans.text.strip() or "I cannot tell from the video."  # never an empty reply line
        return Reply("answer", text, {"frame_times": times})

    # -- commands ------------------------------------------------------------------------------
    def check_command(self, r: Route) -> Reply | None:
        """A refusal when a routed command must not run now (the table out of view, a view too
        old, a target not seen), else None. The ROS agent node asks this too before it hands a
        command to the policy node."""
        blind = self._blind()
        if blind:
            return Reply("refused", f"I can't see the table, so I will not move: {blind}.")
        names = [o.name for o in self.world.objects()]
        if r.target not in names:
            what = r.target or "an object"
            return Reply("refused", f"I cannot {r.family.replace('_', ' ')} {what}: I see "
                         f"{', '.join(names) or 'nothing'}.")
        return None

    def _command(self, r: Route) -> Reply:
        if self.executor is None:
            return Reply("refused", "No policy is loaded, so I cannot move the robot.")
        refusal = self.check_command(r)
        if refusal is not None:
            return refusal
        try:
            self.world.set_goal(r.family, r.target, r.side, r.receptacle, instruction=r.text)
        except ValueError as exc:
            return Reply("refused", f"I cannot do that here: {exc}")
        self._stop.clear()
        self.executor.reset()
        instruction = r.text.strip().rstrip(".!?")
        start_step = self.world.steps
        success, reason = False, "timeout"
        for i in range(self.cfg.max_steps):
            if self._stop.is_set():
                reason = "stopped by the operator"
                break
            t0 = time.perf_counter()
            try:
                raw = self.executor.act([self.policy_observation(self.world.obs)], [instruction])[0]
            except Exception as exc:  # noqa: BLE001 - a refused input or a lost model: stop, say why
                if not is_user_error(exc):
                    raise  # a bug, not a robot condition: keep its traceback
                reason = f"the policy could not act ({exc})"
                break
            late_ms = (time.perf_counter() - t0) * 1e3
            if late_ms > self.cfg.model_deadline_ms:
                reason = f"the model took {late_ms:.0f} ms (deadline {self.cfg.model_deadline_ms:.0f} ms)"
                break
            action = self.safety(raw, self.world.tcp_position())
            success, over = self.world.step(action)
            if self.on_step:
                self.on_step(i, action)
            if success:
                reason = "success"
                break
            if over:
                break
        steps = self.world.steps - start_step
        record = {"instruction": instruction, "family": r.family, "target": r.target, "steps": steps,
                  "seconds": steps / self.world.fps, "success": success, "reason": reason,
                  "clamped": self.safety.clamped, "workspace_stops": self.safety.workspace_stops}
        self.history.append(record)
        if success:
            return Reply("done", f"Done: {instruction} ({steps} steps).", record)
        return Reply("stopped", f"I did not finish \"{instruction}\": {reason} after {steps} steps.", record)
