"""Errors that describe a user's mistake (bad checkpoint, bad image, bad stats), shown as one line."""


class PolicyError(ValueError):
    """Bad input to the policy: a checkpoint missing files, NaN statistics, a wrong image..."""

    user_error = True
