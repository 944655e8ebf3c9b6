"""Errors that describe a user's mistake or environment, shown by the CLI as one line."""


class SimError(ValueError):
    """Bad input to the simulator or its tools (unknown task, NaN action, unwritable output...)."""

    user_error = True
