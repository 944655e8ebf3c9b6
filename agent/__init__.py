"""The operator's agent and the `embodied` command line: the package users meet first."""
