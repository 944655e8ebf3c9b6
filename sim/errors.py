"""Errors that describe a user's mistake or environment, shown by the CLI as one line."""

from common.errors import UserError


class SimError(UserError):
    """Bad input to the simulator or its tools (unknown task, NaN action, unwritable output...)."""
