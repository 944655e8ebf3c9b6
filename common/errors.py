"""The one base class for mistakes a user can fix: the CLI prints them as one line, exit status 2."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from a person or their environment (a flag, a file, a port), not a bug.

    ``embodied`` catches these and prints ``embodied <command>: error: <message>`` instead of a
    traceback. Subclass it per package (``SimError``, ``PolicyError``, ...) so callers can still
    tell where an error came from. It derives from ``ValueError`` because most of these are bad
    values, and callers that already catch ``ValueError`` keep working.
    """

    user_error = True


def is_user_error(exc: BaseException) -> bool:
    """True for ``UserError`` and for third-party exceptions marked with ``user_error = True``."""
    return isinstance(exc, UserError) or bool(getattr(exc, "user_error", False))
