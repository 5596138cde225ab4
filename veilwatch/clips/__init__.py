"""Clips cut from the recordings: veiled exports with a verifiable manifest, and unmasked clips."""
