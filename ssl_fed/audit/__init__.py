"""Empirical privacy audit: canaries in one real training, ε_lower beside the accountant's ε.

The exports are imported on first use (:mod:`ssl_fed.lazy`): the CLI registers
:mod:`ssl_fed.audit.commands` without paying for scipy.
"""

from typing import TYPE_CHECKING

from ssl_fed.lazy import lazy_exports

if TYPE_CHECKING:
    from ssl_fed.audit.bound import epsilon_ceiling, epsilon_lower_bound, p_value

__all__ = ["epsilon_ceiling", "epsilon_lower_bound", "p_value"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "bound"))
