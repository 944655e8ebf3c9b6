"""MuJoCo worlds behind the Gymnasium API: a tabletop arm with language tasks, and billiards.

Importing ``sim`` registers every task as ``embodied/<Task>-v0``; ``sim.make("PickUp")`` is the
short form with a helpful error for unknown names.
"""

from sim.registry import TABLETOP_TASKS, TASKS, check_task, gym_id, make, register_all

register_all()

__all__ = ["TASKS", "TABLETOP_TASKS", "check_task", "gym_id", "make", "register_all"]
