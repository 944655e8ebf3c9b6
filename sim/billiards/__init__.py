"""Billiards: a 9-ft pool table in MuJoCo with a free-body cue, scripted shots and ground truth.

Modules, bottom-up: ``cue`` (the cue's geometry, shared with perception), ``table`` (MJCF and
dimensions), ``world`` (model/data, layouts, cue pose), ``events`` (contacts -> events),
``stroke`` (how the cue moves), ``shot`` (simulate, record, save/load), ``player`` (a scripted
player that aims pots), ``env`` (the Gymnasium env, ``embodied/Billiards-v0``) and ``generate``
(a folder of recorded shots: ``python -m sim.billiards.generate --out DIR``).
"""

from sim.billiards.env import BilliardsEnv
from sim.billiards.events import Event
from sim.billiards.player import ScriptedPlayer
from sim.billiards.shot import ShotRecord, load_shot, record_shot, save_shot, simulate_shot
from sim.billiards.world import BilliardsWorld, TableState

__all__ = ["BilliardsEnv", "BilliardsWorld", "Event", "ScriptedPlayer", "ShotRecord", "TableState",
           "load_shot", "record_shot", "save_shot", "simulate_shot"]
