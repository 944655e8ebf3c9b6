"""The one exception users of perception see: a clear line, exit status 2 from the CLI."""

from __future__ import annotations


class PerceptionError(ValueError):
    """Bad input from a user: missing or empty video, budget larger than the stream, unknown name.

    ``user_error = True`` tells ``embodied`` to print one line instead of a traceback.
    """

    user_error = True
