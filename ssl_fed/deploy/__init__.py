"""Deployment: PKI, site keys, and wrappers around Flower's SuperLink/SuperNode binaries."""
