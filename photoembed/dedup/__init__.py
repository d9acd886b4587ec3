"""Duplicate finding in three tiers (identical, same photo other file, similar shots) and safe removal."""
