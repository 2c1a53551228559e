"""Empirical privacy audit: canaries in one real training, ε_lower beside the accountant's ε."""

from ssl_fed.audit.bound import epsilon_ceiling, epsilon_lower_bound, p_value

__all__ = ["epsilon_ceiling", "epsilon_lower_bound", "p_value"]
