"""The tabletop scene perceiver: every object and receptacle on the table from RGB-D, tracked.

- ``types``: ``CameraView`` in; ``ScenePercept`` (status, stamp, ``SceneObject``s,
  ``Receptacle``s) out; ``OK`` / ``NOTHING_HERE``.
- ``perceiver.ScenePerceiver``: ``perceive(views) -> ScenePercept``, ``reset()``.
- ``palette``: the world's colours and sizes as data (defaults: the tabletop world's).
- ``colors`` (pixel colour classes), ``detect`` (one view), ``fuse`` (cameras), ``track`` (ids).
- ``answers``: the operator's questions answered from an object list (pure functions), for the
  agent and for scoring perception against ground truth.
"""

from perception.scene.perceiver import ScenePerceiver
from perception.scene.types import NOTHING_HERE, OK, CameraView, Receptacle, SceneObject, ScenePercept

__all__ = ["ScenePerceiver", "CameraView", "SceneObject", "Receptacle", "ScenePercept", "OK",
           "NOTHING_HERE"]
