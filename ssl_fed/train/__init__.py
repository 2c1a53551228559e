"""Local training: one site, E epochs, plain or DP-SGD."""
