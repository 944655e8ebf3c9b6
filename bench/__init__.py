"""Benchmarks, run by `embodied bench <name> [--quick] [--out FILE.json]`."""
