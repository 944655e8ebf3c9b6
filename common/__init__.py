"""Non-domain helpers every package of the stack shares.

Config dataclasses <-> command-line flags, run directories, atomic file and directory commits, the
learning-rate schedule, the Wilson interval and the ``UserError`` base the CLI prints as one line.
This package imports nothing else of ours, and nothing domain-specific belongs here.
"""
