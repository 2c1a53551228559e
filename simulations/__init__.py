"""Simulated federations: N virtual sites on one machine (see README.md)."""
