"""Benchmarks: measured figures printed by ``photoembed bench ...``."""
