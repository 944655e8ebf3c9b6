"""Errors that describe a user's mistake (bad checkpoint, bad image, bad stats), shown as one line."""

from common.errors import UserError


class PolicyError(UserError):
    """Bad input to the policy: a checkpoint missing files, NaN statistics, a wrong image..."""
