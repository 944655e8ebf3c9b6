"""Billiards: a 9-ft pool table in MuJoCo with a free-body cue, scripted shots and ground truth.

Modules, bottom-up: ``cue`` (the cue's geometry, shared with perception), ``table`` (MJCF and
dimensions), ``world`` (model/data, layouts, cue pose), ``events`` (contacts -> events),
``stroke`` (how the cue moves), ``shot`` (simulate, record, save/load), ``player`` (a scripted
player that aims pots) and ``env`` (the Gymnasium env, ``embodied/Billiards-v0``).
"""
