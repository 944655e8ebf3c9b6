"""The one exception users of perception see: a clear line, exit status 2 from the CLI."""

from __future__ import annotations

from common.errors import UserError


class PerceptionError(UserError):
    """Bad input from a user: missing or empty video, budget larger than the stream, unknown name.

    A ``UserError``: ``embodied`` prints one line instead of a traceback.
    """
