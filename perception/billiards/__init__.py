"""Billiards from pixels: balls found by colour, tracked on the table plane, events inferred.

``types`` holds the data the tracker produces and the coach, video QA and the agent consume.
This package knows nothing of the simulator: the table's geometry and the balls' colours arrive
as a :class:`~perception.billiards.types.TableGeometry` (the simulator's bench builds one from its
table; a real table would be measured once).
"""
